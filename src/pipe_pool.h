// pipe_pool.h: the pipes a worker splices through. A bulk transfer moves bytes socket ->
// pipe -> socket with splice(2), so the worker never copies them; a pipe is needed only while
// bytes are in flight, so idle connections hold none and pipes are reused, not re-created.
#pragma once

#include "fd.h"

#include <cstddef>

namespace sniproxy {

struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;
    explicit operator bool() const { return static_cast<bool>(read_end); }
};

namespace pipe_pool {
    // At most this many pipes exist per worker (in use or kept for reuse): their descriptors
    // are reserved when the connection limit is derived from RLIMIT_NOFILE.
    constexpr std::size_t max_pipes = 64;

    // A pipe (non-blocking, close-on-exec) or, when none is left or pipe2 fails, an empty
    // one: the caller then copies through user space instead.
    Pipe acquire();
    // Give back a pipe that holds no bytes; a pipe that still holds bytes must be closed
    // instead (pass `empty` false), since they belong to a connection that is gone.
    void release(Pipe pipe, bool empty);
    // Pipes that exist now (for tests and the leak check).
    std::size_t open_pipes();
} // namespace pipe_pool

} // namespace sniproxy
