// route.cc: route selection by existence, per connection, so hosts can change at any time.
#include "route.h"

#include "alpn_name.h"
#include "hashed_name.h"
#include "hostname.h"
#include "hosts_layout.h"

#include <sys/stat.h>

namespace sniproxy {

RouteDecision decide_route(const HelloInfo& hello, bool all_hashed, const PathExists& exists)
{
    RouteDecision d;
    std::string canonical;
    if (hello.has_sni) {
        const NameError e = canonicalize_hostname(hello.sni, &canonical);
        if (e != NameError::ok) {
            d.status = RouteStatus::bad_sni;
            d.sni = hello.sni; // escaped, and cut, by the log line
            d.reason = name_error_string(e);
            return d;
        }
        d.sni = canonical;
    } else {
        d.sni = "-";
    }
    for (const std::string& candidate : route_candidates(hello.has_sni ? &canonical : nullptr)) {
        const std::string dir = host_directory(candidate, all_hashed);
        const std::string socket = socket_path(dir);
        if (!exists(socket))
            continue;
        d.status = RouteStatus::found;
        d.route.name = candidate;
        d.route.socket = socket;
        // One lstat of HOST/alpn first, so that entries without alpn/ pay nothing per offer.
        if (!hello.alpn.empty() && exists(entry_path(dir, alpn_dir))) {
            if (auto choice = choose_alpn_socket(dir, hello.alpn, exists)) {
                d.route.socket = std::move(choice->socket);
                d.route.alpn = std::move(choice->protocol);
            }
        }
        if (exists(entry_path(dir, proxy_v2_file))) {
            d.route.proxy = ProxyHeader::v2;
            d.route.proxy_ja4 = exists(entry_path(dir, proxy_v2_ja4_file));
        } else if (exists(entry_path(dir, proxy_v1_file)))
            d.route.proxy = ProxyHeader::v1;
        return d;
    }
    d.status = RouteStatus::no_route;
    return d;
}

bool path_exists(const std::string& path)
{
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
}

} // namespace sniproxy
