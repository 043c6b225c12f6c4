// relay.h: forwarding bytes both ways between the client and the backend once the hello has
// been replayed. It holds no buffer while a connection is idle: bytes go from one socket to
// the other through a scratch buffer shared by the whole worker, or, once the client sends
// bulk data, through a pooled pipe with splice(2); only what the receiving socket cannot take
// right now is kept (and reading that side pauses until it is written).
#pragma once

#include "event_ptr.h"
#include "fd.h"
#include "pipe_pool.h"

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sniproxy {

// An established connection between two workers (the hand-over of a rollover): everything a
// relay needs to carry on as if it had relayed the connection from the start.
struct RelayState {
    struct Direction {
        std::uint64_t bytes = 0;
        bool eof = false; // `from` has ended
        bool shut = false; // `to` was shut down for writing
        bool splicing = false;
        std::size_t in_pipe = 0; // bytes waiting in `pipe` (the client's direction only)
        std::string pending; // read, not yet written
    };
    UniqueFd client;
    UniqueFd backend;
    UniqueFd pipe; // the read end of the client direction's pipe, when in_pipe > 0
    Direction up;
    Direction down;
};

class Relay {
public:
    // Called once when both directions have ended (result "ok") or one side failed. The owner
    // then destroys the relay: closing the sockets is what passes the last end of file on.
    // `err` is the errno of the failed read or write, 0 for "ok".
    using DoneFn = void (*)(void* owner, const char* result, int err);

    Relay(event_base* base, UniqueFd client, UniqueFd backend, DoneFn done, void* owner);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Sends `first` to the backend (PROXY header, replayed hello), then relays both ways.
    // The first `uncounted` bytes (the header) are not the client's and are not counted.
    void start(std::span<const std::uint8_t> first, std::size_t uncounted);

    // idle-timeout: end with result "idle-timeout" after `seconds` without a byte read either
    // way (0: never). Call before start().
    void set_idle_timeout(unsigned seconds);

    // Bytes read but not yet written, in memory (a pipe's are not counted): what a hand-over
    // must carry in its message.
    std::size_t pending_bytes() const { return up_.pending_len + down_.pending_len; }
    // Stops every event of the relay and gives up its sockets and pipe, closing nothing: the
    // relay is inert afterwards and only to be destroyed.
    RelayState export_state();
    // A relay that carries on from `state` (export_state's, possibly in another process):
    // bytes kept are written first, then reading resumes where it was allowed. Never calls
    // `done` before returning.
    static std::unique_ptr<Relay> import_state(
        event_base* base, RelayState state, DoneFn done, void* owner);

    std::uint64_t up() const { return up_.bytes; } // client -> backend
    std::uint64_t down() const { return down_.bytes; } // backend -> client

private:
    struct Direction {
        int from = -1;
        int to = -1;
        EventPtr readable; // on `from`, persistent while we may read
        // On `to`, armed only while bytes are pending; created the first time they are
        // (an idle connection never needs it: 2 x 144 bytes saved per connection).
        EventPtr writable;
        std::unique_ptr<std::uint8_t[]> pending; // what `to` could not take yet
        // Both below the largest pending write: the replayed hello, one read, or a moved
        // connection's bytes (moving_room).
        std::uint32_t pending_off = 0;
        std::uint32_t pending_len = 0;
        Pipe pipe; // while splicing: held only as long as bytes are in it
        std::size_t in_pipe = 0;
        std::uint64_t bytes = 0;
        bool splicing = false; // the client sent a large read: splice from now on
        bool eof = false; // `from` has ended
        bool shut = false; // we shut down writing to `to`
        bool is_up = false;
        Relay* relay = nullptr;
    };

    static void on_readable(evutil_socket_t, short, void* arg);
    static void on_writable(evutil_socket_t, short, void* arg);
    static void on_idle_check(evutil_socket_t, short, void* arg);
    std::int64_t now_ms() const;

    void pump(Direction& d);
    void flush(Direction& d);
    ssize_t take(Direction& d);
    bool drain_pipe(Direction& d);
    static void return_pipe(Direction& d, bool closing = false);
    bool write_or_keep(Direction& d, const std::uint8_t* data, std::size_t len);
    void want_writable(Direction& d);
    static void stop_writable(Direction& d);
    void end_of(Direction& d);
    void fail(Direction& d, bool reading, int err);

    UniqueFd client_;
    UniqueFd backend_;
    Direction up_;
    Direction down_;
    DoneFn done_;
    void* owner_;
    event_base* base_;
    // idle-timeout: one timer, re-armed only when it fires; reads just note the loop's
    // cached time (no system call).
    EventPtr idle_timer_;
    std::int64_t idle_ms_ = 0;
    std::int64_t last_active_ms_ = 0;
};

} // namespace sniproxy
