// worker_move.cc: a draining worker hands its established connections to the parent for the
// new generation (issue 15), and takes back those no newer worker had room for.
#include "worker_loop.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sniproxy::worker_loop {

void Worker::on_move(evutil_socket_t, short, void* arg)
{
    static_cast<Worker*>(arg)->move_established();
}

// Draining: established connections go to the parent, a batch per loop turn, behind the
// reports already queued (the parent must have heard each one's hello done). One whose
// state does not fit a message yet, or that the channel has no room for, is tried again
// on the next turn; hello-phase ones finish here (or move once routed).
void Worker::move_established()
{
    constexpr std::size_t batch = 64;
    flush_queue();
    std::vector<Connection*> ready;
    bool waiting = false;
    for (const auto& [raw, c] : connections_) {
        if (c->established() && !stay_.contains(c->id()))
            ready.push_back(raw);
        else if (c->in_hello())
            waiting = true; // may be moved once routed
    }
    std::size_t moved = 0;
    bool full = !queue_.empty();
    for (Connection* c : ready) {
        if (full || moved == batch) {
            waiting = true;
            break;
        }
        Encoded e;
        RelayState state;
        if (!c->export_moving(&e, &state)) {
            waiting = true; // too much pending right now
            continue;
        }
        int fds[3] = { state.client.get(), state.backend.get(), state.pipe.get() };
        const int err = send_moving(channel_, e, { fds, state.pipe ? 3u : 2u });
        if (err != 0) {
            c->resume(std::move(state));
            full = waiting = true;
            continue;
        }
        moved++;
        by_id_.erase(c->id());
        connections_.erase(c); // its descriptors close here: the new worker holds them
        metrics_.active(-1);
    }
    if (moved > 0) {
        moved_any_ = true;
        logf(LogLevel::debug, "worker: %zu established connection(s) handed over", moved);
    }
    if (connections_.empty())
        return exit_when_empty();
    if (waiting) {
        const timeval later { 0, full || moved == 0 ? 10000 : 0 };
        evtimer_add(move_timer_.get(), &later);
    }
}

void Worker::adopt(const MovingMsg& m)
{
    if (by_id_.contains(m.id))
        return violation("a moved connection this worker already holds");
    auto c = Connection::adopt(base_.get(), settings_, m, on_connection_done, this);
    Connection* raw = c.get();
    connections_.emplace(raw, std::move(c));
    by_id_[raw->id()] = raw;
    metrics_.active(+1);
    if (draining_)
        stay_.insert(m.id);
}

} // namespace sniproxy::worker_loop
