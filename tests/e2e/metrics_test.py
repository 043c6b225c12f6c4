#!/usr/bin/env python3
"""metrics_test.py: -o metrics, scraped by a real Prometheus, and `sniproxyctl status`.

A Prometheus started here (Debian's `prometheus`; skipped with a message if it is missing)
on a free loopback port, with a generated config (scrape every second, its own temporary
TSDB), scrapes sniproxyd while traffic of known shape flows: good connections to two hosts,
bad hellos, no-route, a refused backend. Each series is then read back through Prometheus's
HTTP API (/api/v1/query) and the counters must equal what was sent, exactly; labels hold
only names of the hosts directory or "-". Counters survive SIGHUP and a SIGKILLed worker.
Hostile scrapers (a 1 MiB request line, 1,000 silent sockets, garbage) each get a prompt
close or an error status while a TLS client still gets through. The metrics server is a
jailed process of its own, restarted when it dies; a unix: endpoint replaces a stale socket
file, has mode 0660 and is removed at exit. `sniproxyctl status` shows the same counts.
"""
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (SNIPROXYCTL, client_hello, connect, echo_handler, free_port,  # noqa: E402
                     read_exactly, read_to_eof, scratch_dir, wait_until)

PROMETHEUS = shutil.which("prometheus")


def scrape(target, timeout=5, accept=None):
    """GET /metrics from "127.0.0.1:PORT"; the body as text."""
    req = urllib.request.Request(f"http://{target}/metrics")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def samples(text):
    """{(name, frozenset of label pairs): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Prometheus:
    """prometheus on 127.0.0.1:free port scraping `target` every second; stopped by pid."""

    def __init__(self, target):
        self.dir = scratch_dir("p")
        self.port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: sniproxyd\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file", config, "--storage.tsdb.path", os.path.join(self.dir, "tsdb"),
             "--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        harness._children.append(self.proc)
        wait_until(lambda: self._ready(), 30, 0.1, "prometheus to be ready")

    def _ready(self):
        if self.proc.poll() is not None:
            with open(self.log.name, errors="replace") as f:
                raise RuntimeError("prometheus exited:\n" + f.read())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr):
        """The instant vector of `expr`: {frozenset(labels without job/instance): value}."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        out = {}
        for item in answer["data"]["result"]:
            labels = {k: v for k, v in item["metric"].items() if k not in ("job", "instance", "__name__")}
            out[frozenset(labels.items())] = float(item["value"][1])
        return out

    def value(self, expr):
        """The single value of `expr`, or None if it has no sample (yet)."""
        v = self.query(expr)
        assert len(v) <= 1, (expr, v)
        return next(iter(v.values())) if v else None

    def wait_value(self, expr, expected, timeout=20):
        """Waits until Prometheus has scraped `expr` == expected (it scrapes every second)."""
        try:
            return wait_until(lambda: self.value(expr) == expected, timeout, 0.2, f"{expr} == {expected}")
        except TimeoutError:
            raise AssertionError(f"prometheus: {expr} is {self.value(expr)}, expected {expected}") from None

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def echo_exchange(d, name, payload_size=1000):
    """One good connection through the daemon to an echo backend; the bytes each way."""
    with connect(d.port) as s:
        hello = client_hello(name)
        payload = os.urandom(payload_size)
        s.sendall(hello + payload)
        assert read_exactly(s, len(hello) + payload_size) == hello + payload
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b""
        return len(hello) + payload_size, s.getsockname()[1]


def refused_exchange(d, data, expect_alert=None):
    """Sends `data`, reads to EOF (an alert or nothing); the client port."""
    with connect(d.port) as s:
        s.sendall(data)
        got = read_to_eof(s)
        if expect_alert is not None:
            assert got == harness.alert(expect_alert), got
        return s.getsockname()[1]


class MetricsBase(harness.DaemonTestCase):
    def start_metrics_daemon(self, endpoint=None, **kw):
        self.mport = free_port()
        endpoint = endpoint or f"127.0.0.1:{self.mport}"
        self.target = f"127.0.0.1:{self.mport}"
        extra = list(kw.pop("extra_args", ())) + ["-o", f"metrics={endpoint}"]
        return self.start_daemon(extra_args=extra, **kw)

    def start_prometheus(self):
        if not PROMETHEUS:
            self.skipTest("prometheus is not installed (apt-get install prometheus; .ci/run does)")
        p = Prometheus(self.target)
        self.addCleanup(p.close)
        return p

    def traffic(self, d, good_a=5, good_b=3, bad=2, no_route=4, refused=2):
        """Known traffic; returns the bytes each way per good host. Every connection's log
        line is awaited, so everything sent is counted when this returns."""
        ports, nbytes = [], {"a.example": 0, "b.example": 0}
        for name, n in (("a.example", good_a), ("b.example", good_b)):
            for _ in range(n):
                size, port = echo_exchange(d, name)
                nbytes[name] += size
                ports.append(port)
        for _ in range(bad):  # a handshake record that is not a ClientHello: decode_error
            ports.append(refused_exchange(d, b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", 10))
        for i in range(no_route):
            ports.append(refused_exchange(d, client_hello(f"nosuch{i}.example"), 112))
        for _ in range(refused):
            ports.append(refused_exchange(d, client_hello("dead.example"), 80))
        for p in ports:
            d.connection_log(p)
        return nbytes

    def setup_hosts(self):
        self.hosts.raw("a.example", echo_handler)
        self.hosts.raw("b.example", echo_handler)
        self.hosts.dead("dead.example")


class PrometheusTest(MetricsBase):
    def test_prometheus_sees_exactly_the_traffic_sent(self):
        self.setup_hosts()
        d = self.start_metrics_daemon()
        prom = self.start_prometheus()
        nbytes = self.traffic(d)
        q = 'sniproxyd_connections_total{route="%s",result="%s"}'
        prom.wait_value(q % ("a.example", "ok"), 5)
        prom.wait_value(q % ("b.example", "ok"), 3)
        prom.wait_value(q % ("-", "bad-hello"), 2)
        prom.wait_value(q % ("-", "no-route"), 4)
        prom.wait_value(q % ("dead.example", "backend-refused"), 2)
        # The harness's readiness probe connects once and closes without a byte.
        self.assertEqual(prom.value(q % ("-", "client-closed")), 1)
        self.assertEqual(prom.value("sum(sniproxyd_connections_total)"), 17)
        for name, n in nbytes.items():
            for direction in ("up", "down"):
                self.assertEqual(
                    prom.value(f'sniproxyd_bytes_total{{route="{name}",direction="{direction}"}}'), n)
        # Labels name hosts-directory entries or "-", never what a client sent.
        routes = {dict(k)["route"] for k in prom.query("sniproxyd_connections_total")}
        self.assertEqual(routes, {"a.example", "b.example", "dead.example", "-"})
        # Every hello that reached a route decision: good, no-route, refused (not the bad).
        self.assertEqual(prom.value("sniproxyd_hello_duration_seconds_count"), 14)
        self.assertEqual(prom.value('sniproxyd_hello_duration_seconds_bucket{le="+Inf"}'), 14)
        self.assertEqual(prom.value('sum(sniproxyd_rejected_total)'), 0)
        self.assertEqual(prom.value('sniproxyd_workers{generation="1",state="ready"}'), 2)
        self.assertEqual(prom.value('sum(sniproxyd_worker_connections_total)'), 17)
        self.assertEqual(prom.value('sniproxyd_connections_active{generation="1"}'), 0)
        self.assertGreater(prom.value('sniproxyd_open_fds{process="parent"}'), 5)
        self.assertLess(abs(prom.value("sniproxyd_start_time_seconds") - time.time()), 120)
        self.assertEqual(len(prom.query("sniproxyd_build_info")), 1)
        # An open connection is active, in its generation, until it ends.
        s = harness.open_echo(d, "a.example")
        prom.wait_value('sniproxyd_connections_active{generation="1"}', 1)
        s.close()
        prom.wait_value('sniproxyd_connections_active{generation="1"}', 0)
        self.status_shows(d)

    def status_shows(self, d):
        """sniproxyctl status, text and --json, against the running daemon."""
        p = subprocess.run([SNIPROXYCTL, "status", self.target], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout.decode()
        self.assertRegex(text, r"generation 1: 2 workers \(ready 2\), 0 connections open")
        self.assertIn("a.example: 6 (ok 6)", text)  # the 5 counted, and the one held open
        self.assertIn("b.example: 3 (ok 3)", text)
        self.assertIn("dead.example: 2 (backend-refused 2)", text)
        self.assertRegex(text, r"\n  -: 7 \(.*\)\n")
        for item in ("bad-hello 2", "no-route 4", "client-closed 1"):
            self.assertRegex(text, r"\n  -: 7 \([^)]*%s" % item)
        self.assertIn("hellos: 15", text)
        p = subprocess.run([SNIPROXYCTL, "status", "--json", self.target], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        routes = {r["route"]: r["connections"] for r in j["routes"]}
        self.assertEqual(routes, {"a.example": {"ok": 6}, "b.example": {"ok": 3},
                                  "dead.example": {"backend-refused": 2},
                                  "-": {"bad-hello": 2, "no-route": 4, "client-closed": 1}})
        self.assertEqual(j["generations"][0]["workers"], {"ready": 2, "starting": 0, "draining": 0})
        self.assertEqual(j["hello"]["count"], 15)
        self.assertGreater(j["parent_open_fds"], 5)

    def test_counters_survive_sighup_and_a_killed_worker(self):
        self.setup_hosts()
        d = self.start_metrics_daemon()
        prom = self.start_prometheus()
        q = 'sum(sniproxyd_connections_total{route="a.example",result="ok"})'
        self.traffic(d, good_a=6, good_b=0, bad=0, no_route=0, refused=0)
        prom.wait_value(q, 6)
        d.signal(signal.SIGHUP)
        d.wait_lines(lambda l: "generation 2 serving" in l, timeout=10)
        wait_until(lambda: len(harness.worker_pids(d)) == 2, 10, what="the old workers to exit")
        self.traffic(d, good_a=6, good_b=0, bad=0, no_route=0, refused=0)
        prom.wait_value(q, 12)
        prom.wait_value('sniproxyd_workers{generation="2",state="ready"}', 2)
        self.assertEqual(prom.query('sniproxyd_workers{generation="1"}'), {})
        # Both generation-2 workers have served (the least-loaded choice rotates); one dies.
        victims = harness.worker_pids(d)
        wait_until(lambda: prom.value(
            f'min(sniproxyd_worker_connections_total{{pid=~"{victims[0]}|{victims[1]}"}})') or 0,
            10, 0.2, "both workers to have counted connections")
        d.expected_problems += [r"worker %d .*killed by signal 9" % victims[0],
                                r"worker %d died within 2 s" % victims[0]]
        os.kill(victims[0], signal.SIGKILL)
        d.wait_lines(lambda l: f"worker {victims[0]} " in l and "killed by signal 9" in l, timeout=10)
        wait_until(lambda: len(harness.worker_pids(d)) == 2, 10, what="the worker to be replaced")
        self.assertEqual(prom.value(q), 12)  # not one lost, not one counted twice
        self.traffic(d, good_a=3, good_b=0, bad=0, no_route=0, refused=0)
        prom.wait_value(q, 15)
        prom.wait_value('sum(sniproxyd_workers{generation="2"})', 2)
        self.assertEqual(samples(scrape(self.target))[
            ("sniproxyd_connections_total", frozenset({("route", "a.example"), ("result", "ok")}))], 15)


class RefusalCounterTest(MetricsBase):
    def test_refusals_decided_in_the_parent_are_counted_by_reason(self):
        self.setup_hosts()
        d = self.start_metrics_daemon(extra_args=["-o", "deny=127.0.0.66/32",
                                                  "-o", "source-max=1"])
        # 127.0.0.1 holds its one slot (once the readiness probe's close has been reported)
        wait_until(lambda: self.try_hold(d), 10, 0.1, "a connection from 127.0.0.1 admitted")
        for _ in range(3):  # denied: closed before a byte is read
            with socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                          source_address=("127.0.0.66", 0)) as s:
                s.sendall(b"\x16")  # accepted at once (TCP_DEFER_ACCEPT: silent, after 1 s)
                self.assertClosedWithoutAnswer(s)
        # (an attempt to hold the slot may itself have been refused while the probe lingered)
        before = self.rejected("limit-source") or 0
        for _ in range(2):  # over source-max from 127.0.0.1
            with connect(d.port) as s:
                s.sendall(b"\x16")
                self.assertClosedWithoutAnswer(s)
        wait_until(lambda: self.rejected("denied") == 3
                   and self.rejected("limit-source") == before + 2,
                   10, 0.1, "the refusal counters")
        self.assertIn(self.rejected("limit-rate"), (None, 0))

    def assertClosedWithoutAnswer(self, s):
        try:  # the byte it sent was never read: the close may come as a reset
            self.assertEqual(read_to_eof(s, 5), b"")
        except ConnectionResetError:
            pass

    def try_hold(self, d):
        s = connect(d.port)
        hello = client_hello("a.example")
        s.sendall(hello)
        try:
            if read_exactly(s, len(hello), 5) == hello:
                self.addCleanup(s.close)
                return True
        except (EOFError, OSError):
            pass
        s.close()
        return False

    def rejected(self, reason):
        return samples(scrape(self.target)).get(
            ("sniproxyd_rejected_total", frozenset({("reason", reason)})))


class HostileScraperTest(MetricsBase):
    def test_hostile_scrapers_cost_nothing_else(self):
        self.hosts.openssl("tls.example", "tls.example")
        d = self.start_metrics_daemon()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
        host, port = "127.0.0.1", self.mport

        def status_or_close(s, timeout):
            """The HTTP status of the answer, or None when closed without one."""
            data = read_to_eof(s, timeout)
            m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
            return int(m.group(1)) if m else None

        # 1,000 silent scrapers: over the cap they are closed at once, the rest get 408.
        silent = []
        try:
            for _ in range(1000):
                silent.append(socket.create_connection((host, port), timeout=5))
            t0 = time.monotonic()
            # The daemon still routes meanwhile: a real TLS client gets through.
            _, body, _ = harness.tls_fetch(d.port, "tls.example")
            self.assertIn(b"HTTP/1.0 200", body)
            answers = [status_or_close(s, 10) for s in silent]
            self.assertLess(time.monotonic() - t0, 9)  # the 5 s request deadline, plus slack
            self.assertTrue(all(a in (None, 408) for a in answers), set(answers))
            self.assertGreater(answers.count(408), 0)
        finally:
            for s in silent:
                s.close()
        # A 1 MiB request line: an error status (or a close), promptly, and no crash.
        with socket.create_connection((host, port), timeout=5) as s:
            try:
                s.sendall(b"GET /" + b"a" * (1 << 20))
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                self.assertIn(status_or_close(s, 5), (414, None))
            except ConnectionResetError:
                pass
        # Garbage bytes: 400.
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(bytes(range(256)) * 4 + b"\r\n\r\n")
            self.assertEqual(status_or_close(s, 5), 400)
        # And after all that, scrapes and routing work as before.
        _, body, _ = harness.tls_fetch(d.port, "tls.example")
        self.assertIn(b"HTTP/1.0 200", body)
        text = wait_until(lambda: self._try_scrape(), 10, 0.1, "a scrape to succeed")
        self.assertIn('route="tls.example",result="ok"', text)
        self.assertEqual(d.problems(), [])

    def _try_scrape(self):
        try:
            return scrape(self.target, timeout=2)
        except OSError:
            return None


class MetricsProcessTest(MetricsBase):
    def metrics_pid(self, d):
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if not f.read().startswith(b"sniproxyd: metrics"):
                        continue
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == d.pid:
                        return int(entry)
            except (OSError, ValueError, IndexError):
                pass
        return None

    def test_unix_endpoint_jailed_server_restarted(self):
        self.hosts.raw("a.example", echo_handler)
        path = os.path.join(scratch_dir("m"), "metrics.sock")
        with socket.socket(socket.AF_UNIX) as stale:  # a socket file left by an earlier run
            stale.bind(path)
        d = self.start_metrics_daemon(endpoint=f"unix:{path}")
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o660)
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        echo_exchange(d, "a.example")
        wait_until(lambda: self._status_count(path) == 1, 5, what="status to show the connection")
        pid = self.metrics_pid(d)
        self.assertIsNotNone(pid)
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        self.assertRegex(status, r"\nSeccomp:\s+2\n")
        self.assertRegex(status, r"\nNoNewPrivs:\s+1\n")
        if harness.is_root():  # jailed like a worker: its user, chroot into the hosts dir
            self.assertRegex(status, r"\nUid:\s+%d\s" % pwd.getpwnam(harness.WORKER_USER).pw_uid)
            self.assertRegex(status, r"\nCapEff:\s+0+\n")
            self.assertEqual(os.readlink(f"/proc/{pid}/root"), os.path.realpath(self.hosts.root))
        # It holds the listener, the channel and nothing more (once the status scrape's
        # connection is closed); the region is mapped and its descriptor closed before the
        # jail, in the workers as in the server.
        wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= 8, 5, 0.05,
                   "the metrics server to hold only its listener and channel")
        for p in [pid] + harness.worker_pids(d):
            fds = [os.readlink(f"/proc/{p}/fd/{n}") for n in os.listdir(f"/proc/{p}/fd")]
            self.assertFalse([f for f in fds if "memfd:" in f], (p, fds))
            with open(f"/proc/{p}/maps") as f:
                self.assertIn("memfd:sniproxyd-metrics", f.read())
        # Killed, it is replaced and the counts are still there.
        d.expected_problems.append(r"metrics server %d killed by signal 9" % pid)
        os.kill(pid, signal.SIGKILL)
        d.wait_lines(lambda l: f"metrics server {pid} killed by signal 9" in l, timeout=5)
        wait_until(lambda: (self.metrics_pid(d) or pid) != pid, 5, what="a new metrics server")
        wait_until(lambda: self._status_count(path) == 1, 5, what="status from the new server")
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.exists(path), "the socket file outlived the daemon")
        self.assertIsNone(self.metrics_pid(d))

    def _status_count(self, path):
        p = subprocess.run([SNIPROXYCTL, "status", "--json", f"unix:{path}"], capture_output=True, timeout=10)
        if p.returncode != 0:
            return None
        routes = {r["route"]: r["connections"] for r in json.loads(p.stdout)["routes"]}
        return routes.get("a.example", {}).get("ok")


if __name__ == "__main__":
    harness.main()
