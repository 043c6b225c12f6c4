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
    if (held == w.held.end() || held->second.in_hello || held->second.in_transit) {
        *err = what
            + (held == w.held.end()         ? ", which it does not hold"
                    : held->second.in_hello ? " in its hello phase"
                                            : " a second time");
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
// and the next is tried, one whose channel failed gets nothing more. `wait`: only full
// channels stand in the way.
Supervisor::Adopt Supervisor::try_forward(
    WorkerSlot& w, Received& m, std::uint32_t id, std::string* err)
{
    while (WorkerSlot* to = dispatcher_.least_loaded()) {
        if (!dispatcher_.transfer(w, *to, id, err))
            return Adopt::error;
        const int sent = to->channel->send_moving(as_sent(m), fds_of(m));
        if (sent == 0) {
            to->held.at(id).in_transit = false;
            w.moved_out++;
            to->moved_in++;
            return Adopt::done;
        }
        dispatcher_.transfer(*to, w, id, err);
        send_failed(*to, sent);
    }
    return dispatcher_.room_when_writable() ? Adopt::wait : Adopt::no_room;
}

// Its descriptors wait here, its record with the old worker (marked in transit), until a
// channel has room (retry_moves). Without this a burst of thousands filled the new workers'
// channels and most went back to the old ones, to be cut at -g.
bool Supervisor::queue_rollover(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err)
{
    HeldConnection& held = w.held.at(id);
    if (!enqueue(rollover_queue_, m, id, w.pid, held))
        return give_back(w, m, id, err);
    held.in_transit = true;
    return true;
}

// The rollover's queue, in order. A connection whose old worker has ended since (its record
// released with it) is taken over like an upgrade's: a fresh id, counted for the source its
// record had (not what the message says).
void Supervisor::retry_rollover_queue()
{
    while (!rollover_queue_.empty()) {
        QueuedUp& q = rollover_queue_.front();
        WorkerSlot* from = find(q.pid);
        std::string err;
        Adopt a;
        WorkerSlot* liar = nullptr; // replaced once its entry has left the queue
        if (from && !from->reaped) { // not violated: drop_queued took its entries
            a = try_forward(*from, *q.m, q.id, &err);
            if (a == Adopt::no_room && !give_back(*from, *q.m, q.id, &err))
                liar = from;
        } else {
            FromWorker msg;
            if (!decode_from_worker(*q.m, &msg, &err)) // decoded once already: cannot fail
                return;
            a = try_adopt(*q.m, std::get<MovingMsg>(msg), q.held.key, &err);
            if (a == Adopt::no_room)
                logf(LogLevel::err,
                    "connection %u: no worker has room for it and its old worker %d has "
                    "ended; lost",
                    q.id, static_cast<int>(q.pid));
        }
        if (a == Adopt::wait) {
            if (from && !from->reaped)
                from->held.at(q.id).in_transit = true;
            return;
        }
        dequeue(rollover_queue_);
        if (liar)
            violation(*liar, err);
    }
}

// The worker it came from keeps it, as it was, and does not offer it again. Its full channel:
// the give-back waits for room (the record stays in transit meanwhile).
bool Supervisor::give_back(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err)
{
    w.moves_refused++;
    HeldConnection& held = w.held.at(id);
    held.in_transit = false;
    const int sent
        = give_back_queue_.empty() ? w.channel->send_moving(as_sent(m), fds_of(m)) : EAGAIN;
    if (sent == EAGAIN && enqueue(give_back_queue_, m, id, w.pid, held)) {
        held.in_transit = true;
        w.channel->wait_for_room();
        return true;
    }
    if (sent != 0) {
        logf(LogLevel::err, "worker %d: connection %u could not be moved or given back; lost",
            static_cast<int>(w.pid), id);
        return dispatcher_.on_closed(w, { &id, 1 }, err);
    }
    return true;
}

// recvmsg cut the descriptors (MSG_CTRUNC: we are out of them), after the worker let go of the
// connection: it is lost, and the worker carries on.
bool Supervisor::on_moving_cut(WorkerSlot& w, std::uint32_t id)
{
    const auto held = w.held.find(id);
    std::string err = "handed over connection " + std::to_string(id) + " (descriptors cut), ";
    if (!w.draining || held == w.held.end() || held->second.in_hello || held->second.in_transit) {
        violation(w, err + "which it could not hand over");
        return false;
    }
    moves_cut_++;
    logf(LogLevel::err,
        "worker %d: connection %u lost: its descriptors were cut on arrival (the parent is out "
        "of them; %zu so far)",
        static_cast<int>(w.pid), id, moves_cut_);
    if (!dispatcher_.on_closed(w, { &id, 1 }, &err)) {
        violation(w, err);
        return false;
    }
    return true;
}

// A move that a new worker's channel refused: gone for good, that worker gets no more;
// full, or the kernel's limit of the moment, it is tried again when it has room.
void Supervisor::send_failed(WorkerSlot& to, int error)
{
    if (!channel_broken(error)) {
        to.waiting_for_room = true;
        to.channel->wait_for_room();
        return;
    }
    logf(LogLevel::err, "worker %d: %s; no more connections for it", static_cast<int>(to.pid),
        errno_message("moving a connection to it", error).c_str());
    to.broken = true;
}

} // namespace sniproxy
