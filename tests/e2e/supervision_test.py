#!/usr/bin/env python3
"""supervision_test.py: workers dying, crash loops, stop and the parent's death.

A worker killed under load is replaced and costs only its own connections; workers that
die at start are retried with a doubling delay, not in a flood; SIGTERM refuses new
clients at once and lets a transfer finish (a second SIGTERM exits at once); workers of a
parent killed with SIGKILL exit by themselves.
"""
import errno
import os
import re
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (ClientLoop, DaemonTestCase, Transfer, connect, echo_handler,  # noqa: E402
                     exited, open_echo, read_to_eof, wait_until, worker_pids)


def socket_inodes(pid):
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def client_inode(port, client_port):
    """Inode of the daemon-side TCP socket of the connection from `client_port`."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if int(p[1].split(":")[1], 16) == port and int(p[2].split(":")[1], 16) == client_port:
                return p[9]
    return None


class LineTimes:
    """Records when each daemon log line was first seen (polled every few ms)."""

    def __init__(self, d):
        self.d = d
        self.times = []  # (monotonic time, line)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        seen = 0
        while not self._stop.is_set():
            lines = self.d.lines()
            now = time.monotonic()
            self.times += [(now, l) for l in lines[seen:]]
            seen = len(lines)
            time.sleep(0.005)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.times


class SupervisionTest(DaemonTestCase):
    def start_with_a_broken_hosts_dir(self):
        """One healthy worker, then its generation's hosts directory made unenterable (mode
        000: the jail has no CAP_DAC_OVERRIDE): the next worker that starts dies at once.
        Returns the daemon and a function that repairs the directory. (Swapping the hosts
        link would not do: a generation keeps the directory it started with.)"""
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=1)
        d.expected_problems = [r"killed by signal 9", r"exited with status 1",
                               r"died within 2 s of starting"]
        root = self.hosts.root
        mode = os.stat(root).st_mode & 0o7777
        os.chmod(root, 0)
        self.addCleanup(os.chmod, root, mode)
        return d, lambda: os.chmod(root, mode)

    def test_sigkill_worker_under_load(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2)
        d.expected_problems = [r"killed by signal 9", r"connections lost", r"died within 2 s of starting"]
        workers = worker_pids(d)
        # what can be proven: a connection another worker holds is never failed, and every
        # connection opened after the victim is gone succeeds
        loop = ClientLoop(d.port).start()
        self.addCleanup(loop.stop)
        loop.wait_ok(30)
        victim, survivor = workers
        survivor_sockets = []
        self.addCleanup(lambda: [s.close() for s in survivor_sockets])
        for _ in range(20):  # connections held by the survivor across the kill
            s = open_echo(d)
            if client_inode(d.port, s.getsockname()[1]) in socket_inodes(survivor):
                survivor_sockets.append(s)
            else:
                s.close()
            if len(survivor_sockets) == 2:
                break
        self.assertTrue(survivor_sockets, "no connection landed on the surviving worker")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: exited(victim), 5, what="the worker to die")
        replaced = wait_until(lambda: [p for p in worker_pids(d) if p not in workers], 5,
                              what="a replacement worker")
        self.assertLess(time.monotonic() - killed_at, 1.5, "the replacement took too long")
        self.assertEqual(len(replaced), 1)
        loop.wait_ok(50)
        ok, failures = loop.stop()
        # the loop is sequential: only its one connection open on the victim may fail
        self.assertLessEqual(len(failures), 1, f"more than the killed worker's connection failed: {failures}")
        late = [f for f in failures if f[0] > killed_at + 2]
        self.assertEqual(late, [], "a connection failed well after the kill")
        for s in survivor_sockets:
            s.sendall(b"survivor")
            self.assertEqual(harness.read_exactly(s, 8), b"survivor")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
        self.assertEqual(sorted(worker_pids(d)), sorted([survivor] + replaced))

    def test_crash_loop_backs_off(self):
        # Workers that cannot enter the hosts directory die right at start. Start healthy,
        # point the directory nowhere, kill one worker: its replacements keep dying young.
        d, repair = self.start_with_a_broken_hosts_dir()
        times = LineTimes(d)
        self.addCleanup(times.stop)
        (victim,) = worker_pids(d)
        os.kill(victim, signal.SIGKILL)
        # 100, 200, 400, 800, 1600, 3200 ms: the 6th failed start comes after ~6.3 s
        d.wait_lines(lambda l: "next start in 3200 ms" in l, timeout=20)
        wait_until(lambda: any("next start in 3200 ms" in l for _, l in times.times), 5, what="the poller")
        observed = times.stop()
        # (a victim older than 2 s is replaced at once, once: the doubling starts after that)
        events = []  # (time seen, "start" or the announced delay in ms)
        for t, l in observed:
            m = re.search(r"next start in (\d+) ms", l)
            if m:
                events.append((t, int(m.group(1))))
            elif re.search(r"worker \d+ started", l):
                events.append((t, "start"))
        delays = [e for _, e in events if e != "start"]
        starts = [t for t, e in events if e == "start"]
        self.assertEqual(delays, [100, 200, 400, 800, 1600, 3200], "the announced delays do not double from 100 ms")
        self.assertLessEqual(len(starts), len(delays), f"a flood of restarts: {events}")
        # each announced delay is kept: measure it to the next start (polled: allow slack)
        waited = [(b[0] - a[0], a[1]) for a, b in zip(events, events[1:]) if a[1] != "start" and b[1] == "start"]
        self.assertGreaterEqual(len(waited), 5, f"too few restarts seen: {events}")
        for gap, want_ms in waited:
            self.assertGreater(gap, want_ms / 1000 * 0.8, f"restart after {gap:.2f} s, announced {want_ms} ms")
            self.assertLess(gap, want_ms / 1000 + 1.5, f"restart after {gap:.2f} s, announced {want_ms} ms")
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        for a, b in zip(gaps[-4:], gaps[-3:]):
            self.assertGreater(b, a * 1.3, f"the spacing of restarts does not grow: {gaps}")
        # loud: the worker's own reason, and the parent's error with the next delay
        self.assertTrue([l for l in d.lines() if "worker:" in l and "Permission denied" in l],
                        "the worker's own reason is not logged")
        # the service recovers once the directory is back (on the next scheduled start)
        repair()
        d.signal(signal.SIGHUP)  # or wait up to 6.4 s for the next try
        d.wait_lines(lambda l: "generation 2 ready" in l, timeout=10)  # none to drain: no "serving"
        with open_echo(d) as s:
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")

    def test_crash_loop_ends_by_itself_once_the_directory_is_back(self):
        d, repair = self.start_with_a_broken_hosts_dir()
        os.kill(worker_pids(d)[0], signal.SIGKILL)
        d.wait_lines(lambda l: "next start in 400 ms" in l, timeout=10)
        repair()  # no SIGHUP: the next scheduled start succeeds
        d.wait_lines(lambda l: "all 1 worker(s) ready again" in l, timeout=5)
        with open_echo(d) as s:
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")

    def test_workers_dying_soon_after_ready_still_back_off(self):
        # A worker that says ready and then dies young (a crash on its first connection, say)
        # is still a crash loop: the delay must keep doubling, not restart at 100 ms.
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=1)
        d.expected_problems = [r"killed by signal 11", r"died within 2 s of starting"]
        delays = []
        for i in range(5):
            (victim,) = worker_pids(d)
            d.wait_lines(lambda l: "generation 1 ready" in l, count=i + 1, timeout=10)
            os.kill(victim, signal.SIGSEGV)
            wait_until(lambda: worker_pids(d) not in ([], [victim]), 10, what="the replacement")
            m = [re.search(r"next start in (\d+) ms", l) for l in d.lines()
                 if f"worker {victim} died within 2 s" in l]
            if m:  # (the first worker may already be older than 2 s on a slow machine)
                delays.append(int(m[-1].group(1)))
        self.assertGreaterEqual(len(delays), 4, d.lines())
        for a, b in zip(delays, delays[1:]):
            self.assertEqual(b, 2 * a, f"the delay does not keep doubling: {delays}")

    def test_a_respawned_worker_enters_its_generations_tree_not_the_swapped_link(self):
        link, old_backend, new_backend, new_hosts = self.two_trees()
        d = self.start_daemon(hosts_dir=link, workers=1)
        d.expected_problems = [r"killed by signal 9", r"died within 2 s of starting"]
        [victim] = worker_pids(d)
        harness.repoint(link, new_hosts.root)  # swapped, but no SIGHUP yet
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: worker_pids(d) not in ([], [victim]), 10, what="the replacement")
        d.wait_lines(lambda l: " ready (" in l, 2, timeout=10)
        open_echo(d).close()
        # One generation serves one tree: the replacement is still in the old one.
        self.assertEqual((len(old_backend.connections), len(new_backend.connections)), (1, 0))
        d.signal(signal.SIGHUP)  # now the new tree
        d.wait_lines(lambda l: "generation 2 serving" in l, timeout=10)
        open_echo(d).close()
        self.assertEqual((len(old_backend.connections), len(new_backend.connections)), (1, 1))

    def test_sigterm_refuses_at_once_and_lets_a_transfer_finish(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2, grace=30)
        transfer = Transfer(d, 4 << 20, seconds=3)
        time.sleep(0.3)
        d.signal(signal.SIGTERM)
        d.wait_lines(lambda l: "stopping" in l, timeout=5)
        with self.assertRaises(ConnectionRefusedError):
            connect(d.port, timeout=2).close()
        self.assertIsNone(transfer.join(), "the transfer was cut or corrupted")
        self.assertEqual(d.proc.wait(10), 0)
        d.stop()
        self.assertEqual(d.connection_log(transfer.client_port)["result"], "ok")

    def test_second_sigterm_exits_at_once(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2, grace=30)
        s = open_echo(d)
        self.addCleanup(s.close)
        workers = worker_pids(d)
        d.signal(signal.SIGTERM)
        d.wait_lines(lambda l: "stopping" in l, timeout=5)
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(10), 0)
        self.assertLess(time.monotonic() - start, 5, "the second SIGTERM did not exit at once")
        d.stop()
        try:
            self.assertEqual(read_to_eof(s, timeout=5), b"")
        except ConnectionResetError:
            pass
        wait_until(lambda: all(exited(p) for p in workers), 5, what="the workers to be gone")

    def test_a_hung_draining_worker_is_killed_after_the_grace_despite_more_sighups(self):
        # A stopped (hung) worker cannot enforce its own grace: the parent's backstop must,
        # at grace + 2 s after that worker started draining, however many rollovers follow.
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=1, grace=1)
        d.expected_problems = [r"still running after the grace", r"killed by signal 9"]
        (hung,) = worker_pids(d)
        os.kill(hung, signal.SIGSTOP)
        self.addCleanup(lambda: exited(hung) or os.kill(hung, signal.SIGCONT))
        start = time.monotonic()
        d.signal(signal.SIGHUP)
        while time.monotonic() - start < 6 and not exited(hung):
            time.sleep(0.7)
            d.signal(signal.SIGHUP)  # each rollover must not postpone the first one's backstop
        self.assertTrue(exited(hung), "the hung worker outlived grace + 2 s by far")
        self.assertLess(time.monotonic() - start, 5)
        d.wait_lines(lambda l: f"worker {hung} still running after the grace" in l, timeout=5)
        s = open_echo(d)  # still serving
        s.close()

    def test_workers_exit_when_the_parent_dies(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2, grace=30)
        s = open_echo(d)  # a busy worker must go too
        self.addCleanup(s.close)
        workers = worker_pids(d)
        self.assertEqual(len(workers), 2)
        d.proc.kill()
        self.assertEqual(d.stop(), -9)
        wait_until(lambda: all(exited(p) for p in workers), 5, what="the orphaned workers to exit")
        try:
            self.assertEqual(read_to_eof(s, timeout=5), b"")
        except ConnectionResetError:
            pass
        with self.assertRaises(OSError) as e:
            connect(d.port, timeout=2).close()
        self.assertIn(e.exception.errno, (errno.ECONNREFUSED,))


if __name__ == "__main__":
    harness.main()
