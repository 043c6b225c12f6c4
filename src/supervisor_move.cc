// supervisor_move.cc: the parent's part in moving established connections: a draining
// worker's moving message is checked (move_check.h, the worker's records) and forwarded to a
// worker that has room, or given back. Nothing here reads or writes the descriptors.
#include "supervisor.h"

#include "move_check.h"

#include "log.h"

#include <variant>

namespace sniproxy {

namespace {
    // A moving message goes on byte for byte, with the descriptors it came with.
    Encoded as_sent(const Received& m)
    {
        return { Msg::moving, std::string(reinterpret_cast<const char*>(m.payload), m.payload_len) };
    }

    struct Fds {
        int fds[3] {};
        std::size_t n = 0;
        operator std::span<const int>() const { return { fds, n }; }
    };
    Fds fds_of(const Received& m)
    {
        Fds f;
        for (; f.n < m.nfds && f.n < 3; f.n++)
            f.fds[f.n] = m.fds[f.n].get();
        return f;
    }
} // namespace

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

// The old parent of an upgrade, stopping: the connection goes to the new parent as it came
// (its record waits in sent_up_ for a give-back). A channel that fails is closed for good.
bool Supervisor::move_to_successor(WorkerSlot& w, Received& m, const MovingMsg& c, std::string* err)
{
    HeldConnection held;
    if (!dispatcher_.take(w, c.id, &held, err))
        return false;
    const int sent = upgrade_link_->send_moving(as_sent(m), fds_of(m));
    if (sent == 0) {
        sent_up_[c.id] = { w.pid, held };
        w.moved_out++;
        return true;
    }
    if (sent != EAGAIN) {
        logf(LogLevel::err, "upgrade channel: %s; the old workers keep their connections",
            errno_message("sending a connection", sent).c_str());
        close_upgrade_link();
    }
    dispatcher_.put(w, c.id, held);
    return give_back(w, m, c.id, err);
}

void Supervisor::set_upgrade_link(UpgradeLink* link, bool to_successor)
{
    if (!link) {
        close_upgrade_link();
        return;
    }
    upgrade_link_ = link;
    to_successor_ = to_successor;
    sent_up_.clear();
}

// What was sent over a closed channel does not come back. The new parent says what it took.
void Supervisor::close_upgrade_link()
{
    if (upgrade_link_ && !to_successor_)
        logf(LogLevel::notice,
            "upgrade: %zu connection(s) taken over from the old parent, %zu given back for want "
            "of room",
            moved_from_upgrade_, upgrade_refused_);
    upgrade_link_ = nullptr;
    sent_up_.clear();
}

// The old parent's bytes are untrusted as a worker's are: the same decoder, the same checks
// of the descriptors; a message that fails them closes the channel, nothing else.
bool Supervisor::on_upgrade_message(Received& m)
{
    FromWorker msg;
    std::string err;
    const MovingMsg* c = nullptr;
    if (!upgrade_link_)
        err = "a message after the channel closed";
    else if (!decode_from_worker(m, &msg, &err))
        ;
    else if (!(c = std::get_if<MovingMsg>(&msg)))
        err = "message type " + std::to_string(static_cast<unsigned>(m.type))
            + " is not a moving message";
    else if (!check_moving_fds({ m.fds, m.nfds }, c->up.in_pipe > 0, &err))
        err = "connection " + std::to_string(c->id) + " with bad descriptors: " + err;
    else if (to_successor_ ? take_back(m, *c, &err) : adopt_moved(m, *c, &err))
        return true;
    logf(LogLevel::err, "upgrade channel: protocol violation: %s; closing it", err.c_str());
    close_upgrade_link();
    return false;
}

// The new parent: a fresh id in our own id space, the least-loaded worker with room, counted
// for its source. No room: back over the channel, and the old parent gives it back to its
// worker.
bool Supervisor::adopt_moved(Received& m, const MovingMsg& c, std::string* err)
{
    if (WorkerSlot* to = dispatcher_.least_loaded()) {
        MovingMsg renamed = c;
        renamed.id = dispatcher_.fresh_id(*to);
        Encoded e;
        if (!encode_moving(renamed, &e, err))
            return false;
        if (to->channel->send_moving(e, fds_of(m)) == 0) {
            dispatcher_.adopt(*to, renamed.id,
                c.source.ss_family != AF_UNSPEC ? c.source : c.peer, c.accepted_ns);
            to->moved_in++;
            moved_from_upgrade_++;
            return true;
        }
    }
    upgrade_refused_++;
    if (const int sent = upgrade_link_->send_moving(as_sent(m), fds_of(m)); sent != 0)
        logf(LogLevel::err, "upgrade: %s; connection lost",
            errno_message("giving a connection back to the old parent", sent).c_str());
    return true;
}

// The old parent: the new one had no room for a connection we sent it.
bool Supervisor::take_back(Received& m, const MovingMsg& c, std::string* err)
{
    const auto it = sent_up_.find(c.id);
    if (it == sent_up_.end()) {
        *err = "gave back connection " + std::to_string(c.id) + ", which it was not sent";
        return false;
    }
    const auto [pid, held] = it->second;
    sent_up_.erase(it);
    WorkerSlot* w = find(pid);
    if (!w || w->violated || w->reaped) {
        logf(LogLevel::err, "upgrade: connection %u came back after its worker %d ended; lost",
            c.id, static_cast<int>(pid));
        return true;
    }
    dispatcher_.put(*w, c.id, held);
    w->moved_out--;
    return give_back(*w, m, c.id, err);
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
