// protocol_moving.cc: the moving message (MovingMsg), an established connection handed from
// one worker to another through the parent (and, on an upgrade, from the old parent to the
// new one): its encoder, its decoder and the relay states both refuse.
#include "protocol.h"

#include "protocol_detail.h"

#include <cstring>
#include <utility>

namespace sniproxy {

using namespace protocol_detail;

namespace {
    // MovingMsg: the fixed header's offsets (protocol.h: moving_header), then sni, route,
    // via, alpn, ja4, the up direction's pending bytes, the down direction's.
    namespace mv {
        constexpr std::size_t id = 0, accepted = 4, routed = 12, up_bytes = 20, down_bytes = 28,
                              in_pipe = 36, up_pending = 40, down_pending = 42, up_flags = 44,
                              down_flags = 45, lengths = 46, moved = 51, peer = 52, source = 80;
        constexpr std::size_t strings = 5;
        static_assert(source + address_room == moving_header);
        constexpr std::uint8_t eof = 1, shut = 2, splicing = 4;
        // A pipe never holds more than its largest size (fs.pipe-max-size's default).
        constexpr std::uint32_t max_in_pipe = 1 << 20;
    } // namespace mv

    std::uint8_t flags_of(const MovingDirection& d)
    {
        return (d.eof ? mv::eof : 0) | (d.shut ? mv::shut : 0) | (d.splicing ? mv::splicing : 0);
    }

    // A state no relay can be in (relay.cc keeps these): the receiver would relay it wrong.
    bool moving_state_ok(const MovingMsg& m, std::string* err)
    {
        const char* why = nullptr;
        if ((m.up.shut && !m.up.eof) || (m.down.shut && !m.down.eof))
            why = "a direction shut down before it ended";
        else if (m.up.shut && m.down.shut)
            why = "both directions ended";
        else if (m.down.splicing || m.down.in_pipe > 0)
            why = "the backend's direction splicing";
        else if (m.up.in_pipe > 0 && (!m.up.splicing || !m.up.pending.empty()))
            why = "bytes both in the pipe and in memory";
        else if (m.up.in_pipe > mv::max_in_pipe)
            why = "more bytes in the pipe than a pipe holds";
        else if (m.up.eof && !m.up.shut && m.up.pending.empty() && m.up.in_pipe == 0)
            why = "the client's end not passed on";
        else if (m.down.eof && !m.down.shut && m.down.pending.empty())
            why = "the backend's end not passed on";
        if (why)
            *err = std::string("moving message with ") + why;
        return why == nullptr;
    }
} // namespace

namespace protocol_detail {

    bool decode_moving(const Received& m, MovingMsg* out, std::string* err)
    {
        if (m.payload_len < moving_header) {
            *err = "moving message of " + std::to_string(m.payload_len) + " bytes";
            return false;
        }
        const std::uint8_t* p = m.payload;
        MovingMsg v;
        v.id = u32(p + mv::id);
        std::memcpy(&v.accepted_ns, p + mv::accepted, sizeof v.accepted_ns);
        std::memcpy(&v.routed_ns, p + mv::routed, sizeof v.routed_ns);
        std::memcpy(&v.up.bytes, p + mv::up_bytes, sizeof v.up.bytes);
        std::memcpy(&v.down.bytes, p + mv::down_bytes, sizeof v.down.bytes);
        v.up.in_pipe = u32(p + mv::in_pipe);
        std::uint16_t pending[2];
        std::memcpy(pending, p + mv::up_pending, sizeof pending);
        for (auto [d, at] : { std::pair { &v.up, mv::up_flags }, { &v.down, mv::down_flags } }) {
            if (p[at] & ~(mv::eof | mv::shut | mv::splicing)) {
                *err = "moving message with unknown flags";
                return false;
            }
            d->eof = p[at] & mv::eof;
            d->shut = p[at] & mv::shut;
            d->splicing = p[at] & mv::splicing;
        }
        std::size_t total = moving_header + pending[0] + pending[1];
        for (std::size_t i = 0; i < mv::strings; i++)
            total += p[mv::lengths + i];
        v.moved = p[mv::moved];
        if (m.payload_len != total) {
            *err = "moving message of " + std::to_string(m.payload_len) + " bytes (expected "
                + std::to_string(total) + ")";
            return false;
        }
        if (!decode_address(p + mv::peer, &v.peer, true, "moving", err)
            || !decode_address(p + mv::source, &v.source, true, "moving", err))
            return false;
        const char* at = reinterpret_cast<const char*>(p + moving_header);
        for (std::size_t i = 0; i < mv::strings; i++) {
            std::string_view* s[] = { &v.sni, &v.route, &v.via, &v.alpn, &v.ja4 };
            *s[i] = { at, p[mv::lengths + i] };
            at += p[mv::lengths + i];
        }
        v.up.pending = { at, pending[0] };
        v.down.pending = { at + pending[0], pending[1] };
        if (!moving_state_ok(v, err))
            return false;
        if (m.nfds != v.fd_count()) {
            *err = "moving message with " + std::to_string(m.nfds) + " descriptor(s) (expected "
                + std::to_string(v.fd_count()) + ")";
            return false;
        }
        v.fds = const_cast<UniqueFd*>(m.fds);
        *out = v;
        return true;
    }

} // namespace protocol_detail

bool encode_moving(const MovingMsg& m, Encoded* out, std::string* err)
{
    const std::string_view strings[] = { m.sni, m.route, m.via, m.alpn, m.ja4 };
    std::size_t size = moving_header + m.up.pending.size() + m.down.pending.size();
    for (std::string_view s : strings) {
        if (s.size() > 255) {
            *err = "a log field of " + std::to_string(s.size()) + " bytes";
            return false;
        }
        size += s.size();
    }
    if (size > max_message - 1) {
        *err = std::to_string(size - moving_header) + " bytes of state (room for "
            + std::to_string(moving_room) + ")";
        return false;
    }
    if (!moving_state_ok(m, err))
        return false;
    out->type = Msg::moving;
    out->payload.assign(moving_header, '\0');
    char* p = out->payload.data();
    const std::uint16_t pending[2] = { static_cast<std::uint16_t>(m.up.pending.size()),
        static_cast<std::uint16_t>(m.down.pending.size()) };
    std::memcpy(p + mv::id, &m.id, sizeof m.id);
    std::memcpy(p + mv::accepted, &m.accepted_ns, sizeof m.accepted_ns);
    std::memcpy(p + mv::routed, &m.routed_ns, sizeof m.routed_ns);
    std::memcpy(p + mv::up_bytes, &m.up.bytes, sizeof m.up.bytes);
    std::memcpy(p + mv::down_bytes, &m.down.bytes, sizeof m.down.bytes);
    std::memcpy(p + mv::in_pipe, &m.up.in_pipe, sizeof m.up.in_pipe);
    std::memcpy(p + mv::up_pending, pending, sizeof pending);
    p[mv::up_flags] = static_cast<char>(flags_of(m.up));
    p[mv::down_flags] = static_cast<char>(flags_of(m.down));
    p[mv::moved] = static_cast<char>(m.moved);
    for (std::size_t i = 0; i < mv::strings; i++)
        p[mv::lengths + i] = static_cast<char>(strings[i].size());
    std::memcpy(p + mv::peer, &m.peer, address_size(m.peer));
    std::memcpy(p + mv::source, &m.source, address_size(m.source));
    for (std::string_view s : strings)
        out->payload.append(s);
    out->payload.append(m.up.pending);
    out->payload.append(m.down.pending);
    return true;
}

} // namespace sniproxy
