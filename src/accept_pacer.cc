// accept_pacer.cc: the accept budget per readiness (see accept_pacer.h).
#include "accept_pacer.h"

#include <algorithm>

namespace sniproxy {

bool AcceptPacer::wants_probe(std::int64_t now_ns)
{
    const bool busy = last_ns_ != 0 && now_ns - last_ns_ < busy_gap_ns;
    last_ns_ = now_ns;
    return busy;
}

std::size_t AcceptPacer::budget(Probe probe, std::size_t queued)
{
    switch (probe) {
    case Probe::skipped:
        return 1;
    case Probe::answered:
        return std::min(queued, max_batch);
    case Probe::failed:
        break;
    }
    return max_batch;
}

} // namespace sniproxy
