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

// TCP_DEFER_ACCEPT on each TCP listener, for `seconds`: the kernel queues a connection for
// accept once its first bytes arrive, so the hello is there when the worker first reads, and
// a client that stays silent is not accepted until the period is over (Linux rounds it up to
// its SYN-ACK retransmissions: 1, 3, 7, 15, 31... s; then it queues the connection anyway,
// and the hello timeout applies from then on).
// Called for every listener, bound or passed (systemd, inetd, the old parent on upgrade).
void defer_accept(const std::vector<UniqueFd>& listeners, int seconds);
// The period the daemon defers for: one SYN-ACK retransmission, enough for a hello in the
// client's first segment after its ACK. No longer: a silent client waiting in the kernel is
// unseen by the deny list, the per-source limits and the shedding (DESIGN: refused ones are
// closed at once), and thousands of them would fill the SYN queue.
constexpr int defer_accept_seconds = 1;

// How many connections wait in a TCP listener's accept queue (TCP_INFO: on a listener,
// tcpi_unacked is the queue's length). False with a reason for any other socket.
bool accept_queue_length(int listener, std::size_t* queued, std::string* err);

// inetd "wait" passes the listening socket as stdin, stdout and stderr: once adopted, point
// any standard descriptor that is a listening socket at /dev/null, so that no worker (and no
// log line) ever writes to it.
void detach_stdio_sockets();

} // namespace sniproxy
