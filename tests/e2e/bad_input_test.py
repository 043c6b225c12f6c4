#!/usr/bin/env python3
"""bad_input_test.py: what a client sending something wrong gets, and what it does not.

Non-TLS bytes are closed without an answer; malformed hellos get the alert DESIGN.md names;
invalid SNIs get unrecognized_name and never reach _default; a slow client is closed at -T
(counted from accept, not earlier), a silent one is accepted only after a second (the
listeners' TCP_DEFER_ACCEPT) and closed -T later; a backend that is down gets internal_error.
In every case the log line says why, up=0, and no backend sees a byte.
"""
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (DaemonTestCase, alert, client_hello, client_hello_message, connect,
                     extension, read_exactly, read_to_eof, record)

T = 2  # -T for this file


def sni_list_extension(*names):
    entries = b"".join(b"\x00" + struct.pack("!H", len(n)) + n for n in names)
    return extension(0, struct.pack("!H", len(entries)) + entries)


def hello_with_raw_extensions(exts):
    """A hello whose extension block is exactly `exts` (for malformed extensions)."""
    suites = b"\x13\x01"
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", len(suites)) + suites
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return record(22, b"\x01" + struct.pack("!I", len(body))[1:] + body)


class BadInputTest(DaemonTestCase):
    def setUp(self):
        super().setUp()
        # Backends that must never be contacted by anything in this file (unless a test
        # says otherwise): a bad input must not fall through to them.
        self.default = self.hosts.raw("_default")
        self.named = self.hosts.raw("example.com")

    def send_and_read(self, d, data, timeout=5):
        """Sends `data`; returns (everything received until EOF, the connection's log)."""
        with connect(d.port) as s:
            s.sendall(data)
            got = read_to_eof(s, timeout)
            return got, d.connection_log(s.getsockname()[1])

    def assertNoBackendContacted(self):
        self.assertNoConnections(self.default)
        self.assertNoConnections(self.named, settle=0)

    def test_not_tls_is_closed_without_an_answer(self):
        d = self.start_daemon(hello_timeout=T)
        sslv2 = bytes([0x80, 0x2E, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]) + bytes(21) + bytes(16)
        cases = [
            ("http", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "not-tls"),
            ("ssh", b"SSH-2.0-OpenSSH_9.2\r\n", "not-tls"),
            ("zeros", bytes(32), "not-tls"),
            ("sslv2 hello", sslv2, "sslv2-hello"),
            ("record version 2.0", b"\x16\x02\x00\x00\x05hello", "bad-record-version"),
        ]
        for what, data, reason in cases:
            with self.subTest(input=what):
                got, log = self.send_and_read(d, data)
                self.assertEqual(got, b"")
                self.assertEqual((log["result"], log["reason"], log["up"], log["down"]),
                                 ("bad-hello", reason, 0, 0))
                self.assertNotIn("alert", log)
        self.assertNoBackendContacted()

    def test_malformed_hellos_get_the_matching_alert(self):
        d = self.start_daemon(hello_timeout=T)
        good = client_hello_message("example.com")
        dup_ext = client_hello("example.com", extra_extensions=[extension(10, b"\x00\x02\x00\x17")])
        big = client_hello("example.com", padding=17000, records=2)
        first_of_two = client_hello("example.com", records=2)
        first_of_two = first_of_two[:5 + struct.unpack("!H", first_of_two[3:5])[0]]
        cases = [  # (what, bytes, alert, reason)
            ("oversized record header", b"\x16\x03\x01\x40\x01", 22, "record-too-large"),
            ("hello over 16 KiB", big, 22, "hello-too-large"),
            ("alert record first", b"\x15\x03\x03\x00\x02\x01\x00", 10, "not-handshake"),
            ("application data first", record(23, b"hello", b"\x03\x03"), 10, "not-handshake"),
            ("server hello", record(22, b"\x02\x00\x00\x02\x03\x03"), 10, "not-client-hello"),
            ("alert between hello records", first_of_two + record(21, b"\x01\x00"), 10, "interleaved-record"),
            ("empty record", b"\x16\x03\x01\x00\x00", 50, "empty-record"),
            ("truncated body", record(22, b"\x01\x00\x00\x06\x03\x03\x00\x00\x00\x00"), 50, "truncated-body"),
            ("bytes after the hello in its record", record(22, good + b"\x00\x00\x00\x00"), 50, "trailing-data"),
            ("bad extension lengths", hello_with_raw_extensions(b"\x00\x0a\x00\x09\x00"), 50, "bad-extensions"),
            ("duplicate extension", dup_ext, 47, "duplicate-extension"),
            ("two host_names", hello_with_raw_extensions(sni_list_extension(b"a.example", b"b.example")),
             47, "duplicate-server-name"),
            ("bad server_name", hello_with_raw_extensions(extension(0, b"\x00\x05\x00\x00\x03ab")),
             50, "bad-server-name"),
            ("empty ALPN", hello_with_raw_extensions(extension(16, b"\x00\x00")), 50, "bad-alpn"),
        ]
        for what, data, description, reason in cases:
            with self.subTest(input=what):
                got, log = self.send_and_read(d, data)
                self.assertEqual(got, alert(description))
                self.assertEqual((log["result"], log["reason"], log["alert"], log["up"], log["down"]),
                                 ("bad-hello", reason, description, 0, 0))
        self.assertNoBackendContacted()

    def test_invalid_sni_gets_112_and_never_reaches_default(self):
        d = self.start_daemon(hello_timeout=T)
        cases = [
            (b"bad_name.example", "bad-char"),
            (b"1.2.3.4", "ip-literal"),
            (b"127.1", "ip-literal"),
            (b"0x7f.example.0x1", "ip-literal"),
            (b"[::1]", "ip-literal"),
            (b"a..example.com", "empty-label"),
            (b".example.com", "empty-label"),
            (b"example.com..", "empty-label"),
            (b".", "empty"),
            (b"x" * 64 + b".example", "label-too-long"),
            (b".".join([b"a" * 63] * 4) + b".ab", "too-long"),  # 254 bytes
            (b"-bad.example", "bad-hyphen"),
            (b"exa mple.com", "bad-char"),
            (b"example.com\x00.evil", "bad-char"),
            ("bücher.example".encode(), "bad-char"),
            (b"../../etc/passwd", "empty-label"),
            (b"etc/passwd", "bad-char"),
        ]
        for sni, reason in cases:
            with self.subTest(sni=sni):
                got, log = self.send_and_read(d, client_hello(sni))
                self.assertEqual(got, alert(112))
                self.assertEqual((log["result"], log["reason"], log["alert"], log["up"]),
                                 ("bad-sni", reason, 112, 0))
        self.assertNoBackendContacted()

    def test_invalid_sni_is_logged_escaped_once(self):
        # The operator must be able to read what the client sent: a NUL shows as \x00 and
        # a UTF-8 name as its bytes, escaped once (not \x5cx00, an escaped escape).
        d = self.start_daemon(hello_timeout=T)
        for sni, shown in ((b"example.com\x00.evil", r"example.com\x00.evil"),
                           ("bücher.example".encode(), r"b\xc3\xbccher.example")):
            with self.subTest(sni=sni):
                got, log = self.send_and_read(d, client_hello(sni))
                self.assertEqual(got, alert(112))
                self.assertEqual(log["sni"], shown)

    def test_sni_cannot_inject_log_lines(self):
        d = self.start_daemon(hello_timeout=T)
        sni = b"evil\nsniproxyd[1]: client=6.6.6.6:1 sni=x route=y result=ok up=0 down=0 ms=0"
        got, log = self.send_and_read(d, client_hello(sni))
        self.assertEqual(got, alert(112))
        self.assertEqual(log["result"], "bad-sni")
        self.assertFalse([l for l in d.lines() if "client=6.6.6.6" in l and "bad-sni" not in l],
                         "an SNI forged a log line")

    def test_truncated_hello_then_silence_is_closed_at_the_timeout(self):
        d = self.start_daemon(hello_timeout=T)
        hello = client_hello("example.com")
        with connect(d.port) as s:
            start = time.monotonic()
            s.sendall(hello[:len(hello) // 2])
            self.assertStillOpen(s, start + T - 1)
            self.assertEqual(read_to_eof(s, timeout=start + T + 1.5 - time.monotonic()), b"")
            self.assertGreater(time.monotonic() - start, T - 0.3)
            log = d.connection_log(s.getsockname()[1])
        self.assertEqual((log["result"], log["up"], log["down"]), ("timeout", 0, 0))
        self.assertNotIn("alert", log)
        self.assertNoBackendContacted()

    def test_silent_client_is_kept_until_the_timeout(self):
        d = self.start_daemon(hello_timeout=T)
        with connect(d.port) as s:
            start = time.monotonic()
            # TCP_DEFER_ACCEPT: a silent client waits in the kernel for 1 s (one SYN-ACK
            # retransmission) before it is accepted, then -T more; never for -T itself.
            deferred = 1
            self.assertStillOpen(s, start + T - 0.5)
            self.assertEqual(
                read_to_eof(s, timeout=start + deferred + T + 1.5 - time.monotonic()), b"")
            self.assertGreater(time.monotonic() - start, deferred + T - 0.5,
                               "closed before the deferred period and -T were over")
            log = d.connection_log(s.getsockname()[1])
        self.assertEqual((log["result"], log["sni"], log["up"]), ("timeout", "-", 0))

    def test_slow_hello_is_not_given_more_time(self):
        d = self.start_daemon(hello_timeout=T)
        hello = client_hello("example.com")
        with connect(d.port) as s:
            start = time.monotonic()
            closed_at = None
            for i in range(len(hello)):  # one byte every 0.1 s: far too slow to finish in T
                try:
                    s.sendall(hello[i:i + 1])
                    s.settimeout(0.1)
                    if s.recv(100) == b"":
                        closed_at = time.monotonic()
                        break
                except socket.timeout:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed_at = time.monotonic()
                    break
                if time.monotonic() - start > T + 1.5:
                    break
            self.assertIsNotNone(closed_at, f"not closed within {T + 1.5} s")
            self.assertGreater(closed_at - start, T - 0.3)
            log = d.connection_log(s.getsockname()[1])
        self.assertEqual((log["result"], log["up"]), ("timeout", 0))
        self.assertNoBackendContacted()

    def test_client_eof_before_the_hello_is_complete(self):
        d = self.start_daemon(hello_timeout=T)
        with connect(d.port) as s:
            start = time.monotonic()
            s.sendall(client_hello("example.com")[:40])
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s, timeout=T), b"")
            self.assertLess(time.monotonic() - start, 1)
            log = d.connection_log(s.getsockname()[1])
        self.assertEqual((log["result"], log["up"]), ("client-closed", 0))
        self.assertNoBackendContacted()

    def test_backend_down_gets_alert_80_and_others_still_work(self):
        self.hosts.dead("down.example")
        self.hosts.entry("gone.example")
        os.symlink("../nowhere/tls-socket", self.hosts.socket_path("gone.example"))
        d = self.start_daemon(hello_timeout=T)
        cases = [("down.example", "backend-refused"), ("gone.example", "backend-missing")]
        for name, result in cases:
            with self.subTest(name=name):
                got, log = self.send_and_read(d, client_hello(name))
                self.assertEqual(got, alert(80))
                self.assertEqual((log["result"], log["route"], log["alert"], log["up"], log["down"]),
                                 (result, name, 80, 0, 0))
                self.assertIn("errno", log)
        self.assertNoBackendContacted()  # in particular, no fallback to _default
        hello = client_hello("example.com")
        with connect(d.port) as s:
            s.sendall(hello)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
        conn = self.named.wait_connections(1)[0]
        self.assertTrue(conn.closed.wait(5))
        self.assertEqual(bytes(conn.data), hello)

    def test_bad_input_does_not_disturb_an_open_connection(self):
        self.hosts.raw("other.example", harness.echo_handler)
        d = self.start_daemon(hello_timeout=T, workers=1)
        hello = client_hello("other.example")
        with connect(d.port) as good:
            good.sendall(hello)
            self.assertEqual(read_exactly(good, len(hello)), hello)
            for data in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x40\x01", client_hello("a_b.example"),
                         client_hello("example.com", extra_extensions=[extension(13, b"\x00\x02\x04\x03")])):
                with connect(d.port) as s:
                    s.sendall(data)
                    read_to_eof(s)
            good.sendall(b"ping")
            self.assertEqual(read_exactly(good, 4), b"ping")
        self.assertNoBackendContacted()

    def assertStillOpen(self, s, until):
        """Nothing arrives and the connection stays open until `until` (monotonic)."""
        s.settimeout(max(0.01, until - time.monotonic()))
        try:
            got = s.recv(100)
        except socket.timeout:
            return
        self.fail(f"connection ended early ({got!r}) {until - time.monotonic():.2f} s before it was due")


if __name__ == "__main__":
    harness.main()
