#!/usr/bin/env python3
"""settings_test.py: -o and -f as an operator meets them on the real daemon.

A bad setting (a negative count, a CIDR with a /33, an unknown name, a scalar twice) refuses
to start: exit 1, one line on stderr naming the setting (and the file's line), nothing bound,
no worker left behind. `-n` reports the same error and exits 1; `-n -v` prints the settings
in effect in the file format, and that output read back with -f gives the same. A good file
with -o on top starts and routes. (The limits themselves are enforced by the parent: their
tests are with the dispatcher.)
"""
import os
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import SNIPROXYD, scratch_dir


def run(args, timeout=20):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class SettingsTest(harness.DaemonTestCase):
    def write(self, text):
        path = os.path.join(scratch_dir("s"), "sniproxyd.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_refused(self, *settings):
        """Runs the daemon with the settings; it must exit 1 at once and bind nothing."""
        port = harness.free_port()
        args = [SNIPROXYD, "-d", "-H", self.hosts.root, "-l", f"127.0.0.1:{port}", "-w", "1",
                "-u", harness.WORKER_USER] + list(settings)
        start = time.monotonic()
        code, _, err = run(args)
        self.assertEqual(code, 1, err)
        self.assertLess(time.monotonic() - start, 5)
        with socket.socket() as s:
            self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0, "something listens")
        lines = [l for l in err.splitlines() if l]
        self.assertEqual(len(lines), 1, err)
        return lines[0]

    def test_bad_values_refuse_to_start(self):
        self.hosts.raw("example.com")
        self.assertEqual(self.start_refused("-o", "source-max=-1"),
                         "sniproxyd: -o source-max: not a number: -1")
        self.assertEqual(self.start_refused("-o", "allow=10.0.0.0/33"),
                         "sniproxyd: -o allow: '10.0.0.0/33': the prefix length must be a "
                         "number from 0 to 32")
        self.assertEqual(self.start_refused("-o", "colour=blue"),
                         "sniproxyd: -o colour: unknown setting (see SETTINGS in sniproxyd(8))")
        self.assertEqual(self.start_refused("-o", "source-max=5", "-o", "source-max=6"),
                         "sniproxyd: -o source-max: given twice")

    def test_bad_file_names_its_line(self):
        path = self.write("# limits\nsource-max=10\n\nsource-rate=ten\n")
        self.assertEqual(self.start_refused("-f", path),
                         f"sniproxyd: settings file {path} line 4: source-rate: not a number: ten")
        twice = self.write("idle-timeout=5\nidle-timeout=6\n")
        self.assertIn("line 2: idle-timeout: given twice (first on line 1)",
                      self.start_refused("-f", twice))
        self.assertEqual(self.start_refused("-f", "/nonexistent/s.conf"),
                         "sniproxyd: settings file /nonexistent/s.conf: No such file or directory")

    def test_check_reports_and_prints(self):
        self.hosts.raw("example.com")
        code, out, _ = run([SNIPROXYD, "-n", "-H", self.hosts.root, "-u", harness.WORKER_USER,
                            "-o", "deny=10.0.0.0/8x"])
        self.assertEqual(code, 1, out)
        self.assertIn("error: settings: -o deny: '10.0.0.0/8x': the prefix length", out)

        path = self.write("allow=10.0.0.0/8\nallow=::1\nsource-max=3\nsource-rate=4/9\n")
        code, out, _ = run([SNIPROXYD, "-n", "-v", "-H", self.hosts.root, "-u",
                            harness.WORKER_USER, "-f", path, "-o", "source-max=7"])
        self.assertEqual(code, 0, out)
        printed = [l for l in out.splitlines() if l and not l.startswith(("#", "0 errors"))]
        self.assertIn("allow=10.0.0.0/8", printed)
        self.assertIn("allow=::1/128", printed)
        self.assertIn("source-max=7", printed)
        self.assertIn("source-rate=4/9", printed)
        again = self.write("\n".join(printed) + "\n")
        code, out2, _ = run([SNIPROXYD, "-n", "-v", "-H", self.hosts.root, "-u",
                             harness.WORKER_USER, "-f", again])
        self.assertEqual(code, 0, out2)
        self.assertEqual(out2, out)

    def test_good_settings_start_and_route(self):
        backend = self.hosts.raw("example.com")
        path = self.write("source-max=100  # generous\ndeny=192.0.2.0/24\n")
        d = self.start_daemon(extra_args=["-f", path, "-o", "log-format=text"])
        with harness.connect(d.port) as s:
            s.sendall(harness.client_hello("example.com"))
            backend.wait_connections(1)
        self.assertEqual(len(backend.connections), 1)


if __name__ == "__main__":
    harness.main()
