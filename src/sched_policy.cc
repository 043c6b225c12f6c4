// sched_policy.cc: the parent's CPU scheduling policy (see sched_policy.h for why).
#include "sched_policy.h"

#include "log.h"

#include <sched.h>
#include <sys/resource.h>

#include <cerrno>

namespace sniproxy {

namespace {
    bool batched = false; // by batch_parent, in this process
}

bool parent_should_batch(int policy, int nice)
{
    return policy == SCHED_OTHER && nice >= 0;
}

bool batch_parent(bool* changed, std::string* err)
{
    *changed = false;
    const int policy = sched_getscheduler(0);
    if (policy < 0) {
        *err = errno_message("sched_getscheduler", errno);
        return false;
    }
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, 0);
    if (nice == -1 && errno != 0) {
        *err = errno_message("getpriority", errno);
        return false;
    }
    if (!parent_should_batch(policy, nice))
        return true;
    const sched_param param {};
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
        *err = errno_message("sched_setscheduler(SCHED_BATCH)", errno);
        return false;
    }
    *changed = batched = true;
    return true;
}

void restore_child_policy()
{
    if (!batched)
        return;
    const sched_param param {};
    sched_setscheduler(0, SCHED_OTHER, &param); // failing, the child is merely batched too
}

} // namespace sniproxy
