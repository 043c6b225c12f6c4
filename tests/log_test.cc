// log_test.cc: escaping of untrusted text and level filtering.
#include "catch.h"
#include "log.h"

#include <cerrno>
#include <cstring>
#include <vector>

using namespace sniproxy;

TEST_CASE("untrusted text cannot forge lines")
{
    CHECK(sanitize_log_text("example.com") == "example.com");
    CHECK(sanitize_log_text("a\nb") == "a\\x0ab");
    CHECK(sanitize_log_text(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(sanitize_log_text("back\\slash") == "back\\x5cslash");
    CHECK(sanitize_log_text("\xff") == "\\xff");
    CHECK(sanitize_log_text(std::string(100, 'x'), 10) == std::string(10, 'x') + "...");
    // Worker records are escaped already: the parent must not escape the escapes.
    CHECK(sanitize_log_text("sni=a\\x00b\n", 512, false) == "sni=a\\x00b\\x0a");
}

TEST_CASE("debug records only with -v; the sink sees the rest")
{
    std::vector<std::pair<LogLevel, std::string>> seen;
    log_set_sink([&](LogLevel l, std::string_view t) { seen.emplace_back(l, std::string(t)); });
    log_set_verbosity(0);
    logf(LogLevel::debug, "hidden %d", 1);
    logf(LogLevel::info, "shown %d", 2);
    log_set_verbosity(1);
    logf(LogLevel::debug, "now shown");
    log_set_sink(nullptr);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == std::pair { LogLevel::info, std::string("shown 2") });
    CHECK(seen[1].second == "now shown");
}

TEST_CASE("logf_errno appends the errno it was called with; set_error fails")
{
    std::vector<std::string> seen;
    log_set_sink([&](LogLevel, std::string_view t) { seen.emplace_back(t); });
    errno = ENOENT;
    logf_errno(LogLevel::err, "open %s", "/x");
    log_set_sink(nullptr);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == std::string("open /x: ") + std::strerror(ENOENT));
    CHECK(errno_message("bind", EACCES) == std::string("bind: ") + std::strerror(EACCES));
    std::string err;
    CHECK_FALSE(set_error(&err, "-l: bad"));
    CHECK(err == "-l: bad");
}
