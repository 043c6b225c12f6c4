// accept_pacer.cc: the accept budget per readiness (see accept_pacer.h).
#include "accept_pacer.h"

#include <algorithm>

namespace sniproxy {

bool AcceptPacer::wants_probe(std::int64_t now_ns)
{
    const bool soon = last_ns_ != 0 && now_ns - last_ns_ < busy_gap_ns;
    last_ns_ = now_ns;
    return soon || behind_;
}

std::size_t AcceptPacer::budget(Probe probe, std::size_t queued)
{
    probe_ = probe;
    queued_ = queued;
    switch (probe) {
    case Probe::skipped:
        budget_ = 1;
        break;
    case Probe::answered:
        budget_ = std::min(queued, max_batch);
        break;
    case Probe::failed:
        budget_ = max_batch;
        break;
    }
    return budget_;
}

void AcceptPacer::finished(std::size_t tried, bool emptied)
{
    const bool full = !emptied && tried >= budget_ && budget_ > 0;
    if (probe_ == Probe::answered && queued_ <= 1) {
        // The queue held one at most: whatever came since is a new arrival, not a backlog.
        behind_ = false;
        calm_ = calm_readinesses;
        return;
    }
    if (probe_ != Probe::skipped)
        calm_ = 0; // a backlog was seen (or cannot be told): no more calm
    else if (full && calm_ > 0)
        calm_--; // the calm_readinesses-th such readiness asks again
    behind_ = full && calm_ == 0;
}

} // namespace sniproxy
