"""harness.py: shared helpers for the sniproxyd end-to-end tests.

Starts the real daemon on a free port over a throwaway hosts directory, provides backends
on Unix sockets (raw Python recorders/echoers, Python TLS servers, `openssl s_server`),
builds ClientHellos, and reads the daemon's per-connection log lines. Standard library only.

Environment: SNIPROXYD, SNIPROXYCTL (binaries), TESTDATA (ClientHello captures);
E2E_VERBOSE=1 prints every daemon log, not only those of failed tests.
"""
import atexit
import base64
import hashlib
import itertools
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SNIPROXYD = os.environ.get("SNIPROXYD") or os.path.normpath(os.path.join(HERE, "../../src/sniproxyd"))
SNIPROXYCTL = os.environ.get("SNIPROXYCTL") or os.path.normpath(os.path.join(HERE, "../../src/sniproxyctl"))
TESTDATA = os.environ.get("TESTDATA") or os.path.normpath(os.path.join(HERE, "../data"))
WORKER_USER = "nobody"
CAPTURE_SNI = "capture.example.test"

# One short scratch directory per test program: Unix socket paths are bound here (short
# enough for `openssl s_server -unix`) and renamed into place; hosts dirs and certs live here.
SCRATCH = tempfile.mkdtemp(prefix="spe", dir="/tmp")
os.chmod(SCRATCH, 0o755)
atexit.register(shutil.rmtree, SCRATCH, True)
_names = itertools.count()
_children = []  # every process started, killed at exit if a test could not stop it


def _kill_children():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait(5)


atexit.register(_kill_children)  # runs before the rmtree above


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")  # unittest lets this through; atexit then cleans up


signal.signal(signal.SIGTERM, _on_sigterm)


def is_root():
    return os.geteuid() == 0


def have(program):
    return shutil.which(program) is not None


def scratch_dir(prefix="d"):
    path = os.path.join(SCRATCH, f"{prefix}{next(_names)}")
    os.mkdir(path)
    os.chmod(path, 0o755)
    return path


def hosts_link(target):
    """A symbolic link to `target` to start the daemon on, so a test can swap the whole
    hosts directory as an administrator would (`ln -sfn`, see repoint)."""
    link = os.path.join(scratch_dir("l"), "hosts")
    os.symlink(target, link)
    return link


def repoint(link, target):
    """Atomically points the symbolic link `link` at `target` (ln -sfn)."""
    os.symlink(target, link + ".new")
    os.replace(link + ".new", link)


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def hashed_name(name):
    """The hashed directory name of DESIGN.md: BLAKE2s-256, unpadded URL-safe base64."""
    digest = hashlib.blake2s(name.encode(), digest_size=32).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def captures():
    """(file name, bytes) of every ClientHello capture in TESTDATA, sorted by name."""
    names = sorted(n for n in os.listdir(TESTDATA) if n.endswith(".bin"))
    out = []
    for n in names:
        with open(os.path.join(TESTDATA, n), "rb") as f:
            out.append((n, f.read()))
    return out


# ---------------------------------------------------------------------------------------
# TLS wire format

def alert(description):
    """The fatal alert record sniproxyd sends: 15 03 03 00 02 02 XX."""
    return bytes([21, 3, 3, 0, 2, 2, description])


def record(content_type, payload, version=b"\x03\x01"):
    return bytes([content_type]) + version + struct.pack("!H", len(payload)) + payload


def extension(ext_type, body):
    return struct.pack("!HH", ext_type, len(body)) + body


def sni_extension(name):
    name = name.encode() if isinstance(name, str) else name
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return extension(0, struct.pack("!H", len(entry)) + entry)


def alpn_extension(protocols):
    items = b"".join(bytes([len(p)]) + p.encode() for p in protocols)
    return extension(16, struct.pack("!H", len(items)) + items)


def client_hello(sni=None, alpn=(), extra_extensions=(), records=1, padding=0):
    """A TLS 1.3-style ClientHello, as records. `sni` None: no server_name extension.
    `records` > 1 splits the handshake message over that many records; `padding` adds a
    padding extension (21) of that many zero bytes."""
    message = client_hello_message(sni, alpn, extra_extensions, padding)
    size = -(-len(message) // records)
    return b"".join(record(22, message[i:i + size]) for i in range(0, len(message), size))


def client_hello_message(sni=None, alpn=(), extra_extensions=(), padding=0):
    """The ClientHello handshake message alone (see client_hello)."""
    exts = b""
    if sni is not None:
        exts += sni_extension(sni)
    exts += extension(10, b"\x00\x02\x00\x1d")  # supported_groups: x25519
    exts += extension(13, b"\x00\x04\x04\x03\x08\x04")  # signature_algorithms
    if alpn:
        exts += alpn_extension(alpn)
    exts += extension(43, b"\x02\x03\x04")  # supported_versions: TLS 1.3
    exts += extension(51, b"\x00\x24\x00\x1d\x00\x20" + os.urandom(32))  # key_share
    for e in extra_extensions:
        exts += e
    if padding:
        exts += extension(21, bytes(padding))
    suites = b"\x13\x01\x13\x02\x13\x03"
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32)
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    return b"\x01" + struct.pack("!I", len(body))[1:] + body


def proxy_v1(client, local):
    """Expected PROXY v1 header for a client socket's (addr, port) pairs."""
    fam = "TCP6" if ":" in client[0] else "TCP4"
    return f"PROXY {fam} {client[0]} {local[0]} {client[1]} {local[1]}\r\n".encode()


def proxy_v2(client, local, authority="", alpn=""):
    """Expected PROXY v2 header: addresses, then TLV ALPN (0x01), then AUTHORITY (0x02)."""
    v6 = ":" in client[0]
    family = socket.AF_INET6 if v6 else socket.AF_INET
    body = (socket.inet_pton(family, client[0]) + socket.inet_pton(family, local[0])
            + struct.pack("!HH", client[1], local[1]))
    for tlv_type, value in ((1, alpn), (2, authority)):
        if value:
            body += bytes([tlv_type]) + struct.pack("!H", len(value)) + value.encode()
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21 if v6 else 0x11])
            + struct.pack("!H", len(body)) + body)


# ---------------------------------------------------------------------------------------
# Certificates (throwaway, generated once per test program)

class Cert:
    def __init__(self, name):
        self.name = name
        d = os.path.join(SCRATCH, "certs")
        os.makedirs(d, exist_ok=True)
        self.certfile = os.path.join(d, name + ".crt")
        self.keyfile = os.path.join(d, name + ".key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=" + name,
             "-addext", f"subjectAltName=DNS:{name},DNS:*.{name}",
             "-keyout", self.keyfile, "-out", self.certfile],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        with open(self.certfile) as f:
            self.der = ssl.PEM_cert_to_DER_cert(f.read())


_certs = {}


def cert(name):
    if name not in _certs:
        _certs[name] = Cert(name)
    return _certs[name]


def server_context(c):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(c.certfile, c.keyfile)
    return ctx


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------------------------------
# Backends on Unix sockets

def _unix_listening(path):
    """True when /proc/net/unix lists a listening socket bound to `path`."""
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & 0x10000:
                return True
    return False


def _place(staging, final):
    os.chmod(staging, 0o777)  # workers run as nobody
    os.replace(staging, final)


def _staging():
    return os.path.join(SCRATCH, f"s{next(_names)}")


class BackendConnection:
    """One connection a RawBackend accepted: what it received, and when it saw EOF."""

    def __init__(self, sock):
        self.sock = sock
        self.data = bytearray()
        self.eof = threading.Event()  # the peer shut down its writing (or went away)
        self.closed = threading.Event()  # our handler finished and closed the socket
        self.error = None

    def recv(self, n=65536):
        d = self.sock.recv(n)
        if d:
            self.data += d
        else:
            self.eof.set()
        return d

    def read_to_eof(self):
        while self.recv():
            pass


def record_handler(c):
    """Record everything until EOF, then close."""
    c.read_to_eof()


def echo_handler(c):
    """Echo everything back; on EOF shut down writing too."""
    while True:
        d = c.recv()
        if not d:
            c.sock.shutdown(socket.SHUT_WR)
            return
        c.sock.sendall(d)


class RawBackend:
    """A Unix-socket backend in threads; `handler(BackendConnection)` runs per connection
    (default: record until EOF), and the socket is closed when it returns."""

    def __init__(self, path, handler=record_handler):
        self.path = path
        self.handler = handler
        self.connections = []
        self._cond = threading.Condition()
        self._stop = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = _staging()
        self.listener.bind(staging)
        self.listener.listen(4096)  # room for the bursts of handover_test
        self.listener.settimeout(0.05)
        _place(staging, path)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                s, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(30)
            c = BackendConnection(s)
            with self._cond:
                self.connections.append(c)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.handler(c)
        except Exception as e:  # kept for the test to inspect (a reset may be expected)
            c.error = e
        finally:
            c.eof.set()
            c.sock.close()
            c.closed.set()

    def wait_connections(self, n, timeout=5):
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.connections) >= n, timeout):
                raise TimeoutError(f"backend {self.path}: {len(self.connections)} connection(s), expected {n}")
            return list(self.connections[:n])

    def close(self):
        self._stop = True
        self._thread.join(5)
        self.listener.close()
        for c in self.connections:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class OpensslBackend:
    """`openssl s_server -www` serving one certificate on a Unix socket (`args`: more
    s_server options, e.g. ("-alpn", "acme-tls/1"))."""

    def __init__(self, path, c, args=()):
        self.path = path
        self.cert = c
        staging = _staging()
        self.errors = staging + ".stderr"  # a file, not a pipe nobody reads
        with open(self.errors, "wb") as err:
            self.proc = subprocess.Popen(
                ["openssl", "s_server", "-unix", staging, "-cert", c.certfile, "-key", c.keyfile,
                 "-www", "-quiet", *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _children.append(self.proc)
        try:
            wait_until(lambda: self.proc.poll() is not None or _unix_listening(staging), 10,
                       what="openssl s_server to listen")
            if self.proc.poll() is not None:
                with open(self.errors, errors="replace") as f:
                    raise RuntimeError("openssl s_server failed: " + f.read())
            _place(staging, path)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Hosts:
    """A hosts directory (mode 0755) and the backends serving its entries."""

    def __init__(self, root=None):
        self.root = root or scratch_dir("h")
        self.backends = []

    def entry(self, name):
        d = os.path.join(self.root, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        return d

    def socket_path(self, name):
        return os.path.join(self.entry(name), "tls-socket")

    def raw(self, name, handler=record_handler):
        b = RawBackend(self.socket_path(name), handler)
        self.backends.append(b)
        return b

    def openssl(self, name, cert_name):
        b = OpensslBackend(self.socket_path(name), cert(cert_name))
        self.backends.append(b)
        return b

    def dead(self, name):
        """A tls-socket that exists but where nobody listens (connect: ECONNREFUSED)."""
        staging = _staging()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(staging)
        _place(staging, self.socket_path(name))

    def flag(self, name, file_name):
        """An empty marker file such as send-proxy-v1."""
        path = os.path.join(self.entry(name), file_name)
        open(path, "w").close()
        os.chmod(path, 0o644)

    def alias(self, alias, target):
        os.symlink(target, os.path.join(self.root, alias))

    def close(self):
        for b in self.backends:
            b.close()
        self.backends = []
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# The daemon

_CONN_FIELDS = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")


def parse_connection_line(line):
    """The fields of a per-connection log line, e.g. {'result': 'ok', 'up': 517, ...}."""
    m = re.match(r"sniproxyd\[\d+\]: (client=.*)$", line)
    if not m:
        return None
    fields = dict(_CONN_FIELDS.findall(m.group(1)))
    for k in ("up", "down", "ms", "alert"):
        if k in fields:
            fields[k] = int(fields[k])
    return fields


class Daemon:
    """sniproxyd -d -v on a free port; its stderr is collected line by line."""

    def __init__(self, hosts_dir, workers=2, hello_timeout=5, grace=2, user=WORKER_USER,
                 host="127.0.0.1", extra_args=(), prefix=(), pass_fds=(), binary=None):
        self.hosts_dir = hosts_dir
        self.binary = binary or SNIPROXYD  # e.g. the installed copy (install_test.py)
        self.workers = workers
        self.hello_timeout = hello_timeout
        self.grace = grace
        self.user = user
        self.host = host
        self.extra_args = list(extra_args)
        self.prefix = list(prefix)  # e.g. setpriv to start it as another user
        self.pass_fds = tuple(pass_fds)  # descriptors it inherits
        self.proc = None
        self.port = None
        self.returncode = None
        self.expected_problems = []
        self._lines = []
        self._cond = threading.Condition()
        self._reader = None
        self._reading = threading.Event()  # cleared: stop reading stderr (see pause_log)
        self._reading.set()

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=15):
        for _ in range(3):  # a free port can be taken between probe and bind: retry
            self.port = free_port(self.host)
            listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            args = self.prefix + [self.binary, "-d", "-v", "-H", self.hosts_dir, "-l", listen,
                                  "-w", str(self.workers), "-T", str(self.hello_timeout),
                                  "-g", str(self.grace), "-u", self.user] + self.extra_args
            with self._cond:
                self._lines = []
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=self.pass_fds)
            _children.append(self.proc)
            self._reader = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
            self._reader.start()
            if self._wait_ready(timeout):
                return self
            if self.proc.poll() is not None and "in use" in self.log():
                continue
            self.stop()
            raise RuntimeError("sniproxyd did not become ready:\n" + self.log())
        raise RuntimeError("sniproxyd: no free port after 3 attempts:\n" + self.log())

    def _read_stderr(self, proc):
        for raw in proc.stderr:
            self._reading.wait(60)
            line = raw.decode(errors="replace").rstrip("\n")
            if not line or line.startswith("e2e-filler"):
                continue
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:  # the listener accepts (into its backlog) once it is bound
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)
        try:
            self.wait_lines(lambda l: "generation 1 ready" in l, self.workers,
                            timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            return False
        return True

    def pause_log(self):
        """Stops reading the daemon's stderr and fills the pipe, so that its next log write
        blocks (a slow log reader) until resume_log(). Filler lines are left out of lines()."""
        self._reading.clear()
        fd = os.open(f"/proc/{self.pid}/fd/2", os.O_WRONLY | os.O_NONBLOCK)
        try:
            for _ in range(3):  # the reader may still take a line or a buffer's worth
                try:
                    while True:
                        os.write(fd, b"e2e-filler\n" * 64)
                except BlockingIOError:
                    pass
                time.sleep(0.05)
            try:
                while True:
                    os.write(fd, b"\n")
            except BlockingIOError:
                pass
        finally:
            os.close(fd)

    def resume_log(self):
        self._reading.set()

    def lines(self):
        with self._cond:
            return list(self._lines)

    def log(self):
        return "\n".join(self.lines())

    def wait_lines(self, predicate, count=1, timeout=5):
        """Waits until `count` lines satisfy `predicate`; returns them."""
        def found():
            return [l for l in self._lines if predicate(l)]
        with self._cond:
            if not self._cond.wait_for(lambda: len(found()) >= count, timeout):
                raise TimeoutError(f"sniproxyd log: expected {count} matching line(s) within "
                                   f"{timeout} s, log so far:\n" + "\n".join(self._lines))
            return found()

    def connection_log(self, client_port, timeout=5):
        """The parsed log line of the connection from local port `client_port`."""
        tag = f"client={self.host if ':' not in self.host else '[' + self.host + ']'}:{client_port} "
        line = self.wait_lines(lambda l: tag in l and " result=" in l, 1, timeout)[0]
        return parse_connection_line(line)

    def problems(self):
        """Log lines that mean something went wrong inside the daemon (except those a test
        provoked on purpose and listed in self.expected_problems, a list of regexes)."""
        bad = re.compile(r"killed by signal|exited with status [1-9]|died|connections lost|"
                         r"malformed message|unexpected message|protocol violation|"
                         r"still running after the grace")
        return [l for l in self.lines() if bad.search(l)
                and not any(re.search(e, l) for e in self.expected_problems)]

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=None):
        """SIGTERM, wait; returns the exit status (killed with SIGKILL if it hangs: -9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout or self.grace + 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self.proc.stderr.close()
        self.returncode = self.proc.returncode
        return self.returncode


# ---------------------------------------------------------------------------------------
# Clients

def connect(port, host="127.0.0.1", timeout=5):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def read_to_eof(sock, timeout=5, limit=64 << 20):
    """Everything until EOF; TimeoutError when EOF does not come within `timeout` s."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no EOF within {timeout} s ({len(data)} bytes read)")
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no EOF within {timeout} s ({len(data)} bytes read)") from None
        if not d:
            return bytes(data)
        data += d
        if len(data) > limit:
            raise AssertionError("more data than expected")


def read_exactly(sock, n, timeout=5):
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"read {len(data)} of {n} bytes within {timeout} s")
        sock.settimeout(left)
        d = sock.recv(min(n - len(data), 1 << 20))
        if not d:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += d
    return bytes(data)


def tls_fetch(port, sni, timeout=10):
    """Python TLS client (no verification): GET /; returns (peer certificate DER, response,
    the client's local port, by which the daemon's log names the connection)."""
    with connect(port, timeout=timeout) as s:
        client_port = s.getsockname()[1]
        der, body = tls_get(s, sni)
        return der, body, client_port


def tls_get(sock, sni):
    """TLS (no verification) over the connected `sock`, GET /, everything until the end:
    (peer certificate DER, response)."""
    with client_context().wrap_socket(sock, server_hostname=sni) as t:
        der = t.getpeercert(binary_form=True)
        t.sendall(b"GET / HTTP/1.0\r\n\r\n")
        body = bytearray()
        while True:
            try:
                d = t.recv(65536)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
            if not d:
                break
            body += d
        return der, bytes(body)


# ---------------------------------------------------------------------------------------
# Processes and load (lifecycle tests)

def worker_pids(d, parent=None):
    """Live workers ("sniproxyd: worker ..." title) whose parent is `parent` (d.pid)."""
    parent = parent or d.pid
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if not f.read().startswith(b"sniproxyd: worker"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                    out.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, ValueError, IndexError):
            pass
    return sorted(out)


def exited(pid):
    """The process is gone or a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone between open and read: ESRCH
        return True


def open_echo(d, name="example.com", timeout=5):
    """A connection through the daemon to an echo backend, proven by the echo of its hello."""
    s = connect(d.port, timeout=timeout)
    try:
        hello = client_hello(name)
        s.sendall(hello)
        if read_exactly(s, len(hello), timeout) != hello:
            raise AssertionError("echo of the hello differs")
    except BaseException:
        s.close()
        raise
    return s


class ClientLoop:
    """A thread opening short connections back to back to an echo backend, each checked end
    to end (hello and a payload echoed, then a clean EOF). Counts them and keeps failures."""

    def __init__(self, port, name="example.com", timeout=10):
        self.port = port
        self.name = name
        self.timeout = timeout
        self.ok = 0
        self.failures = []  # (time.monotonic(), repr of the error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                with connect(self.port, timeout=self.timeout) as s:
                    hello = client_hello(self.name)
                    payload = os.urandom(512)
                    s.sendall(hello + payload)
                    if read_exactly(s, len(hello) + len(payload), self.timeout) != hello + payload:
                        raise AssertionError("echo differs")
                    s.shutdown(socket.SHUT_WR)
                    if read_to_eof(s, self.timeout) != b"":
                        raise AssertionError("bytes after the echo")
                self.ok += 1
            except Exception as e:
                self.failures.append((time.monotonic(), repr(e)))
                time.sleep(0.01)

    def wait_ok(self, n, timeout=10):
        """Waits for `n` more successful connections than now."""
        target = self.ok + n
        wait_until(lambda: self.ok >= target, timeout, what=f"{n} more client-loop connections")

    def stop(self):
        self._stop.set()
        self._thread.join(self.timeout * 3)
        return self.ok, self.failures


class Transfer:
    """A long echo transfer through the daemon: `size` bytes sent in chunks at a steady pace
    over about `seconds`, everything read back and compared byte for byte, then a clean EOF.
    join() returns None when all was well, else what went wrong."""

    def __init__(self, d, size, seconds, name="example.com", chunk=64 << 10):
        self.sock = open_echo(d, name)
        self.client_port = self.sock.getsockname()[1]
        self.data = os.urandom(size)
        self.seconds = seconds
        self.chunk = chunk
        self.received = 0
        self.error = None
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._writer.start()
        self._reader.start()

    def _write(self):
        try:
            start = time.monotonic()
            n = len(self.data)
            for off in range(0, n, self.chunk):
                due = start + self.seconds * off / n
                time.sleep(max(0.0, due - time.monotonic()))
                self.sock.sendall(self.data[off:off + self.chunk])
            self.sock.shutdown(socket.SHUT_WR)
        except Exception as e:
            self.error = self.error or f"write: {e!r}"

    def _read(self):
        try:
            self.sock.settimeout(self.seconds + 30)
            view = memoryview(self.data)
            while True:
                d = self.sock.recv(1 << 16)
                if not d:
                    break
                if view[self.received:self.received + len(d)] != d:
                    raise AssertionError(f"echo differs at offset {self.received}")
                self.received += len(d)
            if self.received != len(self.data):
                raise AssertionError(f"EOF after {self.received} of {len(self.data)} bytes")
        except Exception as e:
            self.error = self.error or f"read: {e!r}"

    def join(self, timeout=None):
        self._writer.join(timeout or self.seconds + 30)
        self._reader.join(timeout or self.seconds + 30)
        if self._reader.is_alive():
            self.error = self.error or "still running"
        self.sock.close()
        return self.error


# ---------------------------------------------------------------------------------------
# Test case base class

class DaemonTestCase(unittest.TestCase):
    """Gives each test a fresh hosts dir (self.hosts) and start_daemon(); everything is
    stopped and removed afterwards. The daemon must exit 0 on SIGTERM and must not have
    logged a crashed or misbehaving worker; the log of a failed test is printed."""

    def setUp(self):
        self.hosts = Hosts()
        self.addCleanup(self.hosts.close)
        self._daemons = []

    def two_trees(self):
        """The test's hosts tree and a second one, each with an echo backend for example.com,
        and a link to the first to start the daemon on (swap it with repoint): returns
        (link, old_backend, new_backend, new_hosts)."""
        new_hosts = Hosts()
        self.addCleanup(new_hosts.close)
        old_backend = self.hosts.raw("example.com", echo_handler)
        new_backend = new_hosts.raw("example.com", echo_handler)
        return hosts_link(self.hosts.root), old_backend, new_backend, new_hosts

    def start_daemon(self, hosts_dir=None, **kw):
        d = Daemon(hosts_dir or self.hosts.root, **kw)
        self._daemons.append(d)
        self.addCleanup(self._stop_daemon, d)
        return d.start()

    def _stop_daemon(self, d):
        if d.proc is None:
            return
        if d.returncode is None:  # else the test stopped it and checked the status itself
            status = d.stop()
            if status != 0:
                raise AssertionError(f"sniproxyd exited with status {status} on SIGTERM")
        problems = d.problems()
        if problems:
            raise AssertionError("sniproxyd logged problems:\n" + "\n".join(problems))

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        failed = result is not None and len(result.failures) + len(result.errors) > before
        if failed or os.environ.get("E2E_VERBOSE"):
            for d in getattr(self, "_daemons", []):
                sys.stderr.write(f"\n--- sniproxyd log ({self.id()}) ---\n{d.log()}\n---\n")
        return out

    def assertNoConnections(self, backend, settle=0.2):
        time.sleep(settle)
        self.assertEqual(len(backend.connections), 0, f"backend {backend.path} was contacted")


def main():
    """unittest.main, with automake's exit codes: 0 pass, 1 fail, 77 all skipped."""
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
