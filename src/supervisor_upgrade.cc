// supervisor_upgrade.cc: SIGUSR2, and the established connections that move from the old
// parent's workers to the new parent's over the upgrade channel. The old parent forwards what
// its draining workers hand over (checked as on a rollover) and takes back what had no room;
// the new parent treats the old one's bytes as untrusted, as a worker's. A channel that is
// full queues the connection (its descriptors wait here) until it has room.
#include "supervisor.h"

#include "move_check.h"
#include "moving_forward.h"

#include "log.h"

#include <variant>

namespace sniproxy {

// The new binary takes the listening sockets; when its workers are ready it sends us SIGTERM
// and we drain as on any stop, moving the established connections over when we can. Both
// accept from the same sockets meanwhile.
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

// The old parent: what still waits to be sent goes back to its worker (lost if that one has
// ended), and what was sent does not come back. The new parent says what it took; what it
// queued for its workers is still theirs.
void Supervisor::close_upgrade_link()
{
    if (upgrade_link_ && !to_successor_)
        logf(LogLevel::notice,
            "upgrade: %zu connection(s) taken over from the old parent, %zu given back for want "
            "of room",
            moved_from_upgrade_, upgrade_refused_);
    upgrade_link_ = nullptr;
    while (!send_back_queue_.empty()) { // the old parent is gone: nowhere to give them back
        logf(LogLevel::err, "upgrade: a connection given back to the old parent lost");
        dequeue(send_back_queue_);
    }
    auto queued = std::move(up_queue_);
    up_queue_.clear();
    for (QueuedUp& q : queued) {
        queued_fds_ -= q.m->nfds;
        const auto it = sent_up_.find(q.id);
        if (it == sent_up_.end())
            continue;
        if (!return_to_worker(*q.m, q.id, it->second))
            logf(LogLevel::err,
                "upgrade: connection %u could not be sent and its worker %d has "
                "ended; lost",
                q.id, static_cast<int>(it->second.pid));
    }
    sent_up_.clear();
}

// A new parent that does not read the channel must not keep us past the grace: what still
// waits then is given back (or lost with its ended worker) and the channel closed.
void Supervisor::expire_upgrade_queue(std::int64_t now)
{
    if (up_queue_.empty() || queue_deadline_ns_ == 0 || now < queue_deadline_ns_)
        return;
    logf(LogLevel::err,
        "upgrade channel: %zu connection(s) still unsent after the grace; closing it",
        up_queue_.size());
    close_upgrade_link();
}

// The old parent, stopping: the connection goes to the new parent as it came; its record
// waits in sent_up_ for a give-back. A full channel queues it; a failed one is closed.
bool Supervisor::move_to_successor(WorkerSlot& w, Received& m, const MovingMsg& c, std::string* err)
{
    HeldConnection held;
    if (!dispatcher_.take(w, c.id, &held, err))
        return false;
    const int sent = up_queue_.empty() ? upgrade_link_->send_moving(as_sent(m), fds_of(m)) : EAGAIN;
    if (sent == 0 || (sent == EAGAIN && enqueue(up_queue_, m, c.id, w.pid, held))) {
        sent_up_[c.id] = { w.pid, held };
        w.moved_out++;
        if (sent == EAGAIN)
            upgrade_link_->wait_for_room();
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

// A connection sent (or queued) to the new parent goes back to its worker, if alive.
bool Supervisor::return_to_worker(Received& m, std::uint32_t id, const SentUp& sent)
{
    WorkerSlot* w = find(sent.pid);
    if (!w || w->violated || w->reaped)
        return false;
    dispatcher_.put(*w, id, sent.held);
    w->moved_out--;
    std::string err;
    if (!give_back(*w, m, id, &err))
        violation(*w, err);
    return true;
}

// The old parent's bytes are untrusted as a worker's are: the same decoder, the same checks
// of the descriptors; a message that fails them closes the channel, nothing else.
bool Supervisor::on_upgrade_message(Received& m)
{
    FromWorker msg;
    std::string err;
    const MovingMsg* c = nullptr;
    bool ok = false;
    if (!upgrade_link_) {
        err = "a message after the channel closed";
    } else if (decode_from_worker(m, &msg, &err)) {
        if (!(c = std::get_if<MovingMsg>(&msg)))
            err = "message type " + std::to_string(static_cast<unsigned>(m.type))
                + " is not a moving message";
        else if (!check_moving_fds({ m.fds, m.nfds }, c->up.in_pipe > 0, &err))
            err = "connection " + std::to_string(c->id) + " with bad descriptors: " + err;
        else
            ok = to_successor_ ? take_back(m, *c, &err) : adopt_or_queue(m, *c, &err);
    }
    if (ok)
        return true;
    logf(LogLevel::err, "upgrade channel: protocol violation: %s; closing it", err.c_str());
    close_upgrade_link();
    return false;
}

bool Supervisor::adopt_or_queue(Received& m, const MovingMsg& c, std::string* err)
{
    Adopt a
        = adopt_queue_.empty() ? try_adopt(m, c, dispatcher_.key_for(c.source), err) : Adopt::wait;
    if (a == Adopt::error)
        return false;
    if (a == Adopt::done)
        moved_from_upgrade_++;
    else if (a == Adopt::no_room || !enqueue(adopt_queue_, m, c.id, -1, {}))
        send_back(m);
    return true;
}

// The new parent: a fresh id in our own id space, the least-loaded worker with room, counted
// for `key` (its source as the message says; a balancer's PROXY LOCAL is not counted, as on
// accept). Its channel full: the next, or wait for room; failed: the next. No worker with
// room at all (-c): the caller sends it back over the channel, and the old parent gives it
// back to its worker.
Supervisor::Adopt Supervisor::try_adopt(
    Received& m, const MovingMsg& c, const SourceKey& key, std::string* err)
{
    while (WorkerSlot* to = dispatcher_.least_loaded()) {
        MovingMsg renamed = c;
        renamed.id = dispatcher_.fresh_id(*to);
        Encoded e;
        if (!encode_moving(renamed, &e, err))
            return Adopt::error;
        const int sent = to->channel->send_moving(e, fds_of(m));
        if (sent == 0) {
            dispatcher_.adopt(*to, renamed.id, key, c.accepted_ns);
            to->moved_in++;
            return Adopt::done;
        }
        send_failed(*to, sent);
    }
    return dispatcher_.room_when_writable() ? Adopt::wait : Adopt::no_room;
}

// A full channel: the give-back waits for room, in order.
void Supervisor::send_back(Received& m)
{
    upgrade_refused_++;
    int sent = !upgrade_link_      ? EPIPE
        : send_back_queue_.empty() ? upgrade_link_->send_moving(as_sent(m), fds_of(m))
                                   : EAGAIN;
    if (sent == EAGAIN && enqueue(send_back_queue_, m, 0, -1, {})) {
        upgrade_link_->wait_for_room();
        return;
    }
    if (sent != 0)
        logf(LogLevel::err, "upgrade: %s; connection lost",
            errno_message("giving a connection back to the old parent", sent).c_str());
}

// A channel has room again: what waited for it goes on, in order.
void Supervisor::retry_moves()
{
    retry_give_backs();
    retry_send_backs();
    retry_rollover_queue();
    while (!up_queue_.empty() && upgrade_link_ && to_successor_) {
        Received& m = *up_queue_.front().m;
        const int sent = upgrade_link_->send_moving(as_sent(m), fds_of(m));
        if (sent == EAGAIN) {
            upgrade_link_->wait_for_room();
            return;
        }
        if (sent != 0) {
            logf(LogLevel::err, "upgrade channel: %s; the old workers keep their connections",
                errno_message("sending a connection", sent).c_str());
            close_upgrade_link();
            return;
        }
        dequeue(up_queue_);
    }
    while (!adopt_queue_.empty()) {
        Received& m = *adopt_queue_.front().m;
        FromWorker msg;
        std::string err;
        if (!decode_from_worker(m, &msg, &err)) // decoded once already: cannot fail
            return;
        const MovingMsg& c = std::get<MovingMsg>(msg);
        const Adopt a = try_adopt(m, c, dispatcher_.key_for(c.source), &err);
        if (a == Adopt::wait)
            return;
        if (a == Adopt::done)
            moved_from_upgrade_++;
        else if (a == Adopt::no_room)
            send_back(m);
        dequeue(adopt_queue_);
    }
}

// The old parent: the new one had no room for a connection we sent it.
bool Supervisor::take_back(Received& m, const MovingMsg& c, std::string* err)
{
    const auto it = sent_up_.find(c.id);
    if (it == sent_up_.end()) {
        *err = "gave back connection " + std::to_string(c.id) + ", which it was not sent";
        return false;
    }
    const SentUp sent = it->second;
    sent_up_.erase(it);
    if (!return_to_worker(m, c.id, sent))
        logf(LogLevel::err, "upgrade: connection %u came back after its worker %d ended; lost",
            c.id, static_cast<int>(sent.pid));
    return true;
}

// recvmsg cut the descriptors of a moving message (we are out of them): that connection is
// lost; the channel stays open (its sender did nothing wrong).
void Supervisor::on_upgrade_cut(std::uint32_t id)
{
    moves_cut_++;
    if (to_successor_)
        sent_up_.erase(id);
    logf(LogLevel::err,
        "upgrade channel: connection %u lost: its descriptors were cut on arrival (out of "
        "them; %zu so far)",
        id, moves_cut_);
}

} // namespace sniproxy
