// worker_outbox.cc: what a worker sends the parent: log records and per-connection reports
// (hello done, closed, sources), queued and sent in batches at most 10 ms late, in order.
#include "worker_loop.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sniproxy::worker_loop {

// Records are queued and leave in batches (schedule_flush, flush_queue).
void Worker::send_log(LogLevel level, std::string_view text)
{
    if (queue_.size() >= max_queued_logs) {
        dropped_logs_++;
        return;
    }
    queue_message(encode(LogMsg { level, text }));
    schedule_flush();
}

void Worker::queue_message(const Encoded& m)
{
    queue_.push_back(m);
}

// The reports, as messages of up to max_ids ids each, behind what is queued already.
template <class M> void Worker::queue_ids_as(std::vector<std::uint32_t>& list)
{
    for (std::span<const std::uint32_t> left(list); !left.empty();) {
        M m;
        left = left.subspan(take_ids(left, &m));
        queue_message(encode(m));
    }
    list.clear();
}

void Worker::queue_ids()
{
    queue_ids_as<HelloDoneMsg>(hello_done_);
    queue_ids_as<ClosedMsg>(closed_);
}

// Log records and close counts wait up to flush_delay so that they leave in batches even
// when connections come one at a time: the parent then wakes a hundred times a second at
// most, not once per connection. A full batch leaves at once.
void Worker::schedule_flush()
{
    if (event_pending(flush_event_.get(), EV_WRITE, nullptr))
        return; // waiting for room in the channel already
    if (queue_.size() + 1 >= max_batch) {
        evtimer_del(flush_timer_.get());
        event_add(flush_event_.get(), nullptr);
    } else if (!evtimer_pending(flush_timer_.get(), nullptr)) {
        evtimer_add(flush_timer_.get(), &flush_delay);
    }
}

void Worker::on_flush(evutil_socket_t, short, void* arg)
{
    static_cast<Worker*>(arg)->flush_queue();
}

// Sends the queued records and reports in batches of one sendmmsg each, until done or
// the channel is full (then the next writable event resumes).
void Worker::flush_queue()
{
    // The count of refusal lines left out, once their second is over.
    if (const std::uint64_t n = refusals_.expire(RefusalLog::Clock::now()))
        log_line(LogLevel::notice, suppressed_message(n));
    queue_ids();
    while (!queue_.empty()) {
        Outgoing batch[max_batch];
        std::size_t n = 0;
        for (; n < queue_.size() && n < max_batch; n++)
            batch[n] = { queue_[n].type, queue_[n].bytes() };
        const int sent = send_messages(channel_, { batch, n });
        if (sent <= 0)
            break; // full (or the parent is gone: the channel's read side will tell)
        queue_.erase(queue_.begin(), queue_.begin() + sent);
        if (static_cast<std::size_t>(sent) < n)
            break;
    }
    if (queue_.empty() && dropped_logs_ > 0) {
        const std::size_t n = std::exchange(dropped_logs_, 0);
        logf(LogLevel::warning, "worker: %zu log records dropped (parent not reading)", n);
    }
    if (!queue_.empty())
        event_add(flush_event_.get(), nullptr);
}

// The last records before exit: wait (briefly) for room in the channel rather than lose them.
void Worker::flush_at_exit()
{
    for (int i = 0; i < 100 && (!queue_.empty() || !closed_.empty()); i++) {
        flush_queue();
        pollfd p { channel_, POLLOUT, 0 };
        if (!queue_.empty() && poll(&p, 1, 10) < 0)
            break;
    }
}

} // namespace sniproxy::worker_loop
