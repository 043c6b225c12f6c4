#!/usr/bin/env python3
"""json_log_test.py: -o log-format=json, the per-connection line as one JSON object.

The real daemon gets hellos whose SNI holds spaces, `=`, quotes, backslashes, a newline and
bytes above 0x7f (0xff), some short, one of 256 bytes that would not fit a record if it were
escaped in full, plus good, no-route and non-TLS connections. Every per-connection line,
after the same `sniproxyd[pid]: ` prefix as the text form, must parse with Python's json
into exactly the fields of the text form, and the sni value must be the bytes sent (each
code point one byte), or their start followed by "..." where the value was cut.
"""
import json
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, alert, client_hello, connect, echo_handler, read_exactly, read_to_eof

HOSTILE = [
    b"a b=c",
    b'"quoted" \\ {"result":"ok"}',
    b"line\nsniproxyd[1]: {\"client\":\"6.6.6.6:1\",\"result\":\"ok\"}",
    b"\xff\xfe\x00\x7f",
    b"\xff" * 256,
]
PREFIX = re.compile(r"^sniproxyd\[(\d+)\]: (\{.*)$")


class JsonLogTest(DaemonTestCase):
    def json_line(self, d, port):
        tag = f'"client":"{d.host}:{port}"'
        line = d.wait_lines(lambda l: tag in l, 1, 5)[0]
        m = PREFIX.match(line)
        self.assertIsNotNone(m, line)
        # A worker's record names the worker (the parent writes it under the worker's pid).
        self.assertIn(int(m.group(1)), harness.worker_pids(d) + [d.pid])
        return json.loads(m.group(2))

    def test_every_line_parses_back(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(hello_timeout=2, extra_args=["-o", "log-format=json"])
        for sni in HOSTILE:
            with self.subTest(sni=sni):
                with connect(d.port) as s:
                    s.sendall(client_hello(sni))
                    self.assertEqual(read_to_eof(s, 5), alert(112))
                    port = s.getsockname()[1]
                rec = self.json_line(d, port)
                self.assertEqual(list(rec), ["client", "sni", "route", "result", "reason", "alert",
                                             "up", "down", "ms", "ja4"])
                self.assertEqual((rec["route"], rec["result"], rec["alert"]), ("-", "bad-sni", 112))
                got = rec["sni"].encode("latin-1")
                if got.endswith(b"...") and len(sni) > 64:
                    self.assertTrue(sni.startswith(got[:-3]), got)
                    self.assertGreaterEqual(len(got), 64 + 3)
                else:
                    self.assertEqual(got, sni)
        # A good connection: numbers are numbers, and they are the bytes relayed.
        with connect(d.port) as s:
            hello = client_hello("example.com")
            s.sendall(hello + b"x" * 100)
            self.assertEqual(read_exactly(s, len(hello) + 100), hello + b"x" * 100)
            s.shutdown(harness.socket.SHUT_WR)
            read_to_eof(s)
            port = s.getsockname()[1]
        rec = self.json_line(d, port)
        self.assertEqual({k: rec[k] for k in ("sni", "route", "result", "up", "down")},
                         {"sni": "example.com", "route": "example.com", "result": "ok",
                          "up": len(hello) + 100, "down": len(hello) + 100})
        self.assertIsInstance(rec["ms"], int)
        with connect(d.port) as s:  # not TLS: closed without an answer, still a JSON line
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertEqual(read_to_eof(s, 5), b"")
            port = s.getsockname()[1]
        self.assertEqual(self.json_line(d, port)["result"], "bad-hello")
        # No per-connection line is in the text form, and every JSON line parses.
        for line in d.lines():
            self.assertNotIn(" result=", line)
            m = PREFIX.match(line)
            if m:
                json.loads(m.group(2))


if __name__ == "__main__":
    harness.main()
