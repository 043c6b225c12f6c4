#!/usr/bin/env python3
"""edge_test.py: the network edge, end to end with real TLS peers.

Routing by ALPN (an ACME tls-alpn-01 responder beside the site), `_nosni`, `ja4=` in the log,
an ECH (GREASE) hello routed by its outer SNI, and the PROXY header a `proxy-from` balancer
puts first: its source becomes the client (log, backend's PROXY header), and every bad
header from a balancer is closed promptly with result=bad-proxy while a header from anyone
else is just bytes that are not TLS.
"""
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (DaemonTestCase, OpensslBackend, cert, client_hello, read_exactly,  # noqa: E402
                     read_to_eof, server_context, tls_fetch)

GET = b"GET / HTTP/1.0\r\n\r\n"
BALANCER = "127.0.0.2"  # the proxy-from address; plain clients come from 127.0.0.1
JA4 = re.compile(r"^t13[di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_local():
    return V2_SIG + b"\x20\x00\x00\x00"


def read_proxy_header(sock):
    """The PROXY header our daemon sent first (v1 line or v2 block), read exactly."""
    first = read_exactly(sock, 1)
    if first == b"P":
        line = first
        while not line.endswith(b"\r\n"):
            line += read_exactly(sock, 1)
        return line
    fixed = first + read_exactly(sock, 15)
    return fixed + read_exactly(sock, struct.unpack("!H", fixed[14:16])[0])


def tls_after_proxy(cert_name):
    """A backend handler: our PROXY header (kept as c.header), then a TLS server answering."""
    ctx = server_context(cert(cert_name))

    def handler(c):
        c.header = read_proxy_header(c.sock)
        with ctx.wrap_socket(c.sock, server_side=True) as t:
            t.recv(1024)
            t.sendall(b"HTTP/1.0 200 ok\r\n\r\n" + cert_name.encode())
            try:  # close_notify, then wait for the client's end: nothing left unread, no reset
                t.unwrap()
            except (OSError, ssl.SSLError):
                pass
    return handler


def via_balancer(port, header, sni="example.com", timeout=5):
    """From the balancer's address: `header`, then a real TLS exchange over the same socket;
    returns the response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(BALANCER, 0))
    with s:
        s.sendall(header)
        return harness.tls_get(s, sni)[1]


def s_client(port, args, stdin=GET):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof"] + args,
                       input=stdin, capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def line_with(d, text, timeout=5):
    return harness.parse_connection_line(d.wait_lines(lambda l: text in l and " result=" in l,
                                                      1, timeout)[-1])


class AlpnTest(DaemonTestCase):
    def test_acme_tls_alpn_reaches_the_responder_and_browsers_the_site(self):
        self.hosts.openssl("example.com", "example.com")
        acme = os.path.join(self.hosts.entry("example.com/alpn/acme-tls%2f1"), "tls-socket")
        self.hosts.backends.append(
            OpensslBackend(acme, cert("acme.responder"), ("-alpn", "acme-tls/1")))
        d = self.start_daemon()

        rc, out = s_client(d.port, ["-servername", "example.com", "-alpn", "acme-tls/1"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^subject=CN\s*=\s*acme\.responder$")
        self.assertIn("ALPN protocol: acme-tls/1", out)
        f = line_with(d, "alpn=acme-tls/1")
        self.assertEqual((f["route"], f["result"]), ("example.com", "ok"))
        self.assertRegex(f["ja4"], JA4)

        rc, out = s_client(d.port, ["-servername", "example.com", "-alpn", "h2,http/1.1"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^subject=CN\s*=\s*example\.com$")
        self.assertIn("HTTP/1.0 200 ok", out)
        lines = d.wait_lines(lambda l: "route=example.com" in l and "result=ok" in l, 2)
        site = harness.parse_connection_line([l for l in lines if "alpn=" not in l][0])
        self.assertRegex(site["ja4"], JA4)
        self.assertNotEqual(site["ja4"], f["ja4"])  # the ALPN is part of the fingerprint

    def test_no_sni_goes_to_nosni_else_default(self):
        self.hosts.openssl("_nosni", "nosni")
        self.hosts.openssl("_default", "default")
        d = self.start_daemon()
        der, _, port = tls_fetch(d.port, None)
        self.assertEqual(der, cert("nosni").der)
        f = d.connection_log(port)
        self.assertEqual((f["sni"], f["route"]), ("-", "_nosni"))
        self.assertTrue(f["ja4"].startswith("t13i"), f)  # 'i': no SNI
        der, _, _ = tls_fetch(d.port, "unknown.example")
        self.assertEqual(der, cert("default").der)  # an unknown name never goes to _nosni
        shutil.rmtree(os.path.dirname(self.hosts.socket_path("_nosni")))
        der, _, _ = tls_fetch(d.port, None)
        self.assertEqual(der, cert("default").der)

    def test_ech_grease_hello_routes_by_outer_sni(self):
        with open(os.path.join(harness.TESTDATA, "chromium-156.bin"), "rb") as f:
            hello = f.read()
        self.assertIn(b"\xfe\x0d", hello)  # the encrypted_client_hello extension type
        b = self.hosts.raw(harness.CAPTURE_SNI)
        d = self.start_daemon()
        with harness.connect(d.port) as s:
            port = s.getsockname()[1]
            s.sendall(hello)
            s.shutdown(socket.SHUT_WR)
            read_to_eof(s)
        c = b.wait_connections(1)[0]
        c.eof.wait(5)
        self.assertEqual(bytes(c.data), hello)
        f = d.connection_log(port)
        self.assertEqual(f["route"], harness.CAPTURE_SNI)
        self.assertEqual(f["ja4"], "t13d1517h2_8daaf6152771_cb7bf5808d99")  # as in ja4_test.cc


class ProxyAcceptTest(DaemonTestCase):
    def start(self, **kw):
        return self.start_daemon(extra_args=["-o", f"proxy-from={BALANCER}/32"], **kw)

    def assertProxied(self, d, backend, n, header, source, destination):
        """Through the balancer with `header`: the n-th connection of `backend` gets our v2
        header with the header's `source` and `destination`, and the log names the source."""
        body = via_balancer(d.port, header)
        self.assertTrue(body.endswith(b"example.com"), body)
        c = backend.wait_connections(n)[n - 1]
        c.closed.wait(5)
        self.assertEqual(c.header, harness.proxy_v2(source, destination, authority="example.com"))
        host = f"[{source[0]}]" if ":" in source[0] else source[0]
        f = line_with(d, f"client={host}:{source[1]} ")
        self.assertEqual(f["result"], "ok")
        self.assertRegex(f["via"], r"^127\.0\.0\.2:\d+$")
        self.assertRegex(f["ja4"], JA4)

    def test_v1_and_v2_sources_become_the_client(self):
        b = self.hosts.raw("example.com", tls_after_proxy("example.com"))
        self.hosts.flag("example.com", "send-proxy-v2")
        d = self.start()
        self.assertProxied(d, b, 1, b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n",
                           ("203.0.113.7", 40000), ("198.51.100.1", 443))
        v2 = harness.proxy_v2(("2001:db8::7", 50000), ("2001:db8::1", 443))
        v2 = v2[:15] + bytes([v2[15] + 7]) + v2[16:] + b"\xea\x00\x04vpce"  # an AWS-like TLV
        self.assertProxied(d, b, 2, v2, ("2001:db8::7", 50000), ("2001:db8::1", 443))

    def test_v2_local_uses_the_balancers_address(self):
        b = self.hosts.raw("example.com", tls_after_proxy("example.com"))
        self.hosts.flag("example.com", "send-proxy-v1")
        d = self.start()
        body = via_balancer(d.port, v2_local())
        self.assertTrue(body.endswith(b"example.com"), body)
        c = b.wait_connections(1)[0]
        c.closed.wait(5)
        self.assertRegex(c.header, rb"^PROXY TCP4 127\.0\.0\.2 127\.0\.0\.1 \d+ %d\r\n$" % d.port)
        f = line_with(d, "client=127.0.0.2:")
        self.assertEqual(f["result"], "ok")
        self.assertNotIn("via", f)

    def test_the_header_is_never_forwarded_however_it_arrives(self):
        b = self.hosts.raw("example.com")
        d = self.start()
        header = b"PROXY TCP6 2001:db8::9 2001:db8::1 4242 443\r\n"
        hello = client_hello("example.com")
        for dribble in (False, True):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                         source_address=(BALANCER, 0))
            with s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if dribble:  # one byte a write: the decoder is incremental
                    for i in range(len(header)):
                        s.sendall(header[i:i + 1])
                        time.sleep(0.002)
                    s.sendall(hello)
                else:  # header and hello in one segment
                    s.sendall(header + hello)
                s.shutdown(socket.SHUT_WR)
                read_to_eof(s)
            c = b.wait_connections(1 + dribble)[dribble]
            c.eof.wait(5)
            self.assertEqual(bytes(c.data), hello)  # exactly the hello, no header byte
        self.assertEqual(len(d.wait_lines(lambda l: "client=[2001:db8::9]:4242 " in l
                                          and "result=ok" in l, 2)), 2)

    def test_json_log_has_the_same_fields(self):
        b = self.hosts.raw("example.com", tls_after_proxy("example.com"))
        self.hosts.flag("example.com", "send-proxy-v1")
        d = self.start_daemon(extra_args=["-o", f"proxy-from={BALANCER}/32", "-o", "log-format=json"])
        via_balancer(d.port, b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n")
        b.wait_connections(1)
        line = d.wait_lines(lambda l: '"client":"203.0.113.7:40000"' in l)[0]
        f = json.loads(line.split(": ", 1)[1])
        self.assertEqual((f["result"], f["route"]), ("ok", "example.com"))
        self.assertRegex(f["via"], r"^127\.0\.0\.2:\d+$")
        self.assertRegex(f["ja4"], JA4)

    def test_bad_headers_from_the_balancer_are_closed_promptly(self):
        b = self.hosts.raw("example.com")
        d = self.start(hello_timeout=2)
        hello = client_hello("example.com")
        good_v2 = harness.proxy_v2(("203.0.113.7", 1), ("198.51.100.1", 443))
        bad_sig = bytearray(good_v2)
        bad_sig[6] = 0x0B
        cases = [
            ("truncated", b"PROXY TCP4 203.0.113.7 198.51", True),
            ("oversized", b"PROXY UNKNOWN " + b"x" * 100, False),
            ("oversized", good_v2[:14] + b"\x08\x00" + bytes(2048), False),
            ("bad-signature", bytes(bad_sig) + hello, False),
            ("bad-length", good_v2[:14] + b"\x00\x04" + bytes(4) + hello, False),
            ("bad-family", good_v2[:13] + b"\x41" + good_v2[14:] + hello, False),
            ("bad-address", b"PROXY TCP4 203.0.113.256 198.51.100.1 1 443\r\n" + hello, False),
            ("bad-signature", hello, False),  # a balancer must send the header
        ]
        for reason, data, shut in cases:
            with self.subTest(reason=reason, data=data[:20]):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                             source_address=(BALANCER, 0))
                with s:
                    port = s.getsockname()[1]
                    start = time.monotonic()
                    try:
                        s.sendall(data)
                        if shut:
                            s.shutdown(socket.SHUT_WR)
                        self.assertEqual(read_to_eof(s, timeout=1.5), b"")  # no answer at all
                    except ConnectionResetError:
                        pass  # closed with our bytes unread: also prompt, also nothing sent
                    self.assertLess(time.monotonic() - start, 1.5)
                f = line_with(d, f"client=127.0.0.2:{port} ")
                self.assertEqual((f["result"], f["reason"]), ("bad-proxy", reason))
                self.assertNotIn("via", f)

        # Slow: the header does not arrive within -T (counted from accept): a timeout.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5, source_address=(BALANCER, 0))
        with s:
            port = s.getsockname()[1]
            start = time.monotonic()
            s.sendall(b"PROXY TCP4 ")
            self.assertEqual(read_to_eof(s, timeout=4), b"")
            self.assertGreater(time.monotonic() - start, 1.5)
        f = line_with(d, f"client=127.0.0.2:{port} ")
        self.assertEqual((f["result"], f["reason"]), ("timeout", "proxy-header"))
        self.assertNoConnections(b)

    def test_a_header_from_anyone_else_is_not_tls(self):
        b = self.hosts.raw("example.com")
        d = self.start()
        with harness.connect(d.port) as s:  # from 127.0.0.1, not a balancer
            port = s.getsockname()[1]
            s.sendall(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n" + client_hello("example.com"))
            self.assertEqual(read_to_eof(s, timeout=2), b"")
        f = d.connection_log(port)
        self.assertEqual((f["result"], f["reason"]), ("bad-hello", "not-tls"))
        self.assertNotIn("via", f)
        self.assertNoConnections(b)

    def test_deny_applies_to_the_headers_source(self):
        b = self.hosts.raw("example.com", tls_after_proxy("example.com"))
        self.hosts.flag("example.com", "send-proxy-v1")
        d = self.start_daemon(extra_args=["-o", f"proxy-from={BALANCER}/32",
                                          "-o", "deny=203.0.113.0/24"])
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5, source_address=(BALANCER, 0))
        with s:
            s.sendall(b"PROXY TCP4 203.0.113.9 198.51.100.1 1 443\r\n" + client_hello("example.com"))
            self.assertEqual(read_to_eof(s, timeout=2), b"")
        f = line_with(d, "client=203.0.113.9:1 ")
        self.assertEqual(f["result"], "denied")
        self.assertNoConnections(b)
        # Another source through the same balancer is served.
        body = via_balancer(d.port, b"PROXY TCP4 198.51.100.9 198.51.100.1 2 443\r\n")
        self.assertTrue(body.endswith(b"example.com"), body)


class ForwarderTest(DaemonTestCase):
    def test_socat_forwards_a_unix_socket_to_a_backend_on_another_machine(self):
        if not harness.have("socat"):
            self.skipTest("skipped: socat not installed")
        c = cert("remote.example")
        port = harness.free_port()
        remote = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", c.certfile,
             "-key", c.keyfile, "-www", "-quiet"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness._children.append(remote)
        self.addCleanup(remote.kill)
        sock = self.hosts.socket_path("remote.example")
        fwd = subprocess.Popen(["socat", f"UNIX-LISTEN:{sock},fork,mode=777",
                                f"TCP:127.0.0.1:{port}"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        harness._children.append(fwd)
        self.addCleanup(fwd.kill)
        harness.wait_until(lambda: harness._unix_listening(sock), 10, what="socat")
        harness.wait_until(lambda: subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"], input=b"",
            capture_output=True, timeout=10).returncode == 0, 10, what="remote s_server")
        d = self.start_daemon()
        der, body, _ = tls_fetch(d.port, "remote.example")
        self.assertEqual(der, c.der)
        self.assertIn(b"HTTP/1.0 200 ok", body)


if __name__ == "__main__":
    harness.main()
