// route.h: choosing the backend for a ClientHello. The decision is pure (given a way to ask
// whether a path exists); route.cc also has the one-line filesystem probe workers use.
#pragma once

#include "clienthello.h"

#include <functional>
#include <string>

namespace sniproxy {

enum class ProxyHeader { none, v1, v2 };

struct Route {
    // The candidate that matched: "example.com", "*.example.com", "_nosni", "_default".
    std::string name;
    std::string socket; // relative path inside the hosts directory, fits sun_path
    std::string alpn; // the client's protocol whose alpn/ entry chose `socket`, else ""
    ProxyHeader proxy = ProxyHeader::none;
    bool proxy_ja4 = false; // v2 header with the JA4 TLV (HOST/send-proxy-v2-ja4)
};

enum class RouteStatus { found, no_route, bad_sni };

struct RouteDecision {
    RouteStatus status = RouteStatus::no_route;
    Route route;
    std::string sni; // canonical SNI, the raw bytes of an invalid one (for the log), or "-"
    std::string reason; // why the SNI was refused (bad_sni)
};

using PathExists = std::function<bool(const std::string& path)>;

// Exact name, then "*." + parent, then _default (no SNI: _nosni, then _default): the first
// whose tls-socket exists. Within it the client's first offered protocol with an
// alpn/ENC/tls-socket takes that socket instead; the entry's send-proxy-* files apply either
// way. An SNI that is present but invalid is refused here and never becomes a path.
RouteDecision decide_route(const HelloInfo& hello, bool all_hashed, const PathExists& exists);

// lstat(2): a dangling tls-socket symlink still "exists", so it fails loudly at connect
// instead of silently falling back to _default.
bool path_exists(const std::string& path);

} // namespace sniproxy
