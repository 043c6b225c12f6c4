// parent_upgrade.cc: the upgrade channel's event. A message that does not fit, one the
// supervisor refuses, an error or the other end closing: the channel closes, logged, and
// this parent carries on serving (the old one keeps what it has, bounded by -g).
#include "parent_upgrade.h"

#include "log.h"
#include "moving_forward.h"
#include "protocol.h"

namespace sniproxy {

Parent::UpgradeChannel::UpgradeChannel(Parent& parent, UniqueFd fd)
    : parent_(parent)
    , fd_(std::move(fd))
{
    read_event_.reset(
        event_new(parent.base_.get(), fd_.get(), EV_READ | EV_PERSIST, on_readable, this));
    write_event_.reset(event_new(parent.base_.get(), fd_.get(), EV_WRITE, on_writable, this));
    event_add(read_event_.get(), nullptr);
}

void Parent::UpgradeChannel::wait_for_room()
{
    if (fd_)
        event_add(write_event_.get(), nullptr);
}

void Parent::UpgradeChannel::on_writable(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<UpgradeChannel*>(arg);
    self->parent_.supervisor_.retry_moves();
    self->parent_.sync();
}

int Parent::UpgradeChannel::send_moving(const Encoded& m, std::span<const int> fds)
{
    return fd_ ? sniproxy::send_moving(fd_.get(), m, fds) : EPIPE;
}

void Parent::UpgradeChannel::close()
{
    if (!fd_)
        return;
    read_event_.reset();
    write_event_.reset();
    fd_.reset();
    parent_.supervisor_.set_upgrade_link(nullptr, false);
}

void Parent::UpgradeChannel::on_readable(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<UpgradeChannel*>(arg);
    self->read();
    self->parent_.sync();
}

void Parent::UpgradeChannel::read()
{
    for (int i = 0; i < max_messages_per_read && fd_; i++) {
        Received m;
        const Recv r = receive_message(fd_.get(), m);
        if (r == Recv::again)
            return;
        if (r == Recv::eof || r == Recv::error) {
            logf(LogLevel::notice, "upgrade channel closed by the other parent");
            close();
            return;
        }
        if (const auto id = r == Recv::invalid ? cut_moving_id(m) : std::nullopt) {
            parent_.supervisor_.on_upgrade_cut(*id); // we are out of descriptors: lost
            continue;
        }
        if (r == Recv::invalid) {
            logf(LogLevel::err,
                "upgrade channel: protocol violation: a message that does not fit; closing it");
            close();
            return;
        }
        if (!parent_.supervisor_.on_upgrade_message(m)) { // logged there
            close();
            return;
        }
    }
}

void Parent::open_upgrade_channel(UniqueFd fd, bool to_successor)
{
    upgrade_channel_ = std::make_unique<UpgradeChannel>(*this, std::move(fd));
    supervisor_.set_upgrade_link(upgrade_channel_.get(), to_successor);
}

} // namespace sniproxy
