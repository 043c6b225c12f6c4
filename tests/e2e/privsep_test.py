#!/usr/bin/env python3
"""privsep_test.py: the privilege separation of DESIGN.md, checked from /proc.

Workers are children of the parent, run as the worker user with no capabilities,
no_new_privs and a seccomp filter, are chrooted into the hosts directory, and hold no
listening socket (nor other descriptors they did not need); the parent keeps exactly
cap_kill, cap_setgid, cap_setuid and cap_sys_chroot. A symlink leading out of the hosts
directory goes nowhere. Started unprivileged, the daemon says so and still serves.
Most tests need root.
"""
import os
import pwd
import socket
import stat
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, client_hello, connect, read_to_eof

PARENT_CAPS = 0x400E0  # cap_kill (5), cap_setgid (6), cap_setuid (7), cap_sys_chroot (18)


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def workers_of(pid):
    """Pids whose command line starts with "sniproxyd: worker" and whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            if cmdline.startswith(b"sniproxyd: worker") and proc_status(entry)["PPid"] == [str(pid)]:
                out.append(int(entry))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return sorted(out)


def fd_targets(pid):
    """{fd number: link target} of a process."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            pass
    return out


def listening_inodes():
    """Inodes of every listening TCP (v4, v6) and Unix stream socket: {inode: description}."""
    out = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{table}") as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A":  # TCP_LISTEN
                        out[p[9]] = f"{table} {p[1]}"
        except FileNotFoundError:
            pass
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            p = line.split()
            if int(p[3], 16) & 0x10000:  # __SO_ACCEPTCON
                out[p[6]] = "unix " + (p[7] if len(p) > 7 else "(unnamed)")
    return out


def listening_fds(pid):
    listening = listening_inodes()
    found = []
    for fd, target in fd_targets(pid).items():
        if target.startswith("socket:[") and target[8:-1] in listening:
            found.append((fd, listening[target[8:-1]]))
    return found


def needs_root(test):
    def wrapper(self):
        if not harness.is_root():
            self.skipTest("skipped: needs root")
        return test(self)
    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


class PrivsepTest(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.user = pwd.getpwnam(harness.WORKER_USER)
        self.hosts.raw("_default")

    def start_and_find_workers(self, workers=2, **kw):
        d = self.start_daemon(workers=workers, **kw)
        pids = harness.wait_until(lambda: (lambda w: w if len(w) == workers else None)(workers_of(d.pid)),
                                  5, what=f"{workers} workers")
        return d, pids

    @needs_root
    def test_workers_are_jailed_unprivileged_children(self):
        link = os.path.join(harness.scratch_dir("l"), "hosts")
        os.symlink(self.hosts.root, link)  # -H through a symlink: the jail is the real dir
        d, workers = self.start_and_find_workers(workers=3, hosts_dir=link)
        uid, gid = str(self.user.pw_uid), str(self.user.pw_gid)
        for w in workers:
            with self.subTest(worker=w):
                st = proc_status(w)
                self.assertEqual(st["PPid"], [str(d.pid)])
                self.assertEqual(st["Uid"], [uid] * 4)
                self.assertEqual(st["Gid"], [gid] * 4)
                self.assertEqual(st["Groups"], [gid])
                for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                    self.assertEqual(st[cap], ["0000000000000000"], cap)
                self.assertEqual(st["NoNewPrivs"], ["1"])
                self.assertEqual(st["Seccomp"], ["2"])
                self.assertEqual(os.readlink(f"/proc/{w}/root"), os.path.realpath(self.hosts.root))
        # and jailed as they are, they still serve
        with connect(d.port) as s:
            s.sendall(client_hello("anything.example"))
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
            self.assertEqual(d.connection_log(s.getsockname()[1])["result"], "ok")

    @needs_root
    def test_parent_keeps_only_four_capabilities(self):
        d, _ = self.start_and_find_workers()
        st = proc_status(d.pid)
        self.assertEqual(st["Uid"], ["0"] * 4)
        self.assertEqual(int(st["CapEff"][0], 16), PARENT_CAPS, "CapEff")
        self.assertEqual(int(st["CapPrm"][0], 16), PARENT_CAPS, "CapPrm")
        self.assertEqual(int(st["CapBnd"][0], 16), PARENT_CAPS, "CapBnd")
        self.assertEqual(int(st["CapInh"][0], 16), 0, "CapInh")
        self.assertEqual(int(st["CapAmb"][0], 16), 0, "CapAmb")

    @needs_root
    def test_only_the_parent_holds_the_listening_socket(self):
        d, workers = self.start_and_find_workers()
        port_hex = f":{d.port:04X}"
        parent = listening_fds(d.pid)
        self.assertTrue([fd for fd, what in parent if what.startswith("tcp ") and what.endswith(port_hex)],
                        f"the parent does not hold the listener on port {d.port}: {parent}")
        for w in workers:
            with self.subTest(worker=w):
                self.assertEqual(listening_fds(w), [])
                sockets = [t for t in fd_targets(w).values() if t.startswith("socket:")]
                self.assertEqual(len(sockets), 1, f"an idle worker holds only its channel: {sockets}")

    @needs_root
    def test_workers_do_not_inherit_stray_descriptors(self):
        # A careless service manager may leave descriptors open (not close-on-exec): a
        # listening socket, a directory outside the jail. The parent may inherit them;
        # the workers, which exist to hold nothing, must not.
        stray_listener = socket.socket()
        stray_listener.bind(("127.0.0.1", 0))
        stray_listener.listen()
        stray_dir = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(stray_listener.close)
        self.addCleanup(os.close, stray_dir)
        d = self.start_daemon(workers=2, pass_fds=(stray_listener.fileno(), stray_dir))
        workers = harness.wait_until(lambda: (lambda w: w if len(w) == 2 else None)(workers_of(d.pid)),
                                     5, what="2 workers")
        for w in workers:
            with self.subTest(worker=w):
                found = [f"fd {fd}: inherited listening socket ({what})" for fd, what in listening_fds(w)]
                found += [f"fd {fd}: directory {target}" for fd, target in fd_targets(w).items()
                          if stat.S_ISDIR(os.stat(f"/proc/{w}/fd/{fd}").st_mode)]
                self.assertEqual(found, [], "a worker holds descriptors it inherited from the "
                                 "daemon's caller (only stdio and its channel should reach it)")

    @needs_root
    def test_workers_get_dev_null_stdio_a_clean_environment_and_a_filtered_parent(self):
        # The parent's stderr is the log (-d) or the journal: a worker must not reach it,
        # nor get what the parent's environment holds (LD_PRELOAD and friends).
        os.environ["SNIPROXYD_E2E_MARKER"] = "inherited"
        try:
            d, workers = self.start_and_find_workers()
        finally:
            del os.environ["SNIPROXYD_E2E_MARKER"]
        with open(f"/proc/{d.pid}/environ", "rb") as f:
            self.assertIn(b"SNIPROXYD_E2E_MARKER=inherited", f.read())
        for w in workers:
            with self.subTest(worker=w):
                targets = fd_targets(w)
                for fd in (0, 1, 2):
                    self.assertEqual(targets.get(fd), "/dev/null", f"worker fd {fd}")
                with open(f"/proc/{w}/environ", "rb") as f:
                    self.assertEqual(f.read(), b"", "a worker's environment is empty")
                self.assertEqual(proc_status(w)["SigBlk"], ["0000000000000000"])
        self.assertEqual(proc_status(d.pid)["Seccomp"], ["2"], "the parent has its own filter")

    @needs_root
    def test_symlink_out_of_the_hosts_dir_leads_nowhere(self):
        outside = harness.Hosts()
        self.addCleanup(outside.close)
        secret = outside.raw("secret")
        self.hosts.alias("abs.example", os.path.join(outside.root, "secret"))
        self.hosts.alias("rel.example", os.path.relpath(os.path.join(outside.root, "secret"), self.hosts.root))
        d = self.start_daemon()
        default = self.hosts.backends[0]
        for i, name in enumerate(("abs.example", "rel.example")):
            with self.subTest(name=name):
                with connect(d.port) as s:
                    s.sendall(client_hello(name))
                    s.shutdown(socket.SHUT_WR)
                    read_to_eof(s)
                    log = d.connection_log(s.getsockname()[1])
                self.assertEqual(log["route"], "_default")
                default.wait_connections(i + 1)
        self.assertNoConnections(secret)

    def test_started_unprivileged_it_warns_and_still_serves(self):
        if harness.is_root():  # as root, start it as the worker user
            if not harness.have("setpriv"):
                self.skipTest("skipped: setpriv not installed")
            uid = self.user.pw_uid
            prefix = ["setpriv", f"--reuid={uid}", f"--regid={self.user.pw_gid}", "--clear-groups"]
        else:
            uid, prefix = os.geteuid(), []
        d = self.start_daemon(prefix=prefix)
        self.assertIn("not running as root", d.log())
        workers = harness.wait_until(lambda: (lambda w: w if len(w) == 2 else None)(workers_of(d.pid)),
                                     5, what="2 workers")
        for w in workers:
            st = proc_status(w)
            self.assertEqual(st["Uid"], [str(uid)] * 4)
            self.assertEqual(st["NoNewPrivs"], ["1"])
            self.assertEqual(st["Seccomp"], ["2"])
        hello = client_hello("example.com")
        with connect(d.port) as s:
            s.sendall(hello)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
            self.assertEqual(d.connection_log(s.getsockname()[1])["result"], "ok")
        conn = self.hosts.backends[0].wait_connections(1)[0]
        self.assertTrue(conn.closed.wait(5))
        self.assertEqual(bytes(conn.data), hello)


if __name__ == "__main__":
    harness.main()
