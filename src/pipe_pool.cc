// pipe_pool.cc: a free list of empty pipes, bounded so that splicing can never eat the
// descriptors that connections need. Workers are single-threaded: no locking.
#include "pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

namespace sniproxy::pipe_pool {

namespace {
    std::vector<Pipe>& free_pipes()
    {
        static std::vector<Pipe> pipes;
        return pipes;
    }
    std::size_t existing = 0; // free and in use
} // namespace

Pipe acquire()
{
    auto& pool = free_pipes();
    if (!pool.empty()) {
        Pipe p = std::move(pool.back());
        pool.pop_back();
        return p;
    }
    int fds[2];
    if (existing >= max_pipes || pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return {};
    existing++;
    return { UniqueFd(fds[0]), UniqueFd(fds[1]) };
}

void release(Pipe pipe, bool empty)
{
    if (!pipe.read_end && !pipe.write_end) // (a moved connection took the read end along)
        return;
    if (empty) {
        free_pipes().push_back(std::move(pipe));
        return;
    }
    existing--; // closed as `pipe` goes out of scope
}

std::size_t open_pipes()
{
    return existing;
}

} // namespace sniproxy::pipe_pool
