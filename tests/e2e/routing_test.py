#!/usr/bin/env python3
"""routing_test.py: which backend a client reaches, end to end with real TLS peers.

Backends are `openssl s_server -www`, each with its own certificate, so the certificate a
client receives says which backend answered. Covers the three real clients (openssl
s_client, curl, gnutls-cli), SNI canonicalisation, wildcards, _default, the no-route alert,
symlinked aliases, hosts changed while running and hashed directories for long names.
"""
import os
import re
import ssl
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, cert, connect, client_hello, read_to_eof, tls_fetch

GET = b"GET / HTTP/1.0\r\n\r\n"


class RoutingTest(DaemonTestCase):
    def standard_hosts(self):
        """example.com, other.example and _default, each with a certificate of its name."""
        self.hosts.openssl("example.com", "example.com")
        self.hosts.openssl("other.example", "other.example")
        self.hosts.openssl("_default", "default")

    def assertServedBy(self, port, sni, cert_name):
        der, body, client_port = tls_fetch(port, sni)
        self.assertEqual(der, cert(cert_name).der,
                         f"SNI {sni!r}: expected the backend with the {cert_name} certificate")
        self.assertIn(b"HTTP/1.0 200 ok", body)
        return client_port

    def run_tool(self, args, stdin=b""):
        r = subprocess.run(args, input=stdin, capture_output=True, timeout=20)
        return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    # --- real clients ---------------------------------------------------------------

    def test_openssl_s_client_reaches_both_names(self):
        self.standard_hosts()
        d = self.start_daemon()
        for name in ("example.com", "other.example"):
            rc, out = self.run_tool(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}",
                                     "-servername", name, "-ign_eof"], GET)
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"(?m)^subject=CN\s*=\s*" + re.escape(name) + r"$")
            self.assertIn("HTTP/1.0 200 ok", out)

    def test_curl_reaches_both_names(self):
        if not harness.have("curl"):
            self.skipTest("skipped: curl not installed")
        self.standard_hosts()
        d = self.start_daemon()
        for name in ("example.com", "other.example"):
            rc, out = self.run_tool(["curl", "-sS", "-k", "-v", "--max-time", "10",
                                     "--resolve", f"{name}:{d.port}:127.0.0.1",
                                     f"https://{name}:{d.port}/"])
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"(?m)subject: CN=" + re.escape(name) + r"$")
            self.assertIn("s_server -unix", out)  # the -www status page came through

    def test_gnutls_cli_reaches_both_names(self):
        if not harness.have("gnutls-cli"):
            self.skipTest("skipped: gnutls-cli not installed")
        self.standard_hosts()
        d = self.start_daemon()
        for name in ("example.com", "other.example"):
            rc, out = self.run_tool(["gnutls-cli", "--insecure", "-p", str(d.port),
                                     "--sni-hostname", name, "127.0.0.1"], GET)
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"subject `CN=" + re.escape(name) + "'")
            self.assertIn("HTTP/1.0 200 ok", out)

    def test_log_line_of_a_routed_connection(self):
        self.standard_hosts()
        d = self.start_daemon()
        port = self.assertServedBy(d.port, "other.example", "other.example")
        log = d.connection_log(port)
        self.assertEqual((log["sni"], log["route"], log["result"]), ("other.example", "other.example", "ok"))
        self.assertGreater(log["up"], 0)
        self.assertGreater(log["down"], 0)

    # --- name canonicalisation, wildcard, _default ---------------------------------

    def test_uppercase_and_trailing_dot_route_to_lowercase_entry(self):
        self.standard_hosts()
        d = self.start_daemon()
        for sni in ("EXAMPLE.COM", "Example.Com.", "example.com."):
            with self.subTest(sni=sni):
                port = self.assertServedBy(d.port, sni, "example.com")
                log = d.connection_log(port)
                self.assertEqual((log["sni"], log["route"]), ("example.com", "example.com"))
        # a real client sending the uppercase name
        rc, out = self.run_tool(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}",
                                 "-servername", "OTHER.EXAMPLE", "-ign_eof"], GET)
        self.assertRegex(out, r"(?m)^subject=CN\s*=\s*other\.example$")

    def test_wildcard_matches_exactly_one_more_label(self):
        self.standard_hosts()
        self.hosts.openssl("*.apps.example.com", "apps.example.com")
        d = self.start_daemon()
        port = self.assertServedBy(d.port, "a.apps.example.com", "apps.example.com")
        self.assertEqual(d.connection_log(port)["route"], "*.apps.example.com")
        self.assertServedBy(d.port, "X-1.Apps.Example.Com", "apps.example.com")
        for sni in ("a.b.apps.example.com", "apps.example.com"):
            with self.subTest(sni=sni):
                port = self.assertServedBy(d.port, sni, "default")
                self.assertEqual(d.connection_log(port)["route"], "_default")

    def test_exact_name_wins_over_wildcard(self):
        self.standard_hosts()
        self.hosts.openssl("*.example.com", "apps.example.com")
        self.hosts.openssl("www.example.com", "other.example")
        d = self.start_daemon()
        self.assertServedBy(d.port, "www.example.com", "other.example")
        self.assertServedBy(d.port, "mail.example.com", "apps.example.com")

    def test_no_sni_goes_to_default(self):
        self.standard_hosts()
        d = self.start_daemon()
        port = self.assertServedBy(d.port, None, "default")
        log = d.connection_log(port)
        self.assertEqual((log["sni"], log["route"], log["result"]), ("-", "_default", "ok"))
        rc, out = self.run_tool(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}",
                                 "-noservername", "-ign_eof"], GET)
        self.assertRegex(out, r"(?m)^subject=CN\s*=\s*default$")

    def test_unknown_sni_goes_to_default(self):
        self.standard_hosts()
        d = self.start_daemon()
        port = self.assertServedBy(d.port, "unknown.example.net", "default")
        log = d.connection_log(port)
        self.assertEqual((log["sni"], log["route"]), ("unknown.example.net", "_default"))

    def test_without_default_unknown_names_get_alert_112(self):
        self.hosts.openssl("example.com", "example.com")
        d = self.start_daemon()
        hellos = [("unknown", client_hello("unknown.example.net")),
                  ("no sni", client_hello(None)),
                  ("capture", harness.captures()[0][1])]
        for what, hello in hellos:
            with self.subTest(hello=what):
                with connect(d.port) as s:
                    s.sendall(hello)
                    self.assertEqual(read_to_eof(s), harness.alert(112))
                    log = d.connection_log(s.getsockname()[1])
                self.assertEqual((log["result"], log["alert"], log["up"], log["down"]),
                                 ("no-route", 112, 0, 0))
        # what a real client reports
        with connect(d.port) as s:
            with self.assertRaisesRegex(ssl.SSLError, "UNRECOGNIZED_NAME"):
                harness.client_context().wrap_socket(s, server_hostname="nowhere.example.net")
        self.assertServedBy(d.port, "example.com", "example.com")  # and the known name still works

    # --- hosts directory features ---------------------------------------------------

    def test_symlinked_alias_routes_to_target_backend(self):
        self.standard_hosts()
        self.hosts.alias("www.example.com", "example.com")
        d = self.start_daemon()
        port = self.assertServedBy(d.port, "www.example.com", "example.com")
        self.assertEqual(d.connection_log(port)["route"], "www.example.com")

    def test_host_added_and_removed_while_running(self):
        self.standard_hosts()
        d = self.start_daemon()
        self.assertServedBy(d.port, "new.example", "default")
        backend = self.hosts.openssl("new.example", "other.example")
        self.assertServedBy(d.port, "new.example", "other.example")
        backend.close()
        os.unlink(self.hosts.socket_path("new.example"))
        self.assertServedBy(d.port, "new.example", "default")

    def test_swapping_a_tls_socket_symlink_needs_no_restart(self):
        self.standard_hosts()
        entry = self.hosts.entry("swap.example")
        link = os.path.join(entry, "tls-socket")
        os.symlink("../example.com/tls-socket", link)
        d = self.start_daemon()
        self.assertServedBy(d.port, "swap.example", "example.com")
        os.symlink("../other.example/tls-socket", link + ".new")
        os.replace(link + ".new", link)
        self.assertServedBy(d.port, "swap.example", "other.example")

    def test_long_name_routed_through_hashed_directory(self):
        self.standard_hosts()
        long_name = "a" * 60 + "." + "b" * 40 + ".example.com"  # 113 bytes: > 96, hashed
        edge_name = "c" * 63 + "." + "d" * 20 + ".example.com"  # 96 bytes: still plain
        self.assertEqual(len(long_name), 113)
        self.assertEqual(len(edge_name), 96)
        out = subprocess.run([harness.SNIPROXYCTL, "hostname", long_name, "example.com"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        rows = [line.split("\t") for line in out.splitlines()]
        self.assertEqual(rows[1], ["example.com", "example.com",
                                   "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0", "dir=example.com"])
        hashed = harness.hashed_name(long_name)
        self.assertEqual(rows[0], [long_name, long_name, hashed, "dir=" + hashed])
        self.hosts.openssl(hashed, "other.example")
        self.hosts.openssl(edge_name, "apps.example.com")
        d = self.start_daemon()
        port = self.assertServedBy(d.port, long_name.upper(), "other.example")
        self.assertEqual(d.connection_log(port)["route"], long_name)
        self.assertServedBy(d.port, edge_name, "apps.example.com")


if __name__ == "__main__":
    harness.main()
