#!/usr/bin/env python3
"""hosts_change_test.py: a change to the hosts directory is seen by the very next connection.

The worker keeps what it learnt of each entry (hosts_cache.cc) and must never serve from a
stale copy: each test makes a connection, changes the directory (a flag file, an alpn/
entry, an allow file, a symlinked host, an entry itself), and makes the next connection at
once, through the same single worker, asserting that it sees the change.
"""
import os
import shutil
import socket
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, RawBackend, client_hello, connect, read_to_eof

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class HostsChangeTest(DaemonTestCase):
    def hello(self, d, sni, alpn=()):
        """One connection: the hello, a half-close, everything until EOF. Returns what the
        client got back and the connection's log line; self.sent is the hello."""
        self.sent = client_hello(sni, alpn=alpn)
        with connect(d.port) as s:
            port = s.getsockname()[1]
            s.sendall(self.sent)
            s.shutdown(socket.SHUT_WR)
            answer = read_to_eof(s)
        return answer, d.connection_log(port)

    def received(self, backend, n):
        """What the backend's n-th connection (from 1) received, once it ended."""
        conn = backend.wait_connections(n)[n - 1]
        self.assertTrue(conn.closed.wait(5))
        return bytes(conn.data)

    def test_the_cache_is_on_for_a_local_hosts_directory(self):
        # Under the daemon's seccomp filters, the worker's statfs of the hosts directory is
        # allowed and a local filesystem keeps the cache (a network one would turn it off).
        fs = subprocess.run(["stat", "-f", "-c", "%T", self.hosts.root], capture_output=True,
                            text=True).stdout.strip()
        if fs not in ("ext2/ext3", "xfs", "btrfs", "tmpfs", "overlayfs", "zfs", "f2fs"):
            self.skipTest(f"the hosts directory is on {fs or 'an unknown filesystem'}")
        self.hosts.raw("example.com")
        d = self.start_daemon(workers=1)
        _, log = self.hello(d, "example.com")
        self.assertEqual(log["result"], "ok")
        self.assertNotIn("without a cache", d.log())

    def test_flag_files_added_and_removed(self):
        backend = self.hosts.raw("example.com")
        d = self.start_daemon(workers=1)
        self.hello(d, "example.com")
        self.assertEqual(self.received(backend, 1), self.sent)
        self.hosts.flag("example.com", "send-proxy-v1")
        self.hello(d, "example.com")
        self.assertTrue(self.received(backend, 2).startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 "))
        os.unlink(os.path.join(self.hosts.entry("example.com"), "send-proxy-v1"))
        self.hello(d, "example.com")
        self.assertEqual(self.received(backend, 3), self.sent)
        self.hosts.flag("example.com", "send-proxy-v2")
        self.hello(d, "example.com")
        self.assertTrue(self.received(backend, 4).startswith(PROXY_V2_SIGNATURE))
        os.unlink(os.path.join(self.hosts.entry("example.com"), "send-proxy-v2"))
        self.hello(d, "example.com")
        self.assertEqual(self.received(backend, 5), self.sent)

    def test_alpn_entry_added_and_removed(self):
        main = self.hosts.raw("example.com")
        d = self.start_daemon(workers=1)
        _, log = self.hello(d, "example.com", alpn=("h2",))
        self.assertEqual(log["result"], "ok")
        self.received(main, 1)
        alpn_dir = os.path.join(self.hosts.entry("example.com"), "alpn")
        os.makedirs(os.path.join(alpn_dir, "h2"))
        os.chmod(alpn_dir, 0o755)
        os.chmod(os.path.join(alpn_dir, "h2"), 0o755)
        h2 = RawBackend(os.path.join(alpn_dir, "h2", "tls-socket"))
        self.hosts.backends.append(h2)
        _, log = self.hello(d, "example.com", alpn=("h2",))
        self.assertEqual(log["alpn"], "h2")
        self.assertEqual(self.received(h2, 1), self.sent)
        h2.close()
        shutil.rmtree(alpn_dir)
        _, log = self.hello(d, "example.com", alpn=("h2",))
        self.assertEqual(log["result"], "ok")
        self.assertEqual(self.received(main, 2), self.sent)

    def test_allow_file_added_edited_in_place_and_removed(self):
        backend = self.hosts.raw("example.com")
        d = self.start_daemon(workers=1)
        self.hello(d, "example.com")
        self.received(backend, 1)
        allow = os.path.join(self.hosts.entry("example.com"), "allow")
        with open(allow, "w") as f:
            f.write("10.0.0.0/8\n")
        os.chmod(allow, 0o644)
        answer, log = self.hello(d, "example.com")
        self.assertEqual((answer, log["result"]), (harness.alert(49), "denied"))
        with open(allow, "r+") as f:  # the same file, rewritten: no event on the directory
            f.write("127.0.0.0/8\n")
        _, log = self.hello(d, "example.com")
        self.assertEqual(log["result"], "ok")
        self.received(backend, 2)
        with open(allow, "r+") as f:
            f.write("10.0.0.0/8\n#\n")
        answer, log = self.hello(d, "example.com")
        self.assertEqual((answer, log["result"]), (harness.alert(49), "denied"))
        os.unlink(allow)
        _, log = self.hello(d, "example.com")
        self.assertEqual(log["result"], "ok")
        self.received(backend, 3)

    def test_symlinked_host_swapped(self):
        a = self.hosts.raw("a.example")
        b = self.hosts.raw("b.example")
        self.hosts.flag("a.example", "send-proxy-v1")
        self.hosts.alias("www.example", "a.example")
        d = self.start_daemon(workers=1)
        self.hello(d, "www.example")
        self.assertTrue(self.received(a, 1).startswith(b"PROXY TCP4 "))
        harness.repoint(os.path.join(self.hosts.root, "www.example"), "b.example")
        _, log = self.hello(d, "www.example")
        self.assertEqual(log["route"], "www.example")
        self.assertEqual(self.received(b, 1), self.sent)
        harness.repoint(os.path.join(self.hosts.root, "www.example"), "a.example")
        self.hello(d, "www.example")
        self.assertTrue(self.received(a, 2).startswith(b"PROXY TCP4 "))

    def test_entry_created_and_removed(self):
        default = self.hosts.raw("_default")
        d = self.start_daemon(workers=1)
        _, log = self.hello(d, "new.example")
        self.assertEqual(log["route"], "_default")
        self.received(default, 1)
        backend = self.hosts.raw("new.example")
        _, log = self.hello(d, "new.example")
        self.assertEqual(log["route"], "new.example")
        self.received(backend, 1)
        backend.close()
        self.hosts.backends.remove(backend)
        shutil.rmtree(self.hosts.entry("new.example"))
        _, log = self.hello(d, "new.example")
        self.assertEqual(log["route"], "_default")
        self.received(default, 2)


if __name__ == "__main__":
    harness.main()
