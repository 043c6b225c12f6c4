// metrics_listener.h: binding the socket that -o metrics names, in the parent before it
// drops its capabilities (a port below 1024 needs them), for the metrics server to accept on.
#pragma once

#include "fd.h"
#include "settings.h"

#include <sys/types.h>

#include <string>

namespace sniproxy {

struct MetricsListener {
    UniqueFd fd; // listening, non-blocking, close-on-exec
    std::string path; // unix:PATH: the socket file, removed again by remove_socket_file
    dev_t dev = 0; // the file we bound, so that we never remove a successor's
    ino_t ino = 0;
};

// ADDR:PORT: a TCP socket (SO_REUSEPORT, so that the new binary of an upgrade can bind it
// while the old one still serves); `*:PORT` is one IPv6 socket that takes IPv4 too, or IPv4
// alone where there is no IPv6. unix:PATH: a stale socket file there is removed first
// (anything else there is an error), and the socket gets mode 0660.
bool bind_metrics_listener(const MetricsAddress& address, MetricsListener* out, std::string* err);

// Removes the unix socket file if it is still the one we bound.
void remove_socket_file(const MetricsListener& listener);

} // namespace sniproxy
