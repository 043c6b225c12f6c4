// parent_upgrade.h: the parent's end of a SIGUSR2 upgrade's channel (the old parent's, made
// at spawn_upgrade, or the new parent's, adopted at start-up) with its read event; what the
// messages mean is the Supervisor's (on_upgrade_message).
#pragma once

#include "event_ptr.h"
#include "fd.h"
#include "parent.h"
#include "workers.h"

namespace sniproxy {

class Parent::UpgradeChannel final : public UpgradeLink {
public:
    UpgradeChannel(Parent& parent, UniqueFd fd);
    int send_moving(const Encoded& m, std::span<const int> fds) override;
    void wait_for_room() override;
    bool open() const { return static_cast<bool>(fd_); }
    void close(); // for good: the supervisor is told

private:
    static void on_readable(evutil_socket_t, short, void* arg);
    static void on_writable(evutil_socket_t, short, void* arg);
    void read();

    Parent& parent_;
    UniqueFd fd_;
    EventPtr read_event_;
    EventPtr write_event_;
};

} // namespace sniproxy
