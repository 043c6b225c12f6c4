// compact_address.h: what a connection keeps of an address (and of its JA4) while it is open,
// in the bytes they need rather than a sockaddr_storage's 128 and a heap-allocated string:
// issue 16, an idle established connection costs its worker as little memory as possible.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sniproxy {

// An IPv4 or IPv6 socket address in the 28 bytes of a sockaddr_in6. Any other family (a
// socketpair's AF_UNIX in tests) keeps only its family, which is all format_address() shows
// of it. Reads as a sockaddr_storage wherever one is expected, and has its ss_family.
struct CompactAddress {
    sa_family_t ss_family = AF_UNSPEC;
    unsigned char rest[sizeof(sockaddr_in6) - sizeof(sa_family_t)] {};

    CompactAddress() = default;
    // Explicit, so that `cond ? compact : storage` has one meaning: a sockaddr_storage.
    explicit CompactAddress(const sockaddr_storage& ss) { *this = ss; }
    CompactAddress& operator=(const sockaddr_storage& ss)
    {
        ss_family = ss.ss_family;
        std::memset(rest, 0, sizeof rest);
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
            std::memcpy(
                rest, reinterpret_cast<const unsigned char*>(&ss) + sizeof ss_family, sizeof rest);
        return *this;
    }
    operator sockaddr_storage() const
    {
        sockaddr_storage ss {};
        ss.ss_family = ss_family;
        std::memcpy(reinterpret_cast<unsigned char*>(&ss) + sizeof ss_family, rest, sizeof rest);
        return ss;
    }
};
static_assert(sizeof(CompactAddress) == sizeof(sockaddr_in6));

// Text of at most N bytes, kept in place: JA4 is always 36 characters (ja4.h), or empty.
// Longer text is cut at N (a JA4 never is).
template <std::size_t N> class FixedText {
public:
    FixedText& operator=(std::string_view s)
    {
        len_ = static_cast<std::uint8_t>(std::min(s.size(), N));
        std::memcpy(text_, s.data(), len_);
        return *this;
    }
    operator std::string_view() const { return { text_, len_ }; }
    std::size_t size() const { return len_; }

private:
    static_assert(N < 256);
    char text_[N];
    std::uint8_t len_ = 0;
};

constexpr std::size_t ja4_length = 36; // "t13d1516h2_8daaf6152771_e5627efa2ab1"
using Ja4Text = FixedText<ja4_length>;

} // namespace sniproxy
