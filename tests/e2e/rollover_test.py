#!/usr/bin/env python3
"""rollover_test.py: SIGHUP rollovers and the SIGUSR2 binary upgrade, under load.

Rollovers while clients connect back to back and long transfers are in flight lose
nothing; a burst of SIGHUPs keeps the number of workers bounded; a rollover whose new
workers cannot start leaves the old generation serving; the grace bounds a rollover's
drain; SIGUSR2 hands the listener to a new parent without refusing a connection.
"""
import ctypes
import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (ClientLoop, DaemonTestCase, Transfer, echo_handler, exited,  # noqa: E402
                     open_echo, read_exactly, read_to_eof, wait_until, worker_pids)


def listener_inode(port):
    """Inode of the socket listening on 127.0.0.1:`port` (state 0A in /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if int(p[1].split(":")[1], 16) == port and p[3] == "0A":
                return p[9]
    return None


def holds_socket(pid, inode):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                return True
        except (FileNotFoundError, ProcessLookupError):
            pass
    return False


def echo_once(test, s, data=b"still here"):
    s.sendall(data)
    test.assertEqual(read_exactly(s, len(data)), data)


def close_cleanly(test, s):
    s.shutdown(socket.SHUT_WR)
    test.assertEqual(read_to_eof(s), b"")
    s.close()


class Watcher:
    """Samples the listener and the worker count while a test runs (from the test thread)."""

    def __init__(self, d):
        self.d = d
        self.inode = listener_inode(d.port)
        self.max_workers = 0
        self.listener_changes = []

    def sample(self):
        inode = listener_inode(self.d.port)
        if inode != self.inode:
            self.listener_changes.append(inode)
        self.max_workers = max(self.max_workers, len(worker_pids(self.d)))


class RolloverTest(DaemonTestCase):
    def test_two_rollovers_under_load_lose_nothing(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2, grace=60)
        parent = d.pid
        watch = Watcher(d)
        self.assertTrue(watch.inode and holds_socket(parent, watch.inode), "parent holds no listener")
        loop = ClientLoop(d.port).start()
        self.addCleanup(loop.stop)
        loop.wait_ok(20)
        transfers = [Transfer(d, 4 << 20, seconds=6) for _ in range(4)]  # outlive both rollovers
        old = []  # the workers of generations 1 and 2
        for generation in (2, 3):
            old += worker_pids(d)
            d.signal(signal.SIGHUP)
            d.wait_lines(lambda l, g=generation: f"generation {g} serving" in l, timeout=10)
            loop.wait_ok(20)  # served by the new generation
            watch.sample()
        for t in transfers:
            self.assertFalse(t.sock._closed)
        errors = [t.join() for t in transfers]
        self.assertEqual(errors, [None] * 4, "a long transfer was cut or corrupted")
        loop.wait_ok(20)
        ok, failures = loop.stop()
        self.assertEqual(failures, [], f"{len(failures)} of {ok + len(failures)} connections failed")
        # the old workers (generations 1 and 2) exit once their transfers are done
        wait_until(lambda: len(worker_pids(d)) == 2 and not set(worker_pids(d)) & set(old),
                   10, what="only two workers, of generation 3")
        current = worker_pids(d)
        started = {int(m.group(1)) for l in d.lines()
                   for m in [re.search(r"worker (\d+) started \(generation 3\)", l)] if m}
        self.assertEqual(set(current), started, "the workers left are not generation 3's")
        for pid in old:
            self.assertTrue(exited(pid), f"old worker {pid} still alive")
        watch.sample()
        self.assertIsNone(d.proc.poll(), "the parent must survive rollovers")
        self.assertEqual(d.pid, parent)
        self.assertEqual(watch.listener_changes, [], "the listening socket was closed or replaced")
        self.assertTrue(holds_socket(parent, watch.inode), "the parent no longer holds the listener")
        for t in transfers:
            self.assertEqual(d.connection_log(t.client_port)["result"], "ok")

    def test_rapid_sighups_keep_the_workers_bounded(self):
        # lifecycle.cc has no cap on generations: a SIGHUP kills the workers of the newest
        # generation that are not ready yet and drains its ready ones (if an older generation
        # still serves); once a generation is ready, every older one drains, each worker
        # exiting with its last connection (or at the grace). So at most the serving and the
        # newest generation run, plus one worker per connection still open in older ones.
        self.hosts.raw("example.com", echo_handler)
        w = 2
        # moving off: the connections held below must keep their old generations alive
        # (move_test.py covers the rollover that moves them)
        d = self.start_daemon(workers=w, grace=60, extra_args=["-o", "move-connections=no"])
        # workers superseded before they were ready are killed (logged at debug level)
        d.expected_problems = [r"\(generation \d+\) killed by signal 9"]
        burst = 10  # faster than a generation becomes ready
        most = 0
        for _ in range(burst):
            d.signal(signal.SIGHUP)
            for _ in range(3):
                most = max(most, len(worker_pids(d)))
        newest = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # until the last generation serves, alone
            most = max(most, len(worker_pids(d)))
            starts = [int(m.group(1)) for l in d.lines()
                      for m in [re.search(r"SIGHUP: starting generation (\d+)", l)] if m]
            newest = max(starts, default=None)
            if newest and any(f"generation {newest} serving" in l for l in d.lines()) \
                    and len(worker_pids(d)) == w:
                break
            time.sleep(0.005)
        self.assertGreaterEqual(newest or 0, 3, "the burst did not roll over")
        # in /proc, workers just killed (superseded before ready) may linger a moment
        self.assertLessEqual(most, 3 * w, "more workers than a serving and a starting generation")
        for l in d.lines():  # when a generation takes over, only one other was serving
            m = re.search(r"generation \d+ serving; draining old workers:(( \d+)+)", l)
            if m:
                self.assertLessEqual(len(m.group(1).split()), w, f"more than one generation drained: {l}")
        d.wait_lines(lambda l: f"generation {newest} serving" in l, timeout=10)
        wait_until(lambda: len(worker_pids(d)) == w, 10, what=f"{w} workers after the burst")
        with open_echo(d) as s:
            close_cleanly(self, s)

        # now one connection held open in each old generation, SIGHUPs faster than drains
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        rounds = 10
        for i in range(rounds):
            held.append(open_echo(d))
            before = len([l for l in d.lines() if "SIGHUP: starting generation" in l])
            d.signal(signal.SIGHUP)
            d.wait_lines(lambda l: "SIGHUP: starting generation" in l, before + 1, timeout=10)
            gen = newest + i + 1
            d.wait_lines(lambda l, g=gen: f"generation {g} serving" in l, timeout=10)
            # each old generation keeps the one worker holding a connection
            wait_until(lambda n=len(held): len(worker_pids(d)) == w + n, 10,
                       what=f"{w} + {len(held)} workers")
        for s in held:
            echo_once(self, s)  # every old generation still serves its connection
        self.assertIsNone(d.proc.poll())
        lines = d.lines()
        for gen in range(2, newest + rounds + 1):
            self.assertTrue([l for l in lines if f"starting generation {gen} ({w} workers)" in l],
                            f"generation {gen} not logged with its size")
            pids = [l for l in lines if re.search(rf"worker \d+ started \(generation {gen}\)", l)]
            self.assertEqual(len(pids), w, f"generation {gen}: worker pids not logged")
        for gen in range(newest + 1, newest + rounds + 1):
            draining = [l for l in lines if re.search(rf"generation {gen} serving; draining old workers: \d+", l)]
            self.assertTrue(draining, f"generation {gen}: drained pids not logged")
        for s in held:
            close_cleanly(self, s)
        held.clear()
        wait_until(lambda: len(worker_pids(d)) == w, 10, what="old generations to exit")
        with open_echo(d) as s:
            close_cleanly(self, s)

    def test_failed_rollover_keeps_the_old_generation_serving(self):
        self.hosts.raw("example.com", echo_handler)
        link = harness.hosts_link(self.hosts.root)
        d = self.start_daemon(hosts_dir=link, workers=2, grace=10)
        # the new workers die at start (young): said loudly, with the retry delay
        # (one of them may be between two failed starts when generation 3 supersedes it: killed)
        d.expected_problems = [r"\(generation 2\) exited with status 1",
                               r"\(generation 2\) killed by signal 9",
                               r"died within 2 s of starting"]
        old = worker_pids(d)
        harness.repoint(link, os.path.join(harness.SCRATCH, "missing"))  # points nowhere
        loop = ClientLoop(d.port).start()
        self.addCleanup(loop.stop)
        d.signal(signal.SIGHUP)
        d.wait_lines(lambda l: "generation 2" in l and "exited with status 1" in l, timeout=10)
        d.wait_lines(lambda l: "jail_worker" in l or "hosts directory" in l, timeout=5)
        d.wait_lines(lambda l: "died within 2 s of starting" in l, 2, timeout=10)  # retried
        loop.wait_ok(30)
        self.assertEqual(loop.failures, [], "the old generation stopped serving")
        self.assertEqual(set(old) & set(worker_pids(d)), set(old), "the old workers are gone")
        self.assertFalse([l for l in d.lines() if "generation 2 serving" in l])

        harness.repoint(link, self.hosts.root)  # repaired
        d.signal(signal.SIGHUP)
        d.wait_lines(lambda l: "generation 3 serving" in l, timeout=10)
        wait_until(lambda: not set(old) & set(worker_pids(d)), 10, what="generation 1 to exit")
        wait_until(lambda: len(worker_pids(d)) == 2, 10, what="two workers of generation 3")
        loop.wait_ok(30)
        ok, failures = loop.stop()
        self.assertEqual(failures, [], f"{len(failures)} of {ok + len(failures)} connections failed")
        # no generation 2 worker is started after the recovery
        time.sleep(0.5)
        self.assertEqual(len(worker_pids(d)), 2)

    def test_rollover_grace_closes_what_is_left(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=1, grace=1, extra_args=["-o", "move-connections=no"])
        s = open_echo(d)
        self.addCleanup(s.close)
        old = worker_pids(d)
        d.signal(signal.SIGHUP)
        d.wait_lines(lambda l: "generation 2 serving" in l, timeout=10)
        start = time.monotonic()
        with open_echo(d) as fresh:  # the new generation serves meanwhile
            close_cleanly(self, fresh)
        echo_once(self, s)  # alive within the grace
        try:
            self.assertEqual(read_to_eof(s, timeout=6), b"")
        except ConnectionResetError:
            pass
        self.assertGreater(time.monotonic() - start, 0.5, "closed before the grace")
        self.assertEqual(d.connection_log(s.getsockname()[1])["result"], "grace-expired")
        d.wait_lines(lambda l: "grace expired, closing 1 connection(s)" in l)
        wait_until(lambda: all(exited(p) for p in old), 5, what="the old worker to exit")
        self.assertIsNone(d.proc.poll())

    def test_sigusr2_upgrade_hands_over_without_refusing(self):
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        # the new parent outlives ours: adopt it, to see its exit status
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            self.skipTest("skipped: cannot become a child subreaper")
        self.hosts.raw("example.com", echo_handler)
        pidfile = os.path.join(harness.scratch_dir("p"), "sniproxyd.pid")
        d = self.start_daemon(workers=2, grace=30, extra_args=["-p", pidfile])
        old_parent = d.pid
        wait_until(lambda: os.path.exists(pidfile), 5, what="the pid file")
        with open(pidfile) as f:
            self.assertEqual(int(f.read()), old_parent)
        inode = listener_inode(d.port)
        new_parent = None

        def stop_new():
            if new_parent and not exited(new_parent):
                os.kill(new_parent, signal.SIGKILL)
                os.waitpid(new_parent, 0)
        self.addCleanup(stop_new)
        loop = ClientLoop(d.port).start()
        self.addCleanup(loop.stop)
        loop.wait_ok(20)
        transfer = Transfer(d, 4 << 20, seconds=4)
        d.signal(signal.SIGUSR2)
        line = d.wait_lines(lambda l: "SIGUSR2: started" in l, timeout=5)[0]
        new_parent = int(re.search(r"as pid (\d+)", line).group(1))
        self.assertEqual(d.proc.wait(20), 0, "the old parent did not exit 0")
        self.assertIsNone(transfer.join(), "the in-flight transfer was cut or corrupted")
        self.assertFalse(exited(new_parent), "the new parent died")
        with open(pidfile) as f:
            self.assertEqual(int(f.read()), new_parent, "pid file not rewritten")
        self.assertTrue(holds_socket(new_parent, inode), "the new parent has not the same listener")
        self.assertEqual(listener_inode(d.port), inode)
        wait_until(lambda: len(worker_pids(d, parent=new_parent)) == 2, 10, what="the new workers")
        loop.wait_ok(20)  # served by the new parent alone
        ok, failures = loop.stop()
        self.assertEqual(failures, [], f"{len(failures)} of {ok + len(failures)} connections failed")
        self.assertEqual(d.connection_log(transfer.client_port)["result"], "ok")
        os.kill(new_parent, signal.SIGTERM)
        _, status = os.waitpid(new_parent, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, "the new parent did not exit 0")
        self.assertFalse(os.path.exists(pidfile), "the new parent left its pid file")
        d.stop()  # collects the rest of the log


if __name__ == "__main__":
    harness.main()
