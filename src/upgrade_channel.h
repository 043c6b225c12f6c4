// upgrade_channel.h: the new parent's check of the upgrade channel its old parent passed
// (SNIPROXYD_UPGRADE_CHANNEL names the descriptor). Only a Unix SOCK_SEQPACKET socket is
// used; anything else means no moving, and the upgrade goes on as a plain drain.
#pragma once

#include "fd.h"

#include <string>
#include <string_view>

namespace sniproxy {

// The environment variable, and the descriptor's check: a number >= 3 naming a Unix
// SOCK_SEQPACKET socket, made close-on-exec and non-blocking. False with the reason.
inline constexpr const char* upgrade_channel_env = "SNIPROXYD_UPGRADE_CHANNEL";
bool adopt_upgrade_channel(std::string_view fd_text, UniqueFd* out, std::string* err);

} // namespace sniproxy
