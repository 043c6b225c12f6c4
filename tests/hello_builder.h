// hello_builder.h: builds ClientHello byte vectors for tests, valid or broken on purpose,
// and re-frames a handshake message into TLS records of any size.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sniproxy::test {

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& b, std::size_t v)
{
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

inline void append(Bytes& b, const Bytes& more)
{
    b.insert(b.end(), more.begin(), more.end());
}

inline Bytes extension(std::uint16_t type, const Bytes& data)
{
    Bytes e;
    put16(e, type);
    put16(e, data.size());
    append(e, data);
    return e;
}

// server_name extension with one host_name entry.
inline Bytes sni_extension(const std::string& name)
{
    Bytes entry { 0 };
    put16(entry, name.size());
    entry.insert(entry.end(), name.begin(), name.end());
    Bytes list;
    put16(list, entry.size());
    append(list, entry);
    return extension(0, list);
}

inline Bytes alpn_extension(const std::vector<std::string>& protos)
{
    Bytes names;
    for (const auto& p : protos) {
        names.push_back(static_cast<std::uint8_t>(p.size()));
        names.insert(names.end(), p.begin(), p.end());
    }
    Bytes list;
    put16(list, names.size());
    append(list, names);
    return extension(16, list);
}

// ClientHello body: version, random, empty session id, one cipher suite, null compression,
// then the extension block (omitted entirely when with_extensions is false).
inline Bytes hello_body(const Bytes& extensions, bool with_extensions = true)
{
    Bytes b { 0x03, 0x03 };
    b.insert(b.end(), 32, 0xab);
    b.push_back(0); // session id
    put16(b, 2);
    b.push_back(0x13);
    b.push_back(0x01);
    b.push_back(1);
    b.push_back(0);
    if (with_extensions) {
        put16(b, extensions.size());
        append(b, extensions);
    }
    return b;
}

inline Bytes handshake(const Bytes& body, std::uint8_t type = 1)
{
    Bytes m { type, static_cast<std::uint8_t>(body.size() >> 16) };
    put16(m, body.size());
    append(m, body);
    return m;
}

// Wraps `payload` in records of at most `fragment` bytes each.
inline Bytes records(const Bytes& payload, std::size_t fragment = 16384, std::uint8_t type = 22)
{
    Bytes out;
    for (std::size_t off = 0; off < payload.size(); off += fragment) {
        const std::size_t n = std::min(fragment, payload.size() - off);
        out.push_back(type);
        out.push_back(3);
        out.push_back(1);
        put16(out, n);
        out.insert(out.end(), payload.begin() + off, payload.begin() + off + n);
    }
    return out;
}

inline Bytes hello_for(const std::string& sni)
{
    return records(handshake(hello_body(sni_extension(sni))));
}

inline Bytes read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Extracts the handshake bytes from a stream of records (the captures are well-formed).
inline Bytes unframe(const Bytes& stream)
{
    Bytes out;
    for (std::size_t off = 0; off + 5 <= stream.size();) {
        const std::size_t n = std::size_t { stream[off + 3] } << 8 | stream[off + 4];
        out.insert(out.end(), stream.begin() + off + 5, stream.begin() + off + 5 + n);
        off += 5 + n;
    }
    return out;
}

} // namespace sniproxy::test
