// accept_pacer.cc: the accept budget per readiness (see accept_pacer.h).
#include "accept_pacer.h"

#include <algorithm>

namespace sniproxy {

bool AcceptPacer::wants_probe()
{
    if (deep_ || ++since_probe_ >= sample_every) {
        since_probe_ = 0;
        return true;
    }
    return false;
}

std::size_t AcceptPacer::budget(Probe probe, std::size_t queued)
{
    switch (probe) {
    case Probe::skipped:
        return 1;
    case Probe::answered:
        deep_ = queued > 1;
        return std::min(queued, max_batch);
    case Probe::failed:
        break;
    }
    deep_ = false;
    return max_batch;
}

} // namespace sniproxy
