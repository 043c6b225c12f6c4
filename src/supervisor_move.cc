// supervisor_move.cc: the parent's part in moving established connections on a rollover: a
// draining worker's moving message is checked (move_check.h, the worker's records) and
// forwarded to a worker that has room, or given back (supervisor_upgrade.cc: to the new
// parent of an upgrade). Nothing here reads or writes the descriptors.
#include "supervisor.h"

#include "move_check.h"
#include "moving_forward.h"

#include "log.h"

#include <variant>

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
    if (!rollover_queue_.empty()) // behind those that wait already
        return queue_rollover(w, m, c.id, err);
    switch (try_forward(w, m, c.id, err)) {
    case Adopt::done:
        return true;
    case Adopt::wait:
        return queue_rollover(w, m, c.id, err);
    case Adopt::no_room:
        return give_back(w, m, c.id, err);
    case Adopt::error:
        break;
    }
    return false;
}

// To the least-loaded worker that takes connections; one whose channel is full is marked so
// and the next is tried. `wait`: only full channels stand in the way.
Supervisor::Adopt Supervisor::try_forward(
    WorkerSlot& w, Received& m, std::uint32_t id, std::string* err)
{
    while (WorkerSlot* to = dispatcher_.least_loaded()) {
        if (!dispatcher_.transfer(w, *to, id, err))
            return Adopt::error;
        const int sent = to->channel->send_moving(as_sent(m), fds_of(m));
        if (sent == 0) {
            w.moved_out++;
            to->moved_in++;
            return Adopt::done;
        }
        dispatcher_.transfer(*to, w, id, err);
        if (sent != EAGAIN)
            break; // its channel is gone: it is replaced when it exits
        to->waiting_for_room = true;
        to->channel->wait_for_room();
    }
    return dispatcher_.room_when_writable() ? Adopt::wait : Adopt::no_room;
}

// Its descriptors wait here, its record with the old worker, until a channel has room
// (retry_moves). Without this a burst of thousands filled the new workers' channels and
// most went back to the old ones, to be cut at -g.
bool Supervisor::queue_rollover(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err)
{
    if (rollover_queue_.size() >= max_queued_moves)
        return give_back(w, m, id, err);
    rollover_queue_.push_back({ std::make_unique<Received>(std::move(m)), id, w.pid });
    return true;
}

// The rollover's queue, in order. A connection whose old worker has ended since (its record
// released with it) is taken over like an upgrade's: a fresh id, counted for its source.
void Supervisor::retry_rollover_queue()
{
    while (!rollover_queue_.empty()) {
        QueuedUp& q = rollover_queue_.front();
        WorkerSlot* from = find(q.pid);
        std::string err;
        Adopt a;
        if (from && !from->violated && !from->reaped && from->held.contains(q.id)) {
            a = try_forward(*from, *q.m, q.id, &err);
            if (a == Adopt::no_room && !give_back(*from, *q.m, q.id, &err))
                violation(*from, err);
        } else {
            FromWorker msg;
            if (!decode_from_worker(*q.m, &msg, &err)) // decoded once already: cannot fail
                return;
            a = try_adopt(*q.m, std::get<MovingMsg>(msg), &err);
            if (a == Adopt::no_room)
                logf(LogLevel::err,
                    "connection %u: no worker has room for it and its old worker %d has "
                    "ended; lost",
                    q.id, static_cast<int>(q.pid));
        }
        if (a == Adopt::wait)
            return;
        rollover_queue_.pop_front();
    }
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
