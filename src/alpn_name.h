// alpn_name.h: the directory names of HOST/alpn/PROTO/tls-socket (DESIGN.md, "More in the
// hosts directory") and the choice among them. Pure logic: the filesystem is asked through
// a callback.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sniproxy {

// Every byte outside a-z 0-9 . - as '%' and two lowercase hex digits:
// "acme-tls/1" -> "acme-tls%2f1", "h2" -> "h2", "HTTP/1.1" -> "%48%54%54%50%2f1.1".
std::string encode_alpn_name(std::string_view protocol);

// The protocol a directory name stands for, for the checker. The name must be exactly what
// encode_alpn_name gives for some ALPN protocol ID (1 to 255 bytes): no '%' before a byte that
// needs none, no uppercase hex, no "." or "..". False with *err filled otherwise.
bool decode_alpn_name(std::string_view name, std::string* protocol, std::string* err);

struct AlpnChoice {
    std::string protocol; // the client's protocol that chose the entry (the log's alpn=)
    std::string socket; // host_dir + "/alpn/" + encoded + "/tls-socket"
};

// The client's first offered protocol (in its order) whose HOST/alpn/ENC/tls-socket exists,
// else nothing (the caller then uses HOST/tls-socket). Protocols that encode to "." or "..",
// or whose path would not fit in sun_path, have no entry and are not asked about.
// host_dir is the route's directory inside the hosts directory (plain or hashed name).
std::optional<AlpnChoice> choose_alpn_socket(std::string_view host_dir,
    const std::vector<std::string>& offered, const std::function<bool(const std::string&)>& exists);

} // namespace sniproxy
