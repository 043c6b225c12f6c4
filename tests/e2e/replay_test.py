#!/usr/bin/env python3
"""replay_test.py: the backend receives exactly the client's bytes, from the first.

Real ClientHello captures (TESTDATA/*.bin, SNI capture.example.test) are sent whole and in
tiny writes to raw recording backends and compared byte for byte; so are hellos split over
several records with data after them, and the PROXY v1/v2 headers, whose expected bytes are
computed from the client socket's own addresses.
"""
import random
import socket
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import CAPTURE_SNI, DaemonTestCase, client_hello, connect, proxy_v1, proxy_v2, read_to_eof


def send_in_tiny_writes(sock, data, rng):
    # The first writes split the record header itself, the rest are 1..16 bytes.
    sizes = [1, 1, 3]
    while sum(sizes) < len(data):
        sizes.append(rng.randint(1, 16))
    pos = 0
    for n in sizes:
        if pos >= len(data):
            break
        sock.sendall(data[pos:pos + n])
        pos += n
        time.sleep(0.001)


class ReplayTest(DaemonTestCase):
    def exchange(self, d, data, tiny=False, rng=None, host="127.0.0.1"):
        """Sends `data`, half-closes, waits for the end; returns (client, local) addresses
        of the client socket and the connection's log line."""
        with connect(d.port, host=host) as s:
            client, local = s.getsockname()[:2], s.getpeername()[:2]
            if tiny:
                send_in_tiny_writes(s, data, rng)
            else:
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
        return client, local, d.connection_log(client[1])

    def replay_captures(self, backend_name, tiny):
        backend = self.hosts.raw(backend_name)
        d = self.start_daemon()
        rng = random.Random(1234)
        caps = harness.captures()
        self.assertGreater(len(caps), 0, "no captures in " + harness.TESTDATA)
        for i, (name, data) in enumerate(caps):
            with self.subTest(capture=name):
                _, _, log = self.exchange(d, data, tiny, rng)
                conn = backend.wait_connections(i + 1)[i]
                self.assertTrue(conn.closed.wait(5))
                self.assertEqual(bytes(conn.data), data)
                self.assertEqual((log["sni"], log["route"], log["result"], log["up"], log["down"]),
                                 (CAPTURE_SNI, backend_name, "ok", len(data), 0))

    def test_captures_whole_reach_named_backend_unchanged(self):
        self.replay_captures(CAPTURE_SNI, tiny=False)

    def test_captures_in_tiny_writes_reach_named_backend_unchanged(self):
        self.replay_captures(CAPTURE_SNI, tiny=True)

    def test_captures_reach_default_backend_unchanged(self):
        self.replay_captures("_default", tiny=False)

    def test_captures_in_tiny_writes_reach_default_backend_unchanged(self):
        self.replay_captures("_default", tiny=True)

    def test_multi_record_hello_and_following_bytes_unchanged(self):
        backend = self.hosts.raw("example.com")
        d = self.start_daemon()
        for i, records in enumerate((2, 5)):
            with self.subTest(records=records):
                data = client_hello("example.com", alpn=["h2"], records=records) \
                    + harness.record(20, b"\x01", b"\x03\x03") + harness.record(23, bytes(range(200)), b"\x03\x03")
                _, _, log = self.exchange(d, data)
                conn = backend.wait_connections(i + 1)[i]
                self.assertTrue(conn.closed.wait(5))
                self.assertEqual(bytes(conn.data), data)
                self.assertEqual(log["up"], len(data))

    def test_proxy_v1_header_then_unchanged_bytes(self):
        self.hosts.flag(CAPTURE_SNI, "send-proxy-v1")
        backend = self.hosts.raw(CAPTURE_SNI)
        d = self.start_daemon()
        data = harness.captures()[0][1]
        client, local, log = self.exchange(d, data)
        conn = backend.wait_connections(1)[0]
        self.assertTrue(conn.closed.wait(5))
        self.assertEqual(bytes(conn.data), proxy_v1(client, local) + data)
        self.assertEqual(log["up"], len(data))  # `up` counts the client's bytes only

    def test_proxy_v1_header_over_ipv6(self):
        try:
            harness.free_port("::1")
        except OSError:
            self.skipTest("skipped: no IPv6 loopback")
        self.hosts.flag("example.com", "send-proxy-v1")
        backend = self.hosts.raw("example.com")
        d = self.start_daemon(host="::1")
        data = client_hello("example.com")
        client, local, _ = self.exchange(d, data, host="::1")
        conn = backend.wait_connections(1)[0]
        self.assertTrue(conn.closed.wait(5))
        self.assertEqual(bytes(conn.data), proxy_v1(client, local) + data)
        self.assertTrue(bytes(conn.data).startswith(b"PROXY TCP6 ::1 ::1 "))

    def test_proxy_v2_header_with_alpn_and_authority(self):
        self.hosts.flag("example.com", "send-proxy-v2")
        self.hosts.flag("_default", "send-proxy-v2")
        named = self.hosts.raw("example.com")
        default = self.hosts.raw("_default")
        d = self.start_daemon()
        cases = [  # (hello, backend, authority, alpn)
            (client_hello("Example.COM.", alpn=["h2", "http/1.1"]), named, "example.com", "h2"),
            (client_hello("example.com", alpn=["acme-tls/1"]), named, "example.com", "acme-tls/1"),
            (client_hello("example.com"), named, "example.com", ""),
            (client_hello(None, alpn=["http/1.1"]), default, "", "http/1.1"),
        ]
        seen = {id(named): 0, id(default): 0}
        for hello, backend, authority, alpn in cases:
            with self.subTest(authority=authority, alpn=alpn):
                client, local, _ = self.exchange(d, hello)
                seen[id(backend)] += 1
                conn = backend.wait_connections(seen[id(backend)])[-1]
                self.assertTrue(conn.closed.wait(5))
                self.assertEqual(bytes(conn.data), proxy_v2(client, local, authority, alpn) + hello)


if __name__ == "__main__":
    harness.main()
