// sched_policy_test.cc: the parent goes SCHED_BATCH only from the default policy at a nice
// value >= 0, and its children go back to SCHED_OTHER, keeping their nice value.
#include "catch.h"
#include "sched_policy.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace sniproxy;

TEST_CASE("only the default policy at a non-negative nice is changed")
{
    CHECK(parent_should_batch(SCHED_OTHER, 0));
    CHECK(parent_should_batch(SCHED_OTHER, 10));
    CHECK_FALSE(parent_should_batch(SCHED_OTHER, -5)); // the reset would lose it in workers
    CHECK_FALSE(parent_should_batch(SCHED_FIFO, 0));   // an operator's choice
    CHECK_FALSE(parent_should_batch(SCHED_IDLE, 0));
    CHECK_FALSE(parent_should_batch(SCHED_BATCH, 0)); // already
}

TEST_CASE("batch_parent switches this process; restore_child_policy undoes it in a child")
{
    // In a child, so the test program itself keeps its policy.
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const sched_param param {};
        if (sched_setscheduler(0, SCHED_OTHER, &param) != 0 || setpriority(PRIO_PROCESS, 0, 1) != 0)
            _exit(10);
        bool changed = false;
        std::string err;
        if (!batch_parent(&changed, &err) || !changed)
            _exit(11);
        if (sched_getscheduler(0) != SCHED_BATCH)
            _exit(12);
        const pid_t grandchild = fork();
        if (grandchild == 0) {
            restore_child_policy();
            _exit(sched_getscheduler(0) == SCHED_OTHER && getpriority(PRIO_PROCESS, 0) == 1 ? 0 : 13);
        }
        int status = 0;
        if (waitpid(grandchild, &status, 0) != grandchild || !WIFEXITED(status))
            _exit(14);
        if (WEXITSTATUS(status) != 0)
            _exit(WEXITSTATUS(status));
        // A second call leaves the batch policy alone.
        if (!batch_parent(&changed, &err) || changed)
            _exit(15);
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
