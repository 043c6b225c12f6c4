// supervisor_move.cc: the parent's part in moving established connections: a draining
// worker's moving message is checked (move_check.h, the worker's records) and forwarded to a
// worker that has room, or given back. Nothing here reads or writes the descriptors.
#include "supervisor.h"

#include "move_check.h"

#include "log.h"

namespace sniproxy {

// A draining worker hands over an established connection: after the checks it goes to the
// least-loaded worker that takes connections, or, when none has room, back to the worker it
// came from (which carries on with it as before). The descriptors are only passed on.
bool Supervisor::forward_moving(WorkerSlot& w, Received& m, const MovingMsg& c, std::string* err)
{
    const std::string what = "handed over connection " + std::to_string(c.id);
    if (!check_moving_fds({ m.fds, m.nfds }, c.up.in_pipe > 0, err)) {
        *err = what + " with bad descriptors: " + *err;
        return false;
    }
    const auto held = w.held.find(c.id);
    if (held == w.held.end() || held->second.in_hello) {
        *err = what + (held == w.held.end() ? ", which it does not hold" : " in its hello phase");
        return false;
    }
    if (!w.draining) {
        *err = what + " while not draining";
        return false;
    }
    WorkerSlot* to = dispatcher_.least_loaded();
    if (!dispatcher_.transfer(w, to ? *to : w, c.id, err))
        return false;
    int fds[3];
    for (std::size_t i = 0; i < m.nfds; i++)
        fds[i] = m.fds[i].get();
    const Encoded e { Msg::moving,
        std::string(reinterpret_cast<const char*>(m.payload), m.payload_len) };
    if (to && to->channel->send_moving(e, { fds, m.nfds }) == 0) {
        w.moved_out++;
        to->moved_in++;
        return true;
    }
    if (to) // its channel is full: back where it came from
        dispatcher_.transfer(*to, w, c.id, err);
    w.moves_refused++;
    if (w.channel->send_moving(e, { fds, m.nfds }) != 0) {
        logf(LogLevel::err, "worker %d: connection %u could not be moved or given back; lost",
            static_cast<int>(w.pid), c.id);
        const std::uint32_t id = c.id;
        return dispatcher_.on_closed(w, { &id, 1 }, err);
    }
    return true;
}


// The new binary takes the listening sockets; when its workers are ready it sends us SIGTERM
// and we drain as on any stop. Both accept from the same sockets meanwhile.
void Supervisor::upgrade()
{
    if (stopping_ || upgrade_child_ > 0) {
        logf(LogLevel::warning, "SIGUSR2 ignored: %s",
            stopping_ ? "stopping" : "an upgrade is under way");
        return;
    }
    std::string err;
    if (!spawner_.spawn_upgrade(&upgrade_child_, &err)) {
        upgrade_child_ = -1;
        logf(LogLevel::err, "SIGUSR2: %s", err.c_str());
    }
}

} // namespace sniproxy
