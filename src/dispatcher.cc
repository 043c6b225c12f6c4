// dispatcher.cc: least-loaded choice, batched hand-over and the pending queue.
#include "dispatcher.h"

#include "log.h"
#include "shed.h"

#include <algorithm>
#include <cerrno>
#include <string>

namespace sniproxy {

namespace {
    constexpr std::int64_t pause_ns = 1'000'000'000;
} // namespace

bool channel_broken(int err)
{
    return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == EBADF
        || err == ECONNREFUSED;
}

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
            && !w->waiting_for_room && (!best || w->inflight < best->inflight))
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
            infos[i].id = fresh_id(*w);
        }
        const int err = w->channel->send_connections({ fds, k }, { infos, k });
        if (err == 0) {
            w->inflight += k;
            for (std::size_t i = 0; i < k; i++) {
                batch[done + i].fd.reset();
                HeldConnection& h = w->held[infos[i].id];
                h = { batch[done + i].key, infos[i].accepted_ns };
                h.from_balancer = infos[i].from_balancer;
            }
            hellos_ += k;
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

SourceLimits::Clock::time_point Dispatcher::now() const
{
    return SourceLimits::Clock::time_point(std::chrono::nanoseconds(clock_.now_ns()));
}

void Dispatcher::release(const HeldConnection& c)
{
    if (c.in_hello && !c.shed)
        hellos_--;
    if (limits_)
        limits_->closed(c.key, c.in_hello);
}

bool Dispatcher::on_closed(WorkerSlot& w, std::span<const std::uint32_t> ids, std::string* err)
{
    for (const std::uint32_t id : ids) {
        const auto it = w.held.find(id);
        if (it == w.held.end() || it->second.in_transit) {
            *err = "reported connection " + std::to_string(id) + " closed, "
                + (it == w.held.end() ? "which it does not hold" : "which it handed over");
            return false;
        }
        release(it->second);
        w.held.erase(it);
        w.inflight--;
    }
    flush_pending();
    return true;
}

bool Dispatcher::on_hello_done(WorkerSlot& w, std::span<const std::uint32_t> ids, std::string* err)
{
    for (const std::uint32_t id : ids) {
        const auto it = w.held.find(id);
        if (it == w.held.end() || !it->second.in_hello) {
            *err = "reported the hello of connection " + std::to_string(id) + " done, "
                + (it == w.held.end() ? "which it does not hold" : "twice");
            return false;
        }
        HeldConnection& c = it->second;
        c.in_hello = false;
        if (!c.shed)
            hellos_--;
        if (limits_)
            limits_->hello_done(c.key);
    }
    return true;
}

bool Dispatcher::on_source(WorkerSlot& w, const SourceMsg& m, Verdict* verdict, std::string* err)
{
    const auto it = w.held.find(m.id);
    if (it == w.held.end() || !it->second.in_hello || it->second.moved
        || !it->second.from_balancer) {
        *err = "reported the source of connection " + std::to_string(m.id) + ", "
            + (it == w.held.end()               ? "which it does not hold"
                    : !it->second.from_balancer ? "which is not from a balancer"
                    : it->second.moved          ? "a second time"
                                                : "after its hello");
        return false;
    }
    HeldConnection& c = it->second;
    c.moved = true;
    if (!limits_) {
        *verdict = Verdict::ok;
        return true;
    }
    const Admission a = limits_->move(c.key, ip_of(m.source), now());
    c.key = a.key; // not counted when refused: the worker closes it
    *verdict = a.verdict;
    return true;
}

bool Dispatcher::transfer(WorkerSlot& from, WorkerSlot& to, std::uint32_t id, std::string* err)
{
    const auto it = from.held.find(id);
    if (it == from.held.end() || it->second.in_hello) {
        *err = "handed over connection " + std::to_string(id) + ", "
            + (it == from.held.end() ? "which it does not hold" : "still in its hello phase");
        return false;
    }
    if (&from == &to)
        return true;
    to.held.emplace(id, it->second);
    from.held.erase(it);
    from.inflight--;
    to.inflight++;
    return true;
}

bool Dispatcher::room_when_writable() const
{
    return std::any_of(workers_.begin(), workers_.end(), [this](const auto& w) {
        return w->ready && !w->draining && !w->broken && w->inflight < max_per_worker_
            && w->waiting_for_room;
    });
}

// Unique among what the worker holds: ids wrap only after 2^32 connections.
std::uint32_t Dispatcher::fresh_id(const WorkerSlot& to)
{
    std::uint32_t id;
    do
        id = next_id_++;
    while (id == 0 || to.held.contains(id));
    return id;
}

bool Dispatcher::take(WorkerSlot& from, std::uint32_t id, HeldConnection* out, std::string* err)
{
    const auto it = from.held.find(id);
    if (it == from.held.end() || it->second.in_hello) {
        *err = "handed over connection " + std::to_string(id) + ", "
            + (it == from.held.end() ? "which it does not hold" : "still in its hello phase");
        return false;
    }
    release(it->second);
    *out = it->second;
    out->key.counted = false; // released: a give-back must not release it twice
    from.held.erase(it);
    from.inflight--;
    return true;
}

void Dispatcher::put(WorkerSlot& to, std::uint32_t id, const HeldConnection& c)
{
    if (to.held.emplace(id, c).second)
        to.inflight++;
}

SourceKey Dispatcher::key_for(const sockaddr_storage& source) const
{
    SourceKey key;
    if (limits_ && (source.ss_family == AF_INET || source.ss_family == AF_INET6)) {
        key = limits_->key_of(ip_of(source));
        key.counted = true;
    }
    return key;
}

// An established connection, its hello over: counted, never refused (a move must not cut
// it), and without a source-rate token, so a busy address is not refused after an upgrade.
void Dispatcher::adopt(WorkerSlot& to, std::uint32_t id, SourceKey key, std::int64_t accepted_ns)
{
    HeldConnection c;
    c.accepted_ns = accepted_ns;
    c.in_hello = false;
    if (limits_ && key.counted)
        c.key = limits_->count_established(key, now());
    put(to, id, c);
}

void Dispatcher::worker_gone(const WorkerSlot& w)
{
    for (const auto& [id, c] : w.held)
        release(c);
}

std::size_t Dispatcher::shed_if_needed()
{
    if (!under_pressure(hellos_, capacity_))
        return 0;
    std::vector<HelloPhase> hellos;
    std::vector<std::pair<WorkerSlot*, std::uint32_t>> where;
    hellos.reserve(hellos_);
    where.reserve(hellos_);
    for (auto& w : workers_) {
        for (auto& [id, c] : w->held) {
            if (!c.in_hello || c.shed)
                continue;
            const SourceLimits::Clock::time_point at(std::chrono::nanoseconds(c.accepted_ns));
            hellos.push_back({ c.key, at });
            where.emplace_back(w.get(), id);
        }
    }
    std::vector<std::size_t> chosen = choose_shed(hellos, capacity_);
    // One message per worker per max_ids: sorted by worker, then sent in runs.
    std::sort(chosen.begin(), chosen.end(),
        [&](std::size_t a, std::size_t b) { return where[a].first < where[b].first; });
    std::size_t shed = 0;
    for (std::size_t i = 0; i < chosen.size();) {
        WorkerSlot* w = where[chosen[i]].first;
        ShedMsg m;
        while (i < chosen.size() && where[chosen[i]].first == w && m.count < max_ids)
            m.ids[m.count++] = where[chosen[i++]].second;
        if (w->channel->send(encode(m)) != 0)
            continue; // full or broken: chosen again at the next accept, or released when gone
        for (std::size_t k = 0; k < m.count; k++)
            w->held[m.ids[k]].shed = true;
        hellos_ -= m.count;
        shed += m.count;
    }
    if (shed > 0)
        logf(LogLevel::notice,
            "under pressure: shedding %zu connection(s) in their hello phase (capacity %zu)", shed,
            capacity_);
    return shed;
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
