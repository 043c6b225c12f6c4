// http_request_test.cc: the scraper's request parser against real scrapers' requests and
// hostile input: oversized lines, garbage, no line end, requests split at every byte.
#include "catch.h"
#include "http_request.h"

#include <random>
#include <string>

using namespace sniproxy;

namespace {

HttpRequestParser parse(std::string_view text)
{
    HttpRequestParser p;
    p.feed(std::span<const char>(text.data(), text.size()));
    return p;
}

int status_of(std::string_view text)
{
    return parse(text).status();
}

const char* const prometheus_request
    = "GET /metrics HTTP/1.1\r\n"
      "Host: 127.0.0.1:9100\r\n"
      "User-Agent: Prometheus/2.42.0\r\n"
      "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
      "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
      "Accept-Encoding: gzip\r\n"
      "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
      "\r\n";

} // namespace

TEST_CASE("what Prometheus and curl send is served, with its Accept header")
{
    HttpRequestParser p = parse(prometheus_request);
    CHECK(p.state() == HttpRequestParser::State::done);
    CHECK(p.status() == 200);
    CHECK(p.accept().starts_with("application/openmetrics-text;version=1.0.0,"));
    CHECK(p.accept().ends_with("*/*;q=0.1"));

    p = parse("GET / HTTP/1.0\n\n"); // bare LF, HTTP/1.0, no headers
    CHECK(p.status() == 200);
    CHECK(p.accept().empty());
    CHECK(status_of("\r\nGET /metrics?x=1 HTTP/1.1\r\nAccept: text/plain\r\naccept:  */* \r\n\r\n")
        == 200);
    CHECK(parse("GET /metrics HTTP/1.1\r\nAccept: a\r\nACCEPT: b\r\n\r\n").accept() == "a,b");
}

TEST_CASE("a request split anywhere gives the same answer")
{
    const std::string text = prometheus_request;
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        HttpRequestParser p;
        CHECK(p.feed(std::span<const char>(text.data(), cut))
            == (cut == text.size() ? HttpRequestParser::State::done
                                   : HttpRequestParser::State::incomplete));
        p.feed(std::span<const char>(text.data() + cut, text.size() - cut));
        CHECK(p.status() == 200);
    }
    HttpRequestParser bytewise;
    for (const char c : text)
        bytewise.feed(std::span<const char>(&c, 1));
    CHECK(bytewise.status() == 200);
    CHECK(bytewise.accept() == parse(text).accept());
}

TEST_CASE("until the blank line a request is incomplete, however it ends")
{
    CHECK(parse("GET /metrics HTTP/1.1").state() == HttpRequestParser::State::incomplete);
    CHECK(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n").state()
        == HttpRequestParser::State::incomplete);
    CHECK(parse("").status() == 0);
}

TEST_CASE("other methods, paths and versions get their status")
{
    CHECK(status_of("POST /metrics HTTP/1.1\r\n\r\n") == 405);
    CHECK(status_of("HEAD /metrics HTTP/1.1\r\n\r\n") == 405);
    CHECK(status_of("GET /metricsx HTTP/1.1\r\n\r\n") == 404);
    CHECK(status_of("GET /etc/passwd HTTP/1.1\r\n\r\n") == 404);
    CHECK(status_of("GET http://x/metrics HTTP/1.1\r\n\r\n") == 404);
    CHECK(status_of("GET /metrics HTTP/2.0\r\n\r\n") == 505);
    CHECK(status_of("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == 505);
    // Decided at the request line: a refused request is not read further.
    CHECK(parse("DELETE / HTTP/1.1\r\n").state() == HttpRequestParser::State::failed);
}

TEST_CASE("malformed requests are 400")
{
    for (const char* bad : {
             "GET /metrics\r\n\r\n", // HTTP/0.9
             "GET  /metrics HTTP/1.1\r\n\r\n", // two spaces
             "GET /metrics HTTP/1.1 \r\n\r\n",
             "GET /met rics HTTP/1.1\r\n\r\n",
             "GET /metrics HTTP/1.x\r\n\r\n",
             "GET /metrics http/1.1\r\n\r\n",
             "G\x01T /metrics HTTP/1.1\r\n\r\n",
             "GET /m\x7f HTTP/1.1\r\n\r\n",
             "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", // space before the colon
             "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
             "GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
             "GET /metrics HTTP/1.1\r\nA: b\x01\r\n\r\n",
             "GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n",
         }) {
        INFO(bad);
        CHECK(status_of(bad) == 400);
    }
    static const char with_nul[] = "GET /metrics HTTP/1.1\r\nA: \0\r\n\r\n";
    CHECK(status_of(std::string(with_nul, sizeof with_nul - 1)) == 400);
    CHECK(status_of(std::string(100, '\n')) == 400);
    // Binary input fails on its first control byte, without waiting for a line end.
    CHECK(status_of(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)) == 400);
    CHECK(status_of("GET /metrics HTTP/1.1\r\nA: b\x1b[2J") == 400);
}

TEST_CASE("oversized requests end at the limit, however they arrive")
{
    const std::string mib(1 << 20, 'a');
    HttpRequestParser p = parse("GET /" + mib + " HTTP/1.1\r\n\r\n");
    CHECK(p.status() == 414);
    CHECK(p.error() == "the request line is longer than 8192 bytes");
    CHECK(status_of(mib) == 414); // no line end at all

    // Fed in pieces, it fails as soon as the limit is passed and ignores the rest.
    HttpRequestParser q;
    std::size_t fed = 0;
    while (q.state() == HttpRequestParser::State::incomplete && fed < mib.size()) {
        q.feed(std::span<const char>(mib.data() + fed, 1000));
        fed += 1000;
    }
    CHECK(q.status() == 414);
    CHECK(fed <= HttpRequestParser::max_request_line + 1000);

    std::string many = "GET /metrics HTTP/1.1\r\n";
    for (int i = 0; i < 65; ++i)
        many += "X-" + std::to_string(i) + ": 1\r\n";
    CHECK(status_of(many + "\r\n") == 431);
    CHECK(status_of("GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'v') + "\r\n\r\n") == 431);
    std::string just_fits
        = "GET /metrics HTTP/1.1\r\nX: " + std::string(8192 - 7, 'v') + "\r\n\r\n";
    CHECK(status_of(just_fits) == 200);
    std::string one_more = "GET /metrics HTTP/1.1\r\nX: " + std::string(8192 - 6, 'v') + "\r\n\r\n";
    CHECK(status_of(one_more) == 431);
}

TEST_CASE("random garbage never reads as a request, nor crashes")
{
    std::mt19937 rng(13);
    for (int round = 0; round < 2000; ++round) {
        std::string junk(rng() % 600, '\0');
        for (char& c : junk)
            c = static_cast<char>(rng());
        HttpRequestParser p = parse(junk);
        CHECK(p.status() != 200);
    }
}

TEST_CASE("every status has its reason phrase")
{
    CHECK(http_reason(200) == "OK");
    CHECK(http_reason(408) == "Request Timeout");
    CHECK(http_reason(431) == "Request Header Fields Too Large");
    CHECK(http_reason(505) == "HTTP Version Not Supported");
}
