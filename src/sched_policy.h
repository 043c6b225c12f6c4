// sched_policy.h: the parent's CPU scheduling policy. On a core it shares with a busy
// worker, a woken parent that preempts the worker costs two context switches per accepted
// connection; as SCHED_BATCH it waits for the worker to sleep (or its slice to end) and then
// accepts everything queued at once. Workers stay SCHED_OTHER.
#pragma once

#include <string>

namespace sniproxy {

// Whether the parent should switch to SCHED_BATCH: only from the default policy (an operator
// who chose one, e.g. with chrt or systemd's CPUSchedulingPolicy=, keeps it) and only at a
// nice value >= 0, because the switch resets a negative nice in the workers.
bool parent_should_batch(int policy, int nice);

// Applies the choice above to the calling process. Returns false with *err set if the kernel
// refused; *changed says whether the policy changed.
bool batch_parent(bool* changed, std::string* err);

// In a child between fork and exec (async-signal-safe): back to SCHED_OTHER if batch_parent
// changed the parent's policy, so workers, the metrics server and an upgrade's new binary
// start as the parent itself was started. (SCHED_RESET_ON_FORK would not do: it resets only
// real-time policies.) The parent's seccomp filter allows exactly this call.
void restore_child_policy();

} // namespace sniproxy
