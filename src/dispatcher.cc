// dispatcher.cc: least-loaded choice, batched hand-over and the pending queue.
#include "dispatcher.h"

#include "log.h"

#include <algorithm>
#include <cerrno>
#include <string>

namespace sniproxy {

namespace {
    constexpr std::int64_t pause_ns = 1'000'000'000;

    // Errors that mean the other end of the channel is gone for good.
    bool channel_broken(int err)
    {
        return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == EBADF
            || err == ECONNREFUSED;
    }
} // namespace

Dispatcher::Dispatcher(WorkerList& workers, std::size_t max_per_worker, Clock& clock)
    : workers_(workers)
    , max_per_worker_(max_per_worker)
    , clock_(clock)
{
}

WorkerSlot* Dispatcher::least_loaded() const
{
    WorkerSlot* best = nullptr;
    const std::size_t n = workers_.size();
    for (std::size_t k = 0; k < n; k++) {
        WorkerSlot* w = workers_[(next_ + k) % n].get();
        if (w->ready && !w->draining && !w->broken && w->inflight < max_per_worker_
            && !w->waiting_for_room
            && (!best || w->inflight < best->inflight))
            best = w;
    }
    return best;
}

// A full channel means the next worker is tried; a broken one gets no more connections
// (SIGCHLD tells the rest). Our copies are closed only after a send succeeded.
bool Dispatcher::hand_over(std::span<Pending> batch)
{
    std::size_t done = 0;
    while (done < batch.size()) {
        WorkerSlot* w = least_loaded();
        if (!w)
            break;
        const std::size_t k = std::min(batch.size() - done, max_per_worker_ - w->inflight);
        int fds[max_handover];
        ConnectionInfo infos[max_handover];
        for (std::size_t i = 0; i < k; i++) {
            fds[i] = batch[done + i].fd.get();
            infos[i] = batch[done + i].info;
        }
        const int err = w->channel->send_connections({ fds, k }, { infos, k });
        if (err == 0) {
            w->inflight += k;
            for (std::size_t i = 0; i < k; i++)
                batch[done + i].fd.reset();
            done += k;
            const auto at = std::find_if(
                workers_.begin(), workers_.end(), [w](const auto& p) { return p.get() == w; });
            next_ = static_cast<std::size_t>(at - workers_.begin()) + 1;
            continue;
        }
        if (err == EAGAIN) {
            w->waiting_for_room = true;
            w->channel->wait_for_room();
            continue;
        }
        if (channel_broken(err)) {
            // The worker's end is gone: it gets nothing more and is replaced when it exits
            // (SIGCHLD). Its connections stay its own until then.
            logf(LogLevel::err, "worker %d: %s; no more connections for it",
                static_cast<int>(w->pid),
                errno_message("handing over " + std::to_string(k) + " connection(s)", err).c_str());
            w->broken = true;
            continue;
        }
        // Anything else is the kernel's limit of the moment, not the worker's fault (ENOBUFS,
        // ENOMEM, ETOOMANYREFS: too many descriptors in flight while workers are slow to read
        // them): keep the connections, pause accepting for a second, then try again. The
        // kernel backlog holds new clients meanwhile; nothing is dropped.
        logf(LogLevel::warning, "%s; retrying in a second",
            errno_message("handing over " + std::to_string(k) + " connection(s)", err).c_str());
        pause();
        break;
    }
    for (std::size_t i = done; i < batch.size(); i++)
        pending_.push_back(std::move(batch[i]));
    return done == batch.size();
}

void Dispatcher::flush_pending()
{
    while (!pending_.empty()) {
        Pending batch[max_handover];
        const std::size_t n = std::min(pending_.size(), max_handover);
        for (std::size_t i = 0; i < n; i++) {
            batch[i] = std::move(pending_.front());
            pending_.pop_front();
        }
        const std::size_t before = pending_.size();
        if (!hand_over({ batch, n })) {
            // hand_over queued the rest at the back; keep the order of arrival.
            const auto left = static_cast<std::ptrdiff_t>(pending_.size() - before);
            std::rotate(pending_.begin(), pending_.end() - left, pending_.end());
            break;
        }
    }
}

bool Dispatcher::on_closed(WorkerSlot& w, std::uint32_t n, std::string* err)
{
    if (n > w.inflight) {
        *err = "reported " + std::to_string(n) + " connection(s) closed, holding "
            + std::to_string(w.inflight);
        return false;
    }
    w.inflight -= n;
    flush_pending();
    return true;
}

void Dispatcher::on_room(WorkerSlot& w)
{
    w.waiting_for_room = false;
    flush_pending();
}

void Dispatcher::pause()
{
    paused_until_ns_ = clock_.now_ns() + pause_ns;
}

void Dispatcher::resume()
{
    paused_until_ns_ = 0;
    flush_pending();
}

bool Dispatcher::wants_accepting() const
{
    return !stopped_ && paused_until_ns_ == 0 && pending_.empty() && least_loaded() != nullptr;
}

} // namespace sniproxy
