#!/usr/bin/env python3
"""protocol_test.py: a worker fails closed on a broken parent protocol.

The test plays the parent: it starts `sniproxyd -W` itself with one end of a SOCK_SEQPACKET
pair as its channel, waits for the worker's `ready`, sends one message the parent never sends (or
sends otherwise), and expects the worker to log a protocol violation and exit with status 1.
A well-formed drain, by contrast, ends the worker with status 0. (The parent's side, a worker
that breaks the protocol, is covered by tests/supervisor_test.cc.)
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402


class WorkerProtocolTest(unittest.TestCase):
    def run_worker(self, message, fds=()):
        """Returns (exit status, the worker's log records as (level, text))."""
        hosts = tempfile.mkdtemp(prefix="sniproxyd-proto-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with ours:
            with theirs:
                fd = theirs.fileno()
                proc = subprocess.Popen(
                    [harness.SNIPROXYD, f"-W{fd}:1:{os.geteuid()}:{os.getegid()}:0:-1",
                     f"-H{hosts}", "-T10", "-v"], pass_fds=(fd,), stdin=subprocess.DEVNULL)
            ours.settimeout(10)
            records = []
            while True:
                data = ours.recv(2048)
                self.assertTrue(data, "the worker closed its channel before saying ready")
                if data[:1] == b"R":
                    break
                if data[:1] == b"L":
                    records.append((data[1], data[2:].decode(errors="replace")))
            if fds:
                ours.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                          struct.pack(f"{len(fds)}i", *fds))])
            else:
                ours.send(message)
            try:
                while True:
                    data = ours.recv(2048)
                    if not data:
                        break
                    if data[:1] == b"L":
                        records.append((data[1], data[2:].decode(errors="replace")))
            except (socket.timeout, ConnectionResetError):
                pass
            status = proc.wait(timeout=10)
        os.rmdir(hosts)
        return status, records

    def assert_violation(self, message, fds=()):
        status, records = self.run_worker(message, fds)
        self.assertEqual(status, 1, records)
        self.assertTrue(any(level == 3 and "protocol violation by the parent" in text
                            for level, text in records), records)

    def test_a_well_formed_drain_ends_the_worker_cleanly(self):
        status, records = self.run_worker(b"D" + struct.pack("=IB", 1, 0))
        self.assertEqual(status, 0, records)
        self.assertFalse(any("protocol violation" in t for _, t in records), records)

    def test_a_drain_of_the_wrong_size_makes_the_worker_exit(self):
        self.assert_violation(b"D\x01\x00")

    def test_a_message_only_a_worker_sends_makes_the_worker_exit(self):
        self.assert_violation(b"L\x06hello")

    def test_an_unknown_type_makes_the_worker_exit(self):
        self.assert_violation(b"Z")

    def test_a_descriptor_on_a_drain_makes_the_worker_exit(self):
        with open("/dev/null", "rb") as f:
            self.assert_violation(b"D" + struct.pack("=IB", 1, 0), fds=(f.fileno(),))

    def test_a_connection_message_that_lies_about_its_descriptors_makes_the_worker_exit(self):
        with open("/dev/null", "rb") as f:
            self.assert_violation(b"C" + bytes(2 * 36), fds=(f.fileno(),))


if __name__ == "__main__":
    harness.main()
