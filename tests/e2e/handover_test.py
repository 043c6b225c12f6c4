#!/usr/bin/env python3
"""handover_test.py: a hand-over error never takes the service down (issue 11, item 2).

Reproduces the outage found in review (RLIMIT_NOFILE=1024, 1,300 connections; -w 4 here so
that all of them fit in the workers at once): workers stopped for a moment while more
connections arrive than the parent's RLIMIT_NOFILE make the kernel refuse more descriptors in
flight (ETOOMANYREFS: it caps them per user at the sender's limit). That used to retire every
worker for good (no second wave was ever accepted) and the next SIGHUP SIGKILLed workers
holding live connections. Now the connections wait,
the dispatcher retries, every one of them is served, and a SIGHUP drains instead of killing.
Also: a stray SIGTERM to a worker (`pkill sniproxyd` matches workers) does not cut it.
"""
import os
import resource
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (DaemonTestCase, client_hello, connect, echo_handler, open_echo,  # noqa: E402
                     read_exactly, read_to_eof, wait_until, worker_pids)

WAVE = 1300  # more than LIMIT in flight at once, fewer than the workers can hold (4 x 416)
LIMIT = 1024  # the parent's RLIMIT_NOFILE


def raise_own_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= n


class HandoverTest(DaemonTestCase):
    def test_too_many_descriptors_in_flight_is_survived(self):
        if not raise_own_fd_limit(2 * WAVE + 200):
            self.skipTest("cannot raise this test's own descriptor limit")
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=4, grace=10, hello_timeout=30,
                              prefix=["prlimit", f"--nofile={LIMIT}:{LIMIT}", "--"])
        d.wait_lines(lambda l: " ready (" in l, 4, timeout=10)  # all of them take connections
        workers = worker_pids(d)
        self.assertEqual(len(workers), 4)
        hello = client_hello("example.com")
        clients = []
        self.addCleanup(lambda: [c.close() for c in clients])
        for p in workers:
            os.kill(p, signal.SIGSTOP)
        try:
            for _ in range(WAVE):
                s = connect(d.port, timeout=10)
                s.sendall(hello)
                clients.append(s)
            # The parent hands over until the kernel refuses (ETOOMANYREFS); give it time to hit
            # the limit with the workers still stopped.
            d.wait_lines(lambda l: "Too many references" in l, timeout=10)
        finally:
            for p in workers:
                os.kill(p, signal.SIGCONT)
        # Every one of the first wave is served once the workers read again (each closed once
        # served, so that the ones that waited in the backlog get a slot).
        for s in clients:
            self.assertEqual(read_exactly(s, len(hello), 30), hello)
            s.close()
        clients.clear()
        # A second wave is accepted and served too (before the fix: a total outage).
        clients.extend(open_echo(d, timeout=10) for _ in range(150))
        # SIGHUP with live connections: the old workers drain, nothing is killed or cut.
        d.signal(signal.SIGHUP)
        d.wait_lines(lambda l: "draining old workers" in l, timeout=15)
        for s in clients:
            s.sendall(b"still there")
            self.assertEqual(read_exactly(s, 11, 10), b"still there")
        self.assertFalse([l for l in d.lines() if "connections lost" in l], d.log())

    def test_a_stray_sigterm_to_a_worker_does_not_cut_it(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=1)
        s = open_echo(d)
        self.addCleanup(s.close)
        [w] = worker_pids(d)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(w, sig)
        time.sleep(0.3)
        self.assertEqual(worker_pids(d), [w])
        s.sendall(b"ping")
        self.assertEqual(read_exactly(s, 4, 5), b"ping")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(read_to_eof(s, 5), b"")


if __name__ == "__main__":
    harness.main()
