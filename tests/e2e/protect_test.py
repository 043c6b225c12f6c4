#!/usr/bin/env python3
"""protect_test.py: the "Protect" settings on the real daemon, with clients bound to several
127.0.0.x source addresses (and IPv6 addresses on lo when root).

Each limit: at the limit served, one over refused at once with the right result= in the log,
other sources unaffected, counts right after clients leave, after a worker is SIGKILLed and
across SIGHUP (where a good -f file applies to new connections and a broken one keeps the old
settings and names its line). allow/deny, HOST/allow (alert 49), idle-timeout. Slowloris:
2,000 silent connections from 50 addresses while a real TLS client connects every 100 ms:
each is served, connect-to-handshake p99 under 100 ms, no descriptor left behind.
"""
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import client_hello, read_exactly, scratch_dir, wait_until  # noqa: E402


def connect_from(source, port, host="127.0.0.1", timeout=5):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def begun_from(source, port, host="127.0.0.1", timeout=5):
    """A client that has sent the first byte of its hello. The listeners defer accept
    (TCP_DEFER_ACCEPT) until a client sends something: one that connects and stays silent
    is not accepted, counted or refused for about a second (one SYN-ACK retransmission),
    which would make each refusal here a second slower and race refused_at_once's wait."""
    s = connect_from(source, port, host, timeout)
    s.sendall(b"\x16")
    return s


def echo_from(source, d, name="example.com"):
    """A connection routed to the echo backend, proven by the echo of its hello."""
    s = connect_from(source, d.port, d.host)
    hello = client_hello(name)
    s.sendall(hello)
    assert read_exactly(s, len(hello)) == hello
    return s


def refused_at_once(s, timeout=2):
    """The daemon closed it without a byte."""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    finally:
        s.close()


def settle():
    time.sleep(0.15)  # the worker's reports reach the parent within 10 ms; a margin


class ProtectTest(harness.DaemonTestCase):
    def start(self, *settings, workers=1, **kw):
        self.hosts.raw("example.com", harness.echo_handler)
        args = []
        for s in settings:
            args += ["-o", s]
        return self.start_daemon(workers=workers, extra_args=args + list(kw.pop("extra", ())), **kw)

    def result_of(self, d, source, port):
        return d.wait_lines(lambda l: f"client={source}:{port} " in l, 1)[0]

    def assert_refused(self, d, source, result):
        s = begun_from(source, d.port, d.host)
        port = s.getsockname()[1]
        self.assertTrue(refused_at_once(s), "a byte from a refused connection")
        self.assertIn(f"result={result} ", self.result_of(d, source, port))

    def test_source_max(self):
        d = self.start("source-max=2")
        held = [echo_from("127.0.0.2", d) for _ in range(2)]
        settle()
        self.assert_refused(d, "127.0.0.2", "limit-source")
        other = echo_from("127.0.0.3", d)  # another source is unaffected
        for s in held:
            s.close()
        settle()
        held = [echo_from("127.0.0.2", d) for _ in range(2)]  # counts right after they left
        for s in held + [other]:
            s.close()

    def test_source_hellos_and_the_hello_phase(self):
        d = self.start("source-hellos=2", hello_timeout=10)
        silent = [begun_from("127.0.0.4", d.port) for _ in range(2)]
        settle()
        self.assert_refused(d, "127.0.0.4", "limit-hellos")
        echo_from("127.0.0.5", d).close()
        # One sends the rest of its hello: it leaves the hello phase, and one more may wait.
        hello = client_hello("example.com")
        silent[0].sendall(hello[1:])
        self.assertEqual(read_exactly(silent[0], len(hello)), hello)
        settle()
        silent.append(begun_from("127.0.0.4", d.port))
        settle()
        self.assert_refused(d, "127.0.0.4", "limit-hellos")
        for s in silent:
            s.close()

    def test_source_rate(self):
        d = self.start("source-rate=2/3")
        held = [begun_from("127.0.0.6", d.port) for _ in range(3)]  # the burst
        settle()  # accepted once their first byte is in
        self.assert_refused(d, "127.0.0.6", "limit-rate")
        held.append(begun_from("127.0.0.7", d.port))  # others have their own bucket
        time.sleep(0.6)  # one token back at 2 a second
        held.append(echo_from("127.0.0.6", d))
        for s in held:
            s.close()

    def test_source_prefix4(self):
        d = self.start("source-max=1", "source-prefix4=24")
        # Not 127.0.0.x: the harness's readiness probe from 127.0.0.1 may still be counted.
        one = echo_from("127.0.5.30", d)
        settle()
        self.assert_refused(d, "127.0.5.31", "limit-source")  # the same /24
        other = echo_from("127.0.6.30", d)
        one.close()
        other.close()

    def test_allow_and_deny(self):
        d = self.start("allow=127.0.0.0/24", "deny=127.0.0.66")
        self.assert_refused(d, "127.0.0.66", "denied")  # deny wins over allow
        self.assert_refused(d, "127.0.1.1", "denied")  # outside allow
        echo_from("127.0.0.65", d).close()

    def test_a_silent_denied_client_is_closed_within_about_a_second(self):
        # The listeners defer accept for 1 s (one SYN-ACK retransmission), not for -T: a
        # client that never sends a byte still reaches the deny list that soon.
        d = self.start("deny=127.0.0.66", hello_timeout=10)
        s = connect_from("127.0.0.66", d.port, d.host, timeout=10)
        port = s.getsockname()[1]
        start = time.monotonic()
        self.assertTrue(refused_at_once(s, timeout=10), "a byte from a refused connection")
        self.assertLess(time.monotonic() - start, 3, "a silent denied client waited in the kernel")
        self.assertIn("result=denied ", self.result_of(d, "127.0.0.66", port))

    def test_ipv6_sources_in_one_prefix_count_as_one(self):
        if not harness.is_root():
            self.skipTest("adding IPv6 addresses to lo needs root")
        addresses = ["fd00:5e:0:1::1", "fd00:5e:0:1::2", "fd00:5e:0:2::1"]
        for a in addresses:
            subprocess.run(["ip", "-6", "addr", "add", a + "/128", "dev", "lo", "nodad"],
                           check=True, capture_output=True)
            self.addCleanup(subprocess.run, ["ip", "-6", "addr", "del", a + "/128", "dev", "lo"],
                            capture_output=True)
        d = self.start("source-max=1", host="::1")
        one = echo_from(addresses[0], d)
        settle()
        s = begun_from(addresses[1], d.port, "::1")
        port = s.getsockname()[1]
        self.assertTrue(refused_at_once(s))
        self.assertIn("result=limit-source ", self.result_of(d, f"[{addresses[1]}]", port))
        other = echo_from(addresses[2], d)  # another /64
        one.close()
        other.close()

    def test_counts_after_a_worker_crash(self):
        d = self.start("source-max=2")
        d.expected_problems = [r"killed by signal 9", r"connections lost", r"died within 2 s"]
        held = [echo_from("127.0.0.8", d) for _ in range(2)]
        settle()
        self.assert_refused(d, "127.0.0.8", "limit-source")
        [worker] = harness.worker_pids(d)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: harness.worker_pids(d) and harness.worker_pids(d) != [worker], 10,
                   what="a new worker")
        d.wait_lines(lambda l: "generation 1 ready" in l, 2, timeout=10)
        for s in held:
            s.close()
        again = [echo_from("127.0.0.8", d) for _ in range(2)]  # the dead worker's were released
        for s in again:
            s.close()

    def test_sighup_reloads_the_file_and_keeps_counts(self):
        path = os.path.join(scratch_dir("f"), "sniproxyd.conf")
        with open(path, "w") as f:
            f.write("source-max=1\n")
        d = self.start(extra=["-f", path])
        first = echo_from("127.0.0.9", d)
        settle()
        self.assert_refused(d, "127.0.0.9", "limit-source")
        with open(path, "w") as f:
            f.write("# more\nsource-max=2\n")
        d.signal(signal.SIGHUP)
        d.wait_lines(lambda l: "settings re-read" in l)
        d.wait_lines(lambda l: "generation 2 ready" in l)
        second = echo_from("127.0.0.9", d)  # the new limit, for a new connection
        settle()
        self.assert_refused(d, "127.0.0.9", "limit-source")  # the old one still counts
        with open(path, "w") as f:
            f.write("source-max=3\n\nsource-max=x\n")
        d.signal(signal.SIGHUP)
        line = d.wait_lines(lambda l: "keeping the settings in use" in l)[0]
        self.assertIn(f"settings file {path} line 3: source-max", line)
        d.wait_lines(lambda l: "generation 3 ready" in l)
        self.assert_refused(d, "127.0.0.9", "limit-source")  # still 2
        first.close()
        second.close()

    def test_host_allow_with_alert_49(self):
        d = self.start()
        with open(os.path.join(self.hosts.entry("example.com"), "allow"), "w") as f:
            f.write("# office\n127.0.0.10 # one\n")
        echo_from("127.0.0.10", d).close()
        s = connect_from("127.0.0.11", d.port)
        port = s.getsockname()[1]
        s.sendall(client_hello("example.com"))
        self.assertEqual(harness.read_to_eof(s), harness.alert(49))
        s.close()
        self.assertIn("result=denied ", self.result_of(d, "127.0.0.11", port))
        with open(os.path.join(self.hosts.entry("example.com"), "allow"), "w") as f:
            f.write("# nobody\n")
        s = connect_from("127.0.0.10", d.port)
        s.sendall(client_hello("example.com"))
        self.assertEqual(harness.read_to_eof(s), harness.alert(49))
        s.close()

    def test_idle_timeout(self):
        d = self.start("idle-timeout=1")
        quiet = echo_from("127.0.0.12", d)
        port = quiet.getsockname()[1]
        busy = echo_from("127.0.0.13", d)
        start = time.monotonic()
        while time.monotonic() - start < 2.2:  # the busy one talks every 0.3 s
            busy.sendall(b"x")
            self.assertEqual(read_exactly(busy, 1), b"x")
            time.sleep(0.3)
        self.assertEqual(harness.read_to_eof(quiet, timeout=1), b"")
        quiet.close()
        self.assertIn("result=idle-timeout ", self.result_of(d, "127.0.0.12", port))
        busy.sendall(b"y")
        self.assertEqual(read_exactly(busy, 1), b"y")
        busy.close()


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class SlowlorisTest(harness.DaemonTestCase):
    def test_silent_flood_does_not_starve_real_clients(self):
        if not harness.have("openssl"):
            self.skipTest("needs openssl s_server")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 4096:
            self.skipTest("needs 4096 descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.hosts.openssl("example.com", "example.com")
        d = self.start_daemon(workers=2, hello_timeout=20, extra_args=["-c", "500"])
        d.expected_problems = []
        pids = [d.pid] + harness.worker_pids(d)
        before = {p: fd_count(p) for p in pids}

        silent = []
        stop = threading.Event()

        def flood():
            for i in range(2000):
                if stop.is_set():
                    return
                try:
                    # One byte: a client wholly silent is not even accepted (see begun_from).
                    s = begun_from(f"127.0.1.{1 + i % 50}", d.port, timeout=2)
                    silent.append(s)
                except OSError:
                    pass

        attacker = threading.Thread(target=flood, daemon=True)
        attacker.start()
        times, failures = [], []
        ctx = harness.client_context()
        for _ in range(40):  # a real client every 100 ms
            t0 = time.monotonic()
            try:
                with connect_from("127.0.0.20", d.port, timeout=5) as s:
                    with ctx.wrap_socket(s, server_hostname="example.com") as t:
                        times.append(time.monotonic() - t0)
            except (OSError, ssl.SSLError) as e:
                failures.append(repr(e))
            time.sleep(max(0, 0.1 - (time.monotonic() - t0)))
        attacker.join(30)
        stop.set()
        shed = sum("result=shed " in l for l in d.lines())
        times.sort()
        p99 = times[int(len(times) * 0.99) - 1] if times else None
        sys.stderr.write(f"slowloris: {len(silent)} silent connections, {shed} shed, "
                         f"{len(times)} real clients, p50 {times[len(times) // 2] * 1000:.1f} ms, "
                         f"p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms\n")
        self.assertEqual(failures, [])
        self.assertEqual(len(times), 40)
        self.assertLess(p99, 0.1)
        self.assertGreater(shed, 0, "2,000 silent connections of 1,000 and nothing shed?")
        for s in silent:
            s.close()
        # Everything closes: the descriptors are back to what they were.
        wait_until(lambda: all(fd_count(p) <= before[p] for p in pids), 10,
                   what="descriptors back to their count before the flood")


if __name__ == "__main__":
    unittest.main()
