// listeners.h: binding the listening sockets, or adopting the ones a service manager passed.
#pragma once

#include "fd.h"
#include "listen_address.h"

#include <string>
#include <vector>

namespace sniproxy {

// TCP keepalive on every listener, inherited by accepted client sockets.
constexpr int keepalive_idle_s = 60;
constexpr int keepalive_interval_s = 10;
constexpr int keepalive_probes = 6;

// Binds and listens on each address (non-blocking, close-on-exec, IPv6 sockets v6-only),
// appending to `*out`; false and an error naming the address in `*err` if one fails.
bool bind_listeners(
    const std::vector<ListenAddress>& addresses, std::vector<UniqueFd>* out, std::string* err);

// bind() and listen() on `fd`, failing with a sentence that names `where` (and, for EACCES,
// the capability a low port needs). Also used for the metrics listener.
bool bind_and_listen(int fd, const sockaddr_storage& addr, socklen_t len, const std::string& where,
    int backlog, std::string* err);

// Adopts systemd's LISTEN_FDS (when LISTEN_PID is us) or a listening socket on stdin
// (inetd "wait", s6, StandardInput=socket). Returns false when there is none; `*how` says
// where they came from, `*err` is set when something was passed but is unusable.
bool adopt_listeners(std::vector<UniqueFd>* out, std::string* how, std::string* err);

// How many connections wait in a TCP listener's accept queue (TCP_INFO: on a listener,
// tcpi_unacked is the queue's length). False with a reason for any other socket.
bool accept_queue_length(int listener, std::size_t* queued, std::string* err);

// inetd "wait" passes the listening socket as stdin, stdout and stderr: once adopted, point
// any standard descriptor that is a listening socket at /dev/null, so that no worker (and no
// log line) ever writes to it.
void detach_stdio_sockets();

} // namespace sniproxy
