#!/usr/bin/env python3
"""log_injection_test.py: no SNI can forge a field of the per-connection log line.

The real daemon gets hellos whose SNI is invalid and carries spaces, `=`, quotes and
backslashes shaped like log fields. Its line must still have exactly one client= and one
result= (ours), every token must be key=value, and the sni= value, unescaped, must be the
bytes the client sent.
"""
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, alert, client_hello, connect, read_to_eof

HOSTILE = [
    b"a client=198.51.100.7:4242 result=ok",
    b"x route=_default result=ok up=999 down=999 ms=0",
    b'"q" \\x20 sni=\\"y\\"',
]


def unescape(value):
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), value).encode("latin-1")


class LogInjectionTest(DaemonTestCase):
    def test_hostile_sni_forges_no_field(self):
        self.hosts.raw("_default")  # a route exists: the refusal must come from the SNI
        d = self.start_daemon(hello_timeout=2)
        for sni in HOSTILE:
            with self.subTest(sni=sni):
                with connect(d.port) as s:
                    s.sendall(client_hello(sni))
                    self.assertEqual(read_to_eof(s, 5), alert(112))
                    port = s.getsockname()[1]
                tag = f"client={d.host}:{port} "
                line = d.wait_lines(lambda l: tag in l and "result=" in l, 1, 5)[0]
                tokens = line.split(": ", 1)[1].split(" ")
                keys = [t.split("=", 1)[0] for t in tokens]
                self.assertTrue(all("=" in t for t in tokens), line)
                self.assertEqual(keys.count("client"), 1, line)
                self.assertEqual(keys.count("result"), 1, line)
                self.assertEqual(keys.count("sni"), 1, line)
                fields = dict(t.split("=", 1) for t in tokens)
                self.assertEqual(fields["client"], f"{d.host}:{port}")
                self.assertEqual((fields["result"], fields["reason"]), ("bad-sni", "bad-char"))
                self.assertEqual(unescape(fields["sni"]), sni)
        self.assertFalse([l for l in d.lines() if "198.51.100.7" in l and "\\x20" not in l],
                         "an SNI put a client address into the log unescaped")


if __name__ == "__main__":
    harness.main()
