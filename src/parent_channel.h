// parent_channel.h: the parent's real WorkerChannel: its end of a worker's socketpair, with
// the read and write events on it (parent.cc reads; parent_spawn.cc creates one per worker).
#pragma once

#include "event_ptr.h"
#include "fd.h"
#include "parent.h"
#include "protocol.h"
#include "workers.h"

#include <event2/event.h>

namespace sniproxy {

// The real channel: the parent's end of the socketpair, read and write events on it.
class Parent::Channel final : public WorkerChannel {
public:
    Channel(Parent& parent, UniqueFd fd, WorkerSlot& slot)
        : parent_(parent)
        , fd_(std::move(fd))
        , slot_(slot)
    {
        read_event_.reset(
            event_new(parent.base_.get(), fd_.get(), EV_READ | EV_PERSIST, on_readable, this));
        write_event_.reset(event_new(parent.base_.get(), fd_.get(), EV_WRITE, on_writable, this));
        event_add(read_event_.get(), nullptr);
    }
    int send_connections(std::span<const int> fds, std::span<const ConnectionInfo> infos) override
    {
        return sniproxy::send_connections(fd_.get(), fds, infos);
    }
    int send(const Encoded& m) override { return sniproxy::send(fd_.get(), m); }
    int send_moving(const Encoded& m, std::span<const int> fds) override
    {
        return sniproxy::send_moving(fd_.get(), m, fds);
    }
    void wait_for_room() override { event_add(write_event_.get(), nullptr); }
    int fd() const { return fd_.get(); }
    void stop_reading() { event_del(read_event_.get()); }

private:
    static void on_readable(evutil_socket_t, short, void* arg)
    {
        auto* self = static_cast<Channel*>(arg);
        Parent& p = self->parent_;
        p.read_worker(self->slot_);
        p.sync();
    }
    static void on_writable(evutil_socket_t, short, void* arg)
    {
        auto* self = static_cast<Channel*>(arg);
        Parent& p = self->parent_;
        p.supervisor_.on_room(self->slot_);
        p.dispatcher_.on_room(self->slot_);
        p.supervisor_.retry_moves(); // moves that waited for a worker's channel
        p.sync();
    }

    Parent& parent_;
    UniqueFd fd_;
    WorkerSlot& slot_;
    EventPtr read_event_;
    EventPtr write_event_;
};

} // namespace sniproxy
