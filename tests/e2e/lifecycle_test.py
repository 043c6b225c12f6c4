#!/usr/bin/env python3
"""lifecycle_test.py: stop, rollover and worker death, as a client sees them.

SIGTERM stops accepting but lets open connections finish (up to -g, then grace-expired);
SIGHUP starts a new generation that re-enters the hosts directory while old connections
keep flowing; a worker killed with SIGKILL loses only its own connections and is replaced.
"""
import os
import platform
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, client_hello, connect, echo_handler, read_exactly, read_to_eof
from harness import exited, worker_pids  # noqa: E402


def open_echo(d, name="example.com"):
    """A connection through the daemon to an echo backend, proven to work."""
    s = connect(d.port)
    hello = client_hello(name)
    s.sendall(hello)
    if read_exactly(s, len(hello)) != hello:
        raise AssertionError("echo of the hello differs")
    return s


def assert_echo(test, s, data=b"ping"):
    s.sendall(data)
    test.assertEqual(read_exactly(s, len(data)), data)


def server_inode(d, client_port):
    """Inode of the daemon-side socket of the connection from `client_port`."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if int(p[1].split(":")[1], 16) == d.port and int(p[2].split(":")[1], 16) == client_port:
                return p[9]
    return None


def holder(pids, inode):
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                pass
    return None


def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def wait_blocked_on_log(pid):
    """Waits until `pid` is inside write(2, ...) (x86_64, aarch64), else just a moment."""
    numbers = {"x86_64": "1", "aarch64": "64"}.get(platform.machine())
    if not numbers:
        time.sleep(0.5)
        return

    def blocked():
        try:
            with open(f"/proc/{pid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            return False
        return fields[:2] == [numbers, "0x2"]
    harness.wait_until(blocked, 5, what="the parent to block writing its log")


class LifecycleTest(DaemonTestCase):
    def test_sigterm_lets_open_connections_finish(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(grace=20)
        with open_echo(d) as s:
            d.signal(signal.SIGTERM)
            d.wait_lines(lambda l: "stopping" in l)
            harness.wait_until(lambda: self.refused(d), 3, what="new connections to be refused")
            assert_echo(self, s)  # the open one still works
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
            closed = time.monotonic()
            self.assertEqual(d.proc.wait(5), 0)
            self.assertLess(time.monotonic() - closed, 3, "did not exit once its last connection ended")
            self.assertEqual(d.connection_log(s.getsockname()[1])["result"], "ok")

    def test_sigterm_closes_what_is_left_after_the_grace(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(grace=1)
        with open_echo(d) as s:
            start = time.monotonic()
            d.signal(signal.SIGTERM)
            self.assertEqual(read_to_eof(s, timeout=4), b"")
            self.assertGreater(time.monotonic() - start, 0.8)
            self.assertEqual(d.proc.wait(5), 0)
            self.assertEqual(d.connection_log(s.getsockname()[1])["result"], "grace-expired")

    def test_sighup_rollover_reenters_the_hosts_dir_and_keeps_connections(self):
        link, old_backend, new_backend, new_hosts = self.two_trees()
        d = self.start_daemon(hosts_dir=link, grace=10)
        old_workers = worker_pids(d)
        with open_echo(d) as s:
            harness.repoint(link, new_hosts.root)  # swap the whole configuration
            with open_echo(d) as before_hup:  # not seen before the rollover
                pass
            self.assertEqual((len(old_backend.connections), len(new_backend.connections)), (2, 0))
            d.signal(signal.SIGHUP)
            d.wait_lines(lambda l: "generation 2 serving" in l)
            with open_echo(d) as after_hup:
                pass
            self.assertEqual((len(old_backend.connections), len(new_backend.connections)), (2, 1))
            assert_echo(self, s)  # the old connection kept flowing
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
        harness.wait_until(lambda: not set(old_workers) & set(worker_pids(d)), 5,
                           what="the old generation to exit")
        self.assertEqual(len(worker_pids(d)), d.workers)
        self.assertIsNone(d.proc.poll(), "the parent must survive a rollover")

    def test_killed_worker_loses_only_its_connections_and_is_replaced(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2)
        # what killing it makes the parent say (it is younger than the crash-loop window)
        d.expected_problems = [r"killed by signal 9", r"connections lost", r"died within 2 s of starting"]
        workers = worker_pids(d)
        by_worker = {}
        for _ in range(8):  # least-loaded dispatch spreads them; stop once both have some
            s = open_echo(d)
            self.addCleanup(s.close)
            by_worker.setdefault(holder(workers, server_inode(d, s.getsockname()[1])), []).append(s)
            if len(by_worker) == 2:
                break
        self.assertEqual(sorted(by_worker), workers, "connections did not spread over both workers")
        victim, survivor = workers
        os.kill(victim, signal.SIGKILL)
        for s in by_worker[victim]:
            try:
                self.assertEqual(read_to_eof(s), b"")
            except ConnectionResetError:
                pass
        for s in by_worker[survivor]:
            assert_echo(self, s)
        harness.wait_until(lambda: len(worker_pids(d)) == 2 and victim not in worker_pids(d), 5,
                           what="a replacement worker")
        for _ in range(4):  # new connections are served, by whichever worker
            with open_echo(d) as c:
                c.shutdown(socket.SHUT_WR)
                self.assertEqual(read_to_eof(c), b"")
        for s in by_worker[survivor]:
            assert_echo(self, s)

    def test_no_log_line_lost_when_workers_exit_while_the_parent_is_busy(self):
        # "One line per connection when it ends", also when workers exit while the parent
        # is held up writing its log (a slow log reader). Worker X ends its last connection
        # and exits; the parent, writing X's line, blocks; meanwhile worker B ends its last
        # connection, sends its line and exits. B's line is already in B's channel: the
        # parent must read it even if it reaps X and B together.
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=2, grace=20)
        workers = worker_pids(d)
        by_worker = {}
        for _ in range(8):
            s = open_echo(d)
            self.addCleanup(s.close)
            by_worker.setdefault(holder(workers, server_inode(d, s.getsockname()[1])), s)
            if len(by_worker) == 2:
                break
        self.assertEqual(sorted(by_worker), workers, "connections did not spread over both workers")
        x, b = workers

        def end(w):
            by_worker[w].shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(by_worker[w]), b"")
            harness.wait_until(lambda: exited(w), 5, what=f"worker {w} to exit")

        d.signal(signal.SIGTERM)
        d.wait_lines(lambda l: "stopping" in l)  # both drain, each keeps its connection
        d.pause_log()
        try:
            os.kill(d.pid, signal.SIGSTOP)  # X's record and its exit arrive together
            try:
                harness.wait_until(lambda: state(d.pid) == "T", 5, what="the parent to stop")
                end(x)
            finally:
                os.kill(d.pid, signal.SIGCONT)
            wait_blocked_on_log(d.pid)  # the parent is writing X's line
            end(b)
        finally:
            d.resume_log()
        self.assertEqual(d.proc.wait(10), 0)  # it exits by itself once both are gone
        d.stop()  # collects the rest of the log
        for w in (x, b):
            port = by_worker[w].getsockname()[1]
            self.assertTrue([l for l in d.lines() if f"client=127.0.0.1:{port} " in l],
                            f"no log line for the connection from port {port} (worker {w})")

    def refused(self, d):
        try:
            with connect(d.port, timeout=1):
                return False
        except ConnectionRefusedError:
            return True


if __name__ == "__main__":
    harness.main()
