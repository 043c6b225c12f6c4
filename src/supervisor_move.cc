// supervisor_move.cc: the parent's part in moving established connections on a rollover: a
// draining worker's moving message is checked (move_check.h, the worker's records) and
// forwarded to a worker that has room, or given back (supervisor_upgrade.cc: to the new
// parent of an upgrade). Nothing here reads or writes the descriptors.
#include "supervisor.h"

#include "move_check.h"
#include "moving_forward.h"

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
    if (stopping_ && upgrade_link_ && to_successor_)
        return move_to_successor(w, m, c, err);
    WorkerSlot* to = dispatcher_.least_loaded();
    if (!dispatcher_.transfer(w, to ? *to : w, c.id, err))
        return false;
    const Encoded e = as_sent(m);
    if (to && to->channel->send_moving(e, fds_of(m)) == 0) {
        w.moved_out++;
        to->moved_in++;
        return true;
    }
    if (to) // its channel is full: back where it came from
        dispatcher_.transfer(*to, w, c.id, err);
    return give_back(w, m, c.id, err);
}

// The worker it came from keeps it, as it was, and does not offer it again.
bool Supervisor::give_back(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err)
{
    w.moves_refused++;
    if (w.channel->send_moving(as_sent(m), fds_of(m)) != 0) {
        logf(LogLevel::err, "worker %d: connection %u could not be moved or given back; lost",
            static_cast<int>(w.pid), id);
        return dispatcher_.on_closed(w, { &id, 1 }, err);
    }
    return true;
}

} // namespace sniproxy
