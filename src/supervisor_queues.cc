// supervisor_queues.cc: the moves that wait in the parent for room in a channel (a rollover's,
// an upgrade's both ways, and give-backs), bounded three ways: entries per queue, descriptors
// held altogether (a share of RLIMIT_NOFILE, so that accepting never runs out of them) and
// time (the grace, as the upgrade queue's). A worker that broke the protocol loses what it
// had queued.
#include "supervisor.h"

#include "log.h"
#include "moving_forward.h"

#include <algorithm>

namespace sniproxy {

bool Supervisor::enqueue(
    Queue& q, Received& m, std::uint32_t id, pid_t pid, const HeldConnection& held)
{
    if (q.size() >= max_queued_moves || queued_fds_ + m.nfds > fd_budget_)
        return false;
    queued_fds_ += m.nfds;
    q.push_back({ std::make_unique<Received>(std::move(m)), id, pid, held, clock_.now_ns() });
    return true;
}

Supervisor::QueuedUp Supervisor::dequeue(Queue& q)
{
    QueuedUp front = std::move(q.front());
    q.pop_front();
    queued_fds_ -= front.m->nfds;
    return front;
}

// What it queued may be lies (a connection handed over twice): closed, and counted lost.
void Supervisor::drop_queued(const WorkerSlot& w)
{
    std::size_t dropped = 0;
    for (Queue* q : { &rollover_queue_, &give_back_queue_ }) {
        const auto from_w = [&](const QueuedUp& e) { return e.pid == w.pid; };
        for (const QueuedUp& e : *q)
            if (from_w(e))
                queued_fds_ -= e.m->nfds, dropped++;
        q->erase(std::remove_if(q->begin(), q->end(), from_w), q->end());
    }
    if (dropped > 0)
        logf(LogLevel::err, "worker %d: %zu queued connection(s) it handed over closed",
            static_cast<int>(w.pid), dropped);
}

// A grace after it was queued: a rollover's goes back to its old worker (lost if it has
// ended), one taken over from the old parent goes back there, a give-back is lost.
void Supervisor::expire_queues(std::int64_t now)
{
    const auto due
        = [&](const Queue& q) { return !q.empty() && now - q.front().queued_ns >= grace_ns(); };
    std::size_t lost = 0;
    while (due(rollover_queue_)) {
        QueuedUp q = dequeue(rollover_queue_);
        WorkerSlot* from = find(q.pid);
        std::string err;
        if (!from || from->reaped || !from->held.contains(q.id))
            lost++;
        else if (!give_back(*from, *q.m, q.id, &err))
            violation(*from, err);
    }
    while (due(adopt_queue_)) {
        QueuedUp q = dequeue(adopt_queue_);
        send_back(*q.m);
    }
    for (Queue* q : { &give_back_queue_, &send_back_queue_ })
        for (; due(*q); lost++)
            dequeue(*q);
    if (lost > 0)
        logf(LogLevel::err, "%zu connection(s) waited a grace for room in a channel; lost", lost);
}

std::int64_t Supervisor::next_queue_expiry() const
{
    std::int64_t at = 0;
    for (const Queue* q : { &rollover_queue_, &adopt_queue_, &give_back_queue_, &send_back_queue_ })
        if (!q->empty() && (at == 0 || q->front().queued_ns + grace_ns() < at))
            at = q->front().queued_ns + grace_ns();
    return at;
}

// Give-backs to old workers, in order; one whose worker has ended is lost with it.
void Supervisor::retry_give_backs()
{
    while (!give_back_queue_.empty()) {
        QueuedUp& q = give_back_queue_.front();
        WorkerSlot* w = find(q.pid);
        HeldConnection* held = nullptr;
        if (w && !w->reaped && !w->violated)
            if (const auto it = w->held.find(q.id); it != w->held.end())
                held = &it->second;
        if (!held) {
            logf(LogLevel::err, "connection %u: its old worker %d ended before it came back; lost",
                q.id, static_cast<int>(q.pid));
            dequeue(give_back_queue_);
            continue;
        }
        const int sent = w->channel->send_moving(as_sent(*q.m), fds_of(*q.m));
        if (sent == EAGAIN) {
            w->channel->wait_for_room();
            return;
        }
        held->in_transit = false;
        const std::uint32_t id = q.id;
        dequeue(give_back_queue_);
        std::string err;
        if (sent != 0) {
            logf(LogLevel::err, "worker %d: connection %u could not be given back; lost",
                static_cast<int>(w->pid), id);
            if (!dispatcher_.on_closed(*w, { &id, 1 }, &err))
                violation(*w, err);
        }
    }
}

// The new parent's give-backs to the old one.
void Supervisor::retry_send_backs()
{
    while (!send_back_queue_.empty() && upgrade_link_) {
        Received& m = *send_back_queue_.front().m;
        const int sent = upgrade_link_->send_moving(as_sent(m), fds_of(m));
        if (sent == EAGAIN) {
            upgrade_link_->wait_for_room();
            return;
        }
        if (sent != 0)
            logf(LogLevel::err, "upgrade: %s; connection lost",
                errno_message("giving a connection back to the old parent", sent).c_str());
        dequeue(send_back_queue_);
    }
}

} // namespace sniproxy
