#!/usr/bin/env python3
"""transfer_test.py: data through an established connection.

Megabytes through real TLS on both ends (Python ssl client -> sniproxyd -> Python ssl
server on a Unix socket), both directions at once through a raw echo backend, half-close in
each direction, an idle connection outliving -T, many connections at once, and a client
reset reaching the backend. Byte counts in the log must match what was sent.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import (DaemonTestCase, client_hello, connect, echo_handler, read_exactly,
                     read_to_eof)

MIB = 1 << 20


def children_of(pid):
    """Processes whose parent is `pid` (the daemon's workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


class TransferTest(DaemonTestCase):
    def test_8_mib_each_way_through_real_tls(self):
        size = 8 * MIB
        server_ctx = harness.server_context(harness.cert("example.com"))
        result = {}

        def tls_server(c):
            with server_ctx.wrap_socket(c.sock, server_side=True) as t:
                got, n = hashlib.sha256(), 0
                while n < size:
                    d = t.recv(MIB)
                    if not d:
                        break
                    got.update(d)
                    n += len(d)
                result["received"] = (n, got.hexdigest())
                sent = hashlib.sha256()
                for _ in range(size // MIB):
                    chunk = os.urandom(MIB)
                    sent.update(chunk)
                    t.sendall(chunk)
                result["sent"] = sent.hexdigest()

        self.hosts.raw("example.com", tls_server)
        d = self.start_daemon()
        up = os.urandom(size)
        with connect(d.port, timeout=30) as s:
            port = s.getsockname()[1]
            with harness.client_context().wrap_socket(s, server_hostname="example.com") as t:
                self.assertEqual(t.getpeercert(binary_form=True), harness.cert("example.com").der)
                t.sendall(up)
                down = read_exactly(t, size, timeout=30)
        self.assertEqual(result["received"], (size, hashlib.sha256(up).hexdigest()))
        self.assertEqual(hashlib.sha256(down).hexdigest(), result["sent"])
        log = d.connection_log(port, timeout=10)
        self.assertEqual(log["result"], "ok")
        self.assertGreater(log["up"], size)
        self.assertGreater(log["down"], size)

    def test_8_mib_both_ways_at_once(self):
        size = 8 * MIB
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon()
        data = client_hello("example.com") + os.urandom(size)
        errors = []
        with connect(d.port, timeout=30) as s:
            port = s.getsockname()[1]

            def send():
                try:
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                except OSError as e:
                    errors.append(e)

            sender = threading.Thread(target=send)
            sender.start()
            echoed = read_to_eof(s, timeout=30)
            sender.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(echoed), len(data))
        self.assertEqual(hashlib.sha256(echoed).digest(), hashlib.sha256(data).digest())
        log = d.connection_log(port)
        self.assertEqual((log["result"], log["up"], log["down"]), ("ok", len(data), len(data)))

    def test_slow_backend_gets_every_byte_and_the_worker_stays_small(self):
        # The client sends far faster than the backend reads: the daemon must pause reading
        # the client (backpressure) rather than buffer, and deliver every byte in order.
        size = 24 * MIB
        pause = threading.Event()

        def slow_reader(c):
            while True:
                if not c.recv(64 * 1024):
                    return
                time.sleep(0.001)

        backend = self.hosts.raw("example.com", slow_reader)
        d = self.start_daemon(workers=1)
        data = client_hello("example.com") + os.urandom(size)
        peak = [0]

        def watch():
            while not pause.is_set():
                for pid in children_of(d.pid):
                    try:
                        with open(f"/proc/{pid}/status") as f:
                            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                        peak[0] = max(peak[0], rss)
                    except (OSError, StopIteration):
                        pass
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with connect(d.port, timeout=60) as s:
            port = s.getsockname()[1]
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s, timeout=60), b"")
        pause.set()
        watcher.join(5)
        conn = backend.wait_connections(1)[0]
        self.assertTrue(conn.eof.wait(30))
        self.assertEqual(hashlib.sha256(bytes(conn.data)).digest(), hashlib.sha256(data).digest())
        # Bounded buffering: the worker never held more than a few MiB of the 24 MiB.
        self.assertLess(peak[0], 12 * 1024, f"worker peak RSS {peak[0]} KiB")
        log = d.connection_log(port)
        self.assertEqual((log["result"], log["up"]), ("ok", len(data)))

    def test_client_half_close_then_backend_answers(self):
        answer = os.urandom(MIB)

        def answer_after_eof(c):
            c.read_to_eof()
            c.sock.sendall(answer)

        backend = self.hosts.raw("example.com", answer_after_eof)
        d = self.start_daemon()
        sent = client_hello("example.com") + b"request body after the hello"
        with connect(d.port) as s:
            port = s.getsockname()[1]
            s.sendall(sent)
            s.shutdown(socket.SHUT_WR)
            received = read_to_eof(s, timeout=10)
        conn = backend.wait_connections(1)[0]
        self.assertTrue(conn.eof.wait(5))
        self.assertEqual(bytes(conn.data), sent)
        self.assertEqual(received, answer)
        log = d.connection_log(port)
        self.assertEqual((log["result"], log["up"], log["down"]), ("ok", len(sent), len(answer)))

    def test_backend_half_close_then_client_keeps_sending(self):
        answer = os.urandom(MIB)
        hello = client_hello("example.com")

        def answer_then_listen(c):
            while len(c.data) < len(hello):
                if not c.recv():
                    return
            c.sock.sendall(answer)
            c.sock.shutdown(socket.SHUT_WR)
            c.read_to_eof()

        backend = self.hosts.raw("example.com", answer_then_listen)
        d = self.start_daemon()
        late = os.urandom(300 * 1024)
        with connect(d.port) as s:
            port = s.getsockname()[1]
            s.sendall(hello)
            self.assertEqual(read_to_eof(s, timeout=10), answer)
            s.sendall(late)  # our direction is still open after the backend's EOF
            s.shutdown(socket.SHUT_WR)
            conn = backend.wait_connections(1)[0]
            self.assertTrue(conn.closed.wait(5), "backend never saw the client's EOF")
        self.assertEqual(bytes(conn.data), hello + late)
        log = d.connection_log(port)
        self.assertEqual((log["result"], log["up"], log["down"]), ("ok", len(hello) + len(late), len(answer)))

    def test_idle_established_connection_outlives_hello_timeout(self):
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(hello_timeout=1)
        hello = client_hello("example.com")
        with connect(d.port) as s:
            s.sendall(hello)
            self.assertEqual(read_exactly(s, len(hello)), hello)
            time.sleep(2.5)
            s.sendall(b"still here")
            self.assertEqual(read_exactly(s, 10), b"still here")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
            self.assertEqual(d.connection_log(s.getsockname()[1])["result"], "ok")

    def test_100_connections_at_once(self):
        self.hosts.raw("example.com", echo_handler)
        self.hosts.raw("other.example", echo_handler)
        d = self.start_daemon()
        n, failures, ports = 100, [], []
        lock = threading.Lock()
        start = threading.Barrier(n, timeout=20)

        def one(i):
            try:
                name = "example.com" if i % 2 else "other.example"
                payload = client_hello(name) + struct.pack("!I", i) * 16384
                with connect(d.port, timeout=20) as s:
                    with lock:
                        ports.append(s.getsockname()[1])
                    start.wait()
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    if read_to_eof(s, timeout=20) != payload:
                        raise AssertionError(f"client {i}: echo differs")
            except Exception as e:
                with lock:
                    failures.append(f"client {i}: {e!r}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        self.assertEqual(failures, [])
        for p in ports:
            self.assertEqual(d.connection_log(p)["result"], "ok")

    def test_full_workers_leave_new_clients_waiting_not_dropped(self):
        # -c 2 per worker: the third and fourth clients wait (accepted or in the kernel's
        # backlog) while both slots are taken, and are served, in order, as slots free up.
        self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon(workers=1, extra_args=["-c", "2"])
        held = [harness.open_echo(d), harness.open_echo(d)]
        waiting, hellos = [], []
        for _ in range(2):
            s = connect(d.port)
            hellos.append(client_hello("example.com"))  # each one different (random)
            s.sendall(hellos[-1])
            waiting.append(s)
        for s in waiting:
            s.settimeout(1)
            with self.assertRaises(socket.timeout, msg="served although the worker was full"):
                s.recv(1)
        for i, s in enumerate(waiting):
            held[i].close()  # a slot frees up: the next waiting client is served
            self.assertEqual(read_exactly(s, len(hellos[i]), timeout=5), hellos[i])
        for s in waiting + held:
            s.close()
        self.assertEqual(d.problems(), [])

    def test_client_reset_closes_the_backend_connection(self):
        backend = self.hosts.raw("example.com", echo_handler)
        d = self.start_daemon()
        hello = client_hello("example.com")
        s = connect(d.port)
        port = s.getsockname()[1]
        s.sendall(hello)
        self.assertEqual(read_exactly(s, len(hello)), hello)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        conn = backend.wait_connections(1)[0]
        self.assertTrue(conn.closed.wait(5), "backend connection left open after the client's reset")
        log = d.connection_log(port)
        self.assertEqual((log["result"], log["up"], log["down"]), ("client-reset", len(hello), len(hello)))


if __name__ == "__main__":
    harness.main()
