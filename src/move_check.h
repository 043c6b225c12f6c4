// move_check.h: the parent's check of the descriptors a draining worker hands over with an
// established connection (MovingMsg), before it forwards them to a new worker. A hijacked
// worker could otherwise pass on anything it can open; the parent never uses them itself.
#pragma once

#include "fd.h"

#include <span>
#include <string>

namespace sniproxy {

// The client is a TCP stream socket (AF_INET or AF_INET6), the backend a Unix stream socket,
// a third descriptor (when `with_pipe`) a pipe; exactly that many. False with the reason.
bool check_moving_fds(std::span<const UniqueFd> fds, bool with_pipe, std::string* err);

} // namespace sniproxy
