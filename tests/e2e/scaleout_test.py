#!/usr/bin/env python3
"""scaleout_test.py: two sniproxyd instances behind a real HAProxy (TCP mode, send-proxy-v2,
health checks), as docs/DEPLOYMENT.md "Scaling out" configures it.

Real TLS clients through HAProxy reach the right backends and the backends' PROXY headers
carry the clients' own addresses; one instance is stopped with SIGTERM under a client loop
and each is rolled over with SIGHUP under a client loop, with no failed connection.
"""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import ClientLoop, DaemonTestCase, echo_handler  # noqa: E402
from edge_test import tls_after_proxy  # noqa: E402

INSTANCES = ("127.0.0.11", "127.0.0.12")


def haproxy_config(port, servers):
    """The front configuration of docs/DEPLOYMENT.md, on loopback addresses."""
    lines = "\n".join(
        f"    server sni{i} {host}:{p} send-proxy-v2 check check-send-proxy inter 200ms "
        f"fall 1 rise 2 source 127.0.0.1" for i, (host, p) in enumerate(servers, 1))
    return textwrap.dedent(f"""\
        global
            maxconn 2000
        defaults
            mode tcp
            timeout connect 2s
            timeout client 30s
            timeout server 30s
            retries 3
            option redispatch 1
        frontend tls
            bind 127.0.0.1:{port}
            default_backend sniproxyd
        backend sniproxyd
            balance roundrobin
        """) + lines + "\n"


def tls_through(port, sni, source):
    """A real TLS client from `source`: (the server's certificate, the response, our port)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    with s:
        local_port = s.getsockname()[1]
        der, body = harness.tls_get(s, sni)
    return der, body, local_port


class ScaleOutTest(DaemonTestCase):
    def setUp(self):
        super().setUp()
        if not harness.have("haproxy"):
            self.skipTest("skipped: haproxy not installed (Debian package haproxy)")
        self.site = self.hosts.raw("example.com", tls_after_proxy("example.com"))
        self.hosts.flag("example.com", "send-proxy-v2")
        self.other = self.hosts.raw("other.example", tls_after_proxy("other.example"))
        self.hosts.flag("other.example", "send-proxy-v2")
        self.hosts.raw("loop.example", echo_handler)
        self.daemons = [self.start_daemon(host=h, extra_args=["-o", "proxy-from=127.0.0.1/32"])
                        for h in INSTANCES]
        self.port = harness.free_port()
        cfg = os.path.join(harness.scratch_dir("ha"), "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(self.port, [(d.host, d.port) for d in self.daemons]))
        self.haproxy_log = cfg + ".log"
        with open(self.haproxy_log, "wb") as log:
            self.haproxy = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        harness._children.append(self.haproxy)
        self.addCleanup(self.stop_haproxy)
        harness.wait_until(lambda: self.haproxy.poll() is not None or self.listening(), 10,
                           what="haproxy to listen")
        self.assertIsNone(self.haproxy.poll(), self.read_haproxy_log())
        # Both servers up (rise 2 at 200 ms): every instance takes connections.
        harness.wait_until(lambda: all(d.wait_lines(lambda l: "result=" in l, 2, 5) for d in
                                       self.daemons), 10, what="health checks")

    def listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def read_haproxy_log(self):
        with open(self.haproxy_log, errors="replace") as f:
            return f.read()

    def stop_haproxy(self):
        if self.haproxy.poll() is None:
            self.haproxy.terminate()  # by pid
            self.haproxy.wait(5)

    def test_clients_reach_the_right_backends_with_their_own_addresses(self):
        seen = set()
        for i in range(6):
            sni, backend = (("example.com", self.site), ("other.example", self.other))[i % 2]
            source = f"127.0.0.{21 + i}"
            der, body, port = tls_through(self.port, sni, source)
            self.assertTrue(body.endswith(sni.encode()), body)
            c = backend.wait_connections(i // 2 + 1)[i // 2]
            c.closed.wait(5)
            # Our header to the backend: the client's address as HAProxy saw it, and the
            # address the client connected to (HAProxy's front), not HAProxy's own.
            self.assertEqual(c.header, harness.proxy_v2((source, port), ("127.0.0.1", self.port),
                                                         authority=sni))
            tag = f"client={source}:{port} "
            found = harness.wait_until(lambda: [(d, l) for d in self.daemons for l in d.lines()
                                                if tag in l], 5, what=tag)
            self.assertEqual(len(found), 1, found)
            d, line = found[0]
            f = harness.parse_connection_line(line)
            self.assertEqual(f["result"], "ok")
            self.assertRegex(f["via"], r"^127\.0\.0\.1:\d+$")
            seen.add(d.host)
        self.assertEqual(seen, set(INSTANCES), "round robin should use both instances")

    def test_sigterm_of_one_instance_under_load_fails_no_connection(self):
        loop = ClientLoop(self.port, "loop.example").start()
        loop.wait_ok(20)
        stopped = self.daemons[0]
        self.assertEqual(stopped.stop(), 0)  # SIGTERM, drained, exit 0
        time.sleep(1)  # HAProxy keeps trying it until its check fails: refused, redispatched
        loop.wait_ok(50)  # served by the other one meanwhile
        ok, failures = loop.stop()
        self.assertEqual(failures, [], f"{ok} ok")
        sys.stderr.write(f"({ok} connections, none failed) ")
        survivor = self.daemons[1]
        self.assertGreater(len(survivor.wait_lines(lambda l: "sni=loop.example" in l, 50)), 0)

    def test_sighup_of_each_instance_under_load_fails_no_connection(self):
        loop = ClientLoop(self.port, "loop.example").start()
        loop.wait_ok(20)
        for d in self.daemons:
            d.signal(signal.SIGHUP)
            d.wait_lines(lambda l: "generation 2 ready" in l, d.workers, timeout=10)
            loop.wait_ok(30)
        ok, failures = loop.stop()
        self.assertEqual(failures, [], f"{ok} ok")


if __name__ == "__main__":
    harness.main()
