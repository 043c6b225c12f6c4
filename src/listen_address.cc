// listen_address.cc: parsing and printing of listener and peer addresses (no I/O).
#include "listen_address.h"

#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace sniproxy {

namespace {
    bool parse_port(std::string_view text, in_port_t& port)
    {
        unsigned value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535)
            return false;
        port = htons(static_cast<in_port_t>(value));
        return true;
    }

    ListenAddress v4(in_addr a, in_port_t port)
    {
        ListenAddress l;
        auto* sin = reinterpret_cast<sockaddr_in*>(&l.addr);
        sin->sin_family = AF_INET;
        sin->sin_addr = a;
        sin->sin_port = port;
        l.len = sizeof *sin;
        return l;
    }

    ListenAddress v6(in6_addr a, in_port_t port)
    {
        ListenAddress l;
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&l.addr);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = a;
        sin6->sin6_port = port;
        l.len = sizeof *sin6;
        return l;
    }
} // namespace

bool parse_listen_address(std::string_view text, std::vector<ListenAddress>* out, std::string* err)
{
    const std::string quoted = "-l '" + std::string(text) + "': ";
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return set_error(
            err, quoted + "expected ADDRESS:PORT, e.g. 127.0.0.1:443, [::1]:443 or *:443");
    std::string host(text.substr(0, colon));
    in_port_t port = 0;
    if (!parse_port(text.substr(colon + 1), port))
        return set_error(err, quoted + "the port must be a number from 1 to 65535");
    if (host == "*") {
        out->push_back(v4(in_addr { htonl(INADDR_ANY) }, port));
        out->push_back(v6(in6addr_any, port));
        return true;
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        in6_addr a6 {};
        if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6) != 1)
            return set_error(err, quoted + "not a numeric IPv6 address");
        out->push_back(v6(a6, port));
        return true;
    }
    in_addr a4 {};
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1)
        return set_error(err, quoted + "not a numeric IPv4 address (write IPv6 as [addr]:port)");
    out->push_back(v4(a4, port));
    return true;
}

std::string format_address(const sockaddr_storage& addr)
{
    char buf[INET6_ADDRSTRLEN] = "?";
    if (addr.ss_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(&addr);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&addr);
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
    }
    if (addr.ss_family == AF_UNIX)
        return "unix";
    return "?";
}

} // namespace sniproxy
