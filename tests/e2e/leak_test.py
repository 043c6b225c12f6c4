#!/usr/bin/env python3
"""leak_test.py: no descriptor or memory leak across thousands of connections.

Bursts of every kind of connection (good echo, bad hello, hello timeout, backend refused,
no route, client reset mid-stream, backend reset mid-stream) leave the parent and every
worker with the descriptors they had before, and the workers' resident memory flat.
"""
import concurrent.futures
import os
import socket
import struct
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (DaemonTestCase, client_hello, connect, echo_handler, open_echo,  # noqa: E402
                     read_exactly, read_to_eof, wait_until, worker_pids)

BURST = 2100  # connections per burst, of all kinds
THREADS = 6
LINGER_0 = struct.pack("ii", 1, 0)


MAX_PIPES = 64  # src/pipe_pool.h: pipes a worker may keep for splicing


def fds(pid):
    """(descriptors other than pipes, pipe descriptors). Workers keep a bounded pool of empty
    pipes for splicing, which grows and shrinks with the traffic: it is checked for its bound,
    everything else must return exactly to the baseline."""
    other = pipes = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            is_pipe = os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except FileNotFoundError:
            continue
        pipes += is_pipe
        other += not is_pipe
    return other, pipes


def fd_count(pid):
    return fds(pid)[0]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def reset_backend(c):
    """Reads a little, answers a little, then closes with data unread: on a Unix socket
    that is a reset (the daemon's next read gets ECONNRESET)."""
    c.recv(100)
    c.sock.sendall(b"x" * 1000)


def quietly(f):
    def run(port):
        try:
            f(port)
        except (ConnectionResetError, BrokenPipeError, EOFError):
            pass  # a reset is the point of some kinds
    return run


@quietly
def good(port):
    with connect(port) as s:
        data = client_hello("example.com") + os.urandom(2000)
        s.sendall(data)
        if read_exactly(s, len(data)) != data:
            raise AssertionError("echo differs")
        s.shutdown(socket.SHUT_WR)
        if read_to_eof(s) != b"":
            raise AssertionError("bytes after the echo")


@quietly
def bad_hello(port):
    with connect(port) as s:
        s.sendall(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\xff\xff\xff\xff")
        read_to_eof(s)


@quietly
def refused(port):
    with connect(port) as s:
        s.sendall(client_hello("dead.example.com"))
        read_to_eof(s)


@quietly
def no_route(port):
    with connect(port) as s:
        s.sendall(client_hello("nowhere.example.net"))
        read_to_eof(s)


@quietly
def client_reset(port):
    s = connect(port)
    hello = client_hello("example.com")
    s.sendall(hello + b"y" * 5000)
    read_exactly(s, len(hello) + 100)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    s.close()


@quietly
def backend_reset(port):
    with connect(port) as s:
        s.sendall(client_hello("reset.example.com") + bytes(60000))
        while s.recv(65536):
            pass


KINDS = [good, good, bad_hello, refused, no_route, client_reset, backend_reset]
TIMEOUTS = 40  # silent clients per burst, closed by the daemon after -T


class LeakTest(DaemonTestCase):
    def test_descriptors_and_memory_stay_flat(self):
        self.hosts.raw("example.com", echo_handler)
        self.hosts.raw("reset.example.com", reset_backend)
        self.hosts.dead("dead.example.com")
        d = self.start_daemon(workers=2, hello_timeout=1, grace=2)
        workers = worker_pids(d)
        with open_echo(d) as s:  # every worker has done its first connection
            s.shutdown(socket.SHUT_WR)
            read_to_eof(s)
            # Its log line is sent just before the worker closes its sockets: once the line
            # is here, the baseline does not count them.
            d.connection_log(s.getsockname()[1])
        pids = [d.pid] + workers

        def settled_counts():
            for p in pids:
                self.assertLessEqual(fds(p)[1], 2 * MAX_PIPES, f"pid {p} holds too many pipes")
            return {p: fd_count(p) for p in pids}

        total = [1]

        def burst():
            timeouts = []
            for _ in range(TIMEOUTS):  # half a hello, then silence
                s = connect(d.port)
                s.sendall(client_hello("example.com")[:20])
                timeouts.append(s)
            jobs = [KINDS[i % len(KINDS)] for i in range(BURST)]
            with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
                for f in [pool.submit(job, d.port) for job in jobs]:
                    f.result(60)
            for s in timeouts:
                self.assertEqual(read_to_eof(s, timeout=10), b"")
                s.close()
            total[0] += BURST + TIMEOUTS
            # every connection has ended and been logged: the daemon is idle again
            wait_until(lambda: len([l for l in d.lines() if " result=" in l]) >= total[0], 20,
                       what=f"{total[0]} connection log lines")

        before = settled_counts()
        burst()
        try:
            wait_until(lambda: settled_counts() == before, 5, what="descriptor counts to settle")
        except TimeoutError:
            self.fail(f"descriptors leaked: before {before}, after {settled_counts()}")
        rss_warm = {p: rss_kib(p) for p in workers}
        burst()
        try:
            wait_until(lambda: settled_counts() == before, 5, what="descriptor counts to settle")
        except TimeoutError:
            self.fail(f"descriptors leaked: before {before}, after {settled_counts()}")
        rss_after = {p: rss_kib(p) for p in workers}
        for p in workers:
            self.assertLessEqual(rss_after[p] - rss_warm[p], 1024,
                                 f"worker {p} grew from {rss_warm[p]} to {rss_after[p]} KiB")
        self.assertEqual(worker_pids(d), workers, "a worker died")
        results = {}
        for l in d.lines():
            fields = harness.parse_connection_line(l)
            if fields:
                results[fields["result"]] = results.get(fields["result"], 0) + 1
        for kind in ("ok", "bad-hello", "timeout", "no-route", "backend-refused", "client-reset",
                     "backend-reset"):
            self.assertGreater(results.get(kind, 0), 0, f"no '{kind}' connection in {results}")


if __name__ == "__main__":
    harness.main()
