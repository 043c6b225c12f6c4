// protocol_test.cc: every message's encoder against its decoder, and what each decoder refuses
// (sizes, values, descriptors, the wrong direction), with bytes only.
#include "catch.h"
#include "protocol.h"

#include <fcntl.h>
#include <netinet/in.h>

#include <cstring>
#include <variant>

using namespace sniproxy;

namespace {
Received as_received(const Encoded& e, std::size_t nfds = 0)
{
    Received m;
    m.type = e.type;
    std::memcpy(m.payload, e.payload.data(), e.payload.size());
    m.payload_len = e.payload.size();
    for (std::size_t i = 0; i < nfds; i++)
        m.fds[i].reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    m.nfds = nfds;
    return m;
}

// Decodes `m` with `decode` and takes it as a T (false if refused or another message).
template <typename T, typename From, typename M>
bool decodes_as(M& m, T* out, bool (*decode)(M&, From*, std::string*))
{
    From msg;
    std::string err;
    if (!decode(m, &msg, &err) || !std::holds_alternative<T>(msg))
        return false;
    if (out)
        *out = std::get<T>(msg);
    return true;
}

template <typename T> bool worker_says(const Received& m, T* out = nullptr)
{
    return decodes_as(m, out, decode_from_worker);
}

template <typename T> T with_ids(std::initializer_list<std::uint32_t> ids)
{
    T m;
    for (std::uint32_t id : ids)
        m.ids[m.count++] = id;
    return m;
}

template <typename T> bool parent_says(Received m, T* out = nullptr)
{
    return decodes_as(m, out, decode_from_parent);
}

sockaddr_storage ipv6(std::uint8_t last)
{
    sockaddr_storage ss {};
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr.s6_addr[15] = last;
    a->sin6_port = htons(443);
    return ss;
}

bool parent_refuses(Received m)
{
    FromParent msg;
    std::string err;
    const bool ok = decode_from_parent(m, &msg, &err);
    return !ok && !err.empty();
}
} // namespace

TEST_CASE("worker messages decode to what was encoded")
{
    CHECK(worker_says<ReadyMsg>(as_received(encode(ReadyMsg {}))));
    ClosedMsg closed;
    REQUIRE(worker_says(as_received(encode(with_ids<ClosedMsg>({ 70000, 3 }))), &closed));
    CHECK(closed.count == 2);
    CHECK(closed.ids[0] == 70000);
    CHECK(closed.ids[1] == 3);
    HelloDoneMsg hello;
    REQUIRE(worker_says(as_received(encode(with_ids<HelloDoneMsg>({ 9 }))), &hello));
    CHECK((hello.count == 1 && hello.ids[0] == 9));
    SourceMsg source;
    REQUIRE(worker_says(as_received(encode(SourceMsg { 12, ipv6(5) })), &source));
    CHECK(source.id == 12);
    CHECK(source.source.ss_family == AF_INET6);
    CHECK(reinterpret_cast<const sockaddr_in6*>(&source.source)->sin6_addr.s6_addr[15] == 5);
    CHECK(ntohs(reinterpret_cast<const sockaddr_in6*>(&source.source)->sin6_port) == 443);
    // As many ids as one message holds, and take_ids cuts a longer list there.
    std::vector<std::uint32_t> many(1000, 4);
    ClosedMsg full;
    CHECK(take_ids(many, &full) == max_ids);
    CHECK(worker_says<ClosedMsg>(as_received(encode(full))));
    LogMsg log;
    Received m = as_received(encode(LogMsg { LogLevel::notice, "text" }));
    REQUIRE(worker_says(m, &log));
    CHECK(log.level == LogLevel::notice);
    CHECK(log.text == "text");
    // A log text longer than a message holds is cut, not refused.
    const std::string big(5000, 'x');
    CHECK(encode(LogMsg { LogLevel::info, big }).payload.size() == max_message - 1);
}

TEST_CASE("parent messages decode to what was encoded")
{
    Received d = as_received(encode(DrainMsg { 17, true }));
    FromParent msg;
    std::string err;
    REQUIRE(decode_from_parent(d, &msg, &err));
    CHECK(std::get<DrainMsg>(msg).grace_s == 17);
    CHECK(std::get<DrainMsg>(msg).move);

    ShedMsg shed;
    REQUIRE(parent_says(as_received(encode(with_ids<ShedMsg>({ 1, 2, 3 }))), &shed));
    CHECK(shed.count == 3);
    CHECK(shed.ids[2] == 3);
    VerdictMsg verdict;
    REQUIRE(parent_says(as_received(encode(VerdictMsg { 77, Verdict::limit_rate })), &verdict));
    CHECK(verdict.id == 77);
    CHECK(verdict.verdict == Verdict::limit_rate);

    ConnectionInfo infos[2];
    infos[0].accepted_ns = 5;
    infos[0].id = 41;
    infos[1].id = 42;
    infos[1].from_balancer = true;
    reinterpret_cast<sockaddr_in*>(&infos[1].peer)->sin_family = AF_INET;
    reinterpret_cast<sockaddr_in*>(&infos[1].peer)->sin_port = htons(9);
    Encoded e;
    REQUIRE(encode_connections(infos, &e, &err));
    Received c = as_received(e, 2);
    REQUIRE(decode_from_parent(c, &msg, &err));
    const auto& got = std::get<ConnectionsMsg>(msg);
    CHECK(got.count == 2);
    CHECK(got.infos[0].accepted_ns == 5);
    CHECK(got.infos[0].id == 41);
    CHECK(got.infos[1].id == 42);
    CHECK_FALSE(got.infos[0].from_balancer);
    CHECK(got.infos[1].from_balancer);
    CHECK(ntohs(reinterpret_cast<const sockaddr_in*>(&got.infos[1].peer)->sin_port) == 9);
    CHECK(got.fds == c.fds);
    CHECK_FALSE(encode_connections({}, &e, &err));
}

TEST_CASE("a worker's message is refused for a wrong size, value, descriptor or direction")
{
    Received m = as_received(encode(with_ids<ClosedMsg>({ 1 })));
    m.payload_len = 3;
    CHECK_FALSE(worker_says<ClosedMsg>(m));
    m.payload_len = 0; // no id at all
    CHECK_FALSE(worker_says<ClosedMsg>(m));
    m.payload_len = 5;
    CHECK_FALSE(worker_says<ClosedMsg>(m));
    CHECK_FALSE(worker_says<ClosedMsg>(as_received(encode(with_ids<ClosedMsg>({ 1 })), 1)));
    Received hello = as_received(encode(with_ids<HelloDoneMsg>({ 1 })));
    hello.payload_len = 0;
    CHECK_FALSE(worker_says<HelloDoneMsg>(hello));
    // A source must be an IP address, exactly sized, zero after it.
    sockaddr_storage unspec {};
    CHECK_FALSE(worker_says<SourceMsg>(as_received(encode(SourceMsg { 1, unspec }))));
    Received src = as_received(encode(SourceMsg { 1, ipv6(1) }));
    src.payload_len--;
    CHECK_FALSE(worker_says<SourceMsg>(src));
    sockaddr_storage v4 {};
    v4.ss_family = AF_INET;
    Received padded = as_received(encode(SourceMsg { 1, v4 }));
    padded.payload[4 + sizeof(sockaddr_in) + 1] = 1;
    CHECK_FALSE(worker_says<SourceMsg>(padded));
    CHECK_FALSE(worker_says<ReadyMsg>(as_received(encode(ReadyMsg {}), 1))); // a descriptor
    Received ready_with_payload = as_received(encode(with_ids<ClosedMsg>({ 1 })));
    ready_with_payload.type = Msg::ready;
    CHECK_FALSE(worker_says<ReadyMsg>(ready_with_payload));
    Received level = as_received(encode(LogMsg { LogLevel::info, "x" }));
    level.payload[0] = 8;
    CHECK_FALSE(worker_says<LogMsg>(level));
    level.payload[0] = 2;
    CHECK_FALSE(worker_says<LogMsg>(level));
    Received empty_log = as_received(encode(ReadyMsg {}));
    empty_log.type = Msg::log;
    CHECK_FALSE(worker_says<LogMsg>(empty_log));
    FromWorker msg;
    std::string err;
    CHECK_FALSE(decode_from_worker(as_received(encode(DrainMsg { 1 })), &msg, &err));
    CHECK(err.find("not one a worker sends") != std::string::npos);
}

TEST_CASE("a parent's message is refused for a wrong size, descriptor or direction")
{
    Received d = as_received(encode(DrainMsg { 1 }));
    d.payload_len = 2;
    CHECK(parent_refuses(std::move(d)));
    CHECK(parent_refuses(as_received(encode(DrainMsg { 1 }), 1))); // a descriptor on drain
    CHECK(parent_refuses(as_received(encode(ReadyMsg {})))); // a worker's message
    CHECK(parent_refuses(as_received(encode(LogMsg { LogLevel::info, "x" }))));
    ConnectionInfo one[1];
    Encoded e;
    std::string err;
    REQUIRE(encode_connections(one, &e, &err));
    CHECK(parent_refuses(as_received(e, 0))); // no descriptor
    CHECK(parent_refuses(as_received(e, 2))); // more descriptors than records
    Received verdict = as_received(encode(VerdictMsg { 1, Verdict::ok }));
    verdict.payload[4] = 5; // no such verdict
    CHECK(parent_refuses(std::move(verdict)));
    Received shed = as_received(encode(with_ids<ShedMsg>({ 1 })));
    shed.payload_len = 2;
    CHECK(parent_refuses(std::move(shed)));
    // The worker's reports are not the parent's to send, and the other way round.
    CHECK(parent_refuses(as_received(encode(with_ids<ClosedMsg>({ 1 })))));
    CHECK(parent_refuses(as_received(encode(SourceMsg { 1, ipv6(1) }))));
    FromWorker from_worker;
    CHECK_FALSE(
        decode_from_worker(as_received(encode(with_ids<ShedMsg>({ 1 }))), &from_worker, &err));
    CHECK_FALSE(
        decode_from_worker(as_received(encode(VerdictMsg { 1, Verdict::ok })), &from_worker, &err));
}

namespace {
MovingMsg sample_moving()
{
    MovingMsg m;
    m.id = 77;
    m.accepted_ns = 123456789;
    m.routed_ns = 123999999;
    m.peer = ipv6(9);
    m.source = ipv6(10);
    m.sni = "www.example.com";
    m.route = "example.com";
    m.ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
    m.up = { 5000000, false, false, true, 4096, {} };
    m.down = { 42, false, false, false, 0, "pending down" };
    return m;
}

bool moving_refused(const MovingMsg& m, std::size_t nfds)
{
    Encoded e;
    std::string err;
    if (!encode_moving(m, &e, &err))
        return true;
    Received r = as_received(e, nfds);
    FromWorker msg;
    return !decode_from_worker(r, &msg, &err);
}
} // namespace

TEST_CASE("a moving message carries a connection's whole state both ways")
{
    Encoded e;
    std::string err;
    REQUIRE(encode_moving(sample_moving(), &e, &err));
    Received r = as_received(e, 3);
    MovingMsg got;
    REQUIRE(worker_says(r, &got));
    CHECK(got.id == 77);
    CHECK(got.accepted_ns == 123456789);
    CHECK(got.routed_ns == 123999999);
    const sockaddr_storage want = ipv6(10);
    CHECK(std::memcmp(&got.source, &want, sizeof(sockaddr_in6)) == 0);
    CHECK(got.sni == "www.example.com");
    CHECK(got.route == "example.com");
    CHECK(got.via.empty());
    CHECK(got.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1");
    CHECK(got.up.bytes == 5000000);
    CHECK(got.up.splicing);
    CHECK(got.up.in_pipe == 4096);
    CHECK(got.down.pending == "pending down");
    CHECK(got.fd_count() == 3);
    CHECK(got.fds == r.fds);

    // The parent forwards the same bytes; the new worker decodes them alike.
    Received again = as_received(e, 3);
    FromParent msg;
    REQUIRE(decode_from_parent(again, &msg, &err));
    REQUIRE(std::holds_alternative<MovingMsg>(msg));
    CHECK(std::get<MovingMsg>(msg).down.pending == "pending down");
}

TEST_CASE("a moving message is refused unless descriptors and state agree")
{
    CHECK_FALSE(moving_refused(sample_moving(), 3));
    CHECK(moving_refused(sample_moving(), 2)); // the pipe missing
    CHECK(moving_refused(sample_moving(), 4));
    MovingMsg no_pipe = sample_moving();
    no_pipe.up.in_pipe = 0;
    CHECK_FALSE(moving_refused(no_pipe, 2));
    CHECK(moving_refused(no_pipe, 3));

    MovingMsg m = sample_moving();
    m.up.shut = true; // shut before its end
    CHECK(moving_refused(m, 3));
    m = no_pipe;
    m.up.eof = m.up.shut = m.down.eof = m.down.shut = true; // nothing left to relay
    m.down.pending = {};
    CHECK(moving_refused(m, 2));
    m = no_pipe;
    m.up.eof = true; // ended, nothing pending, yet not passed on
    CHECK(moving_refused(m, 2));
    m = sample_moving();
    m.up.pending = "x"; // bytes in the pipe and in memory
    CHECK(moving_refused(m, 3));
    m = no_pipe;
    m.down.splicing = true;
    CHECK(moving_refused(m, 2));

    // More state than one message holds: not encoded (the connection stays).
    const std::string big(moving_room, 'b');
    m = no_pipe;
    m.down.pending = big;
    Encoded e;
    std::string err;
    CHECK_FALSE(encode_moving(m, &e, &err));
    CHECK(!err.empty());
    m.sni = m.route = m.ja4 = {};
    m.down.pending = std::string_view(big).substr(0, moving_room);
    CHECK(encode_moving(m, &e, &err));

    // A size that disagrees with the lengths it announces.
    REQUIRE(encode_moving(no_pipe, &e, &err));
    e.payload.push_back('x');
    FromWorker msg;
    Received r = as_received(e, 2);
    CHECK_FALSE(decode_from_worker(r, &msg, &err));
    e.payload.resize(moving_header - 1);
    r = as_received(e, 2);
    CHECK_FALSE(decode_from_worker(r, &msg, &err));
}
