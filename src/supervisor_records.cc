// supervisor_records.cc: a worker's log records, limited per second (far above what a worker
// can serve), so that a hijacked worker cannot fill the disk; the excess is counted and said.
#include "supervisor.h"

#include "log.h"

namespace sniproxy {

bool Supervisor::admit_record(WorkerSlot& w)
{
    const std::int64_t now = clock_.now_ns();
    if (now - w.log_window_ns >= 1'000'000'000) {
        report_suppressed(w);
        w.log_window_ns = now;
        w.log_records = 0;
    }
    if (w.log_records < max_records_per_second) {
        w.log_records++;
        return true;
    }
    w.log_suppressed++;
    return false;
}

void Supervisor::report_suppressed(WorkerSlot& w)
{
    if (w.log_suppressed == 0)
        return;
    logf(LogLevel::err, "worker %d: %llu log record(s) suppressed (over %u a second)",
        static_cast<int>(w.pid), static_cast<unsigned long long>(w.log_suppressed),
        max_records_per_second);
    w.log_suppressed = 0;
}

} // namespace sniproxy
