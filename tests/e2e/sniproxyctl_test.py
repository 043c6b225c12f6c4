#!/usr/bin/env python3
"""sniproxyctl_test.py: the operator's tool, run as a program, and `sniproxyd -n`.

`sniproxyctl hostname`: IDN, case, trailing dot and wildcards to the directory name, the
exact TAB-separated output, the hashed-name vectors of DESIGN.md, and the rejections (one
"sniproxyctl: NAME: reason" line on stderr each, exit 1). `sniproxyctl check`: a crafted
hosts directory with real Unix sockets holds one entry for every kind of finding; each must
be reported on its own line with the right severity, nothing else may be, the summary counts
them, and the exit status is 0 (warnings only), 1 (an error) or 2 (usage). `sniproxyd -n`
must report exactly the same findings. Runs as root or not (permission findings are judged
from mode bits for the worker user, "nobody", or "daemon" when the tests run as nobody).
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import SNIPROXYCTL, SNIPROXYD, hashed_name, scratch_dir


def _worker_user():
    """The worker user for permission checks: not us (our own files would be owner-readable),
    not root (sniproxyd -u refuses uid 0). "nobody" unless the tests run as nobody."""
    for name in (harness.WORKER_USER, "daemon", "bin"):
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        if uid not in (0, os.geteuid()):
            return name
    raise RuntimeError("no user to check permissions for")


WORKER_USER = _worker_user()

EXAMPLE_COM_HASH = "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0"  # DESIGN.md
BUECHER_HASH = "UMT1HWzZazUGJ0PmRnPoDIKYZKY9rlxxL46BXHG_pks"  # sniproxyctl.8, sniproxyd.hosts.5
WILDCARD_HASH = "79CoWvcv0cS0Yjpbgeivv0K0hKzowl5kwRox1t9YpZk"  # sniproxyctl.8: *.apps.example.com
LONG_NAME = "a" * 60 + "." + "b" * 40 + ".example"  # 109 bytes: NAME/tls-socket > 107
SUMMARY = re.compile(r"^(\d+) errors?, (\d+) warnings?$")
FINDING = re.compile(r"^(error|warning): (.*?): (.*)$")


def run(args, timeout=20):
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def ctl(*args):
    p = run([SNIPROXYCTL] + list(args))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def unescape(printed):
    """The bytes of a name as the checker prints it (\\xNN for bytes outside printable ASCII)."""
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), printed.encode())


def summary_of(text):
    """(errors, warnings) of the last line, which must be the summary."""
    lines = text.splitlines()
    m = SUMMARY.match(lines[-1]) if lines else None
    if not m:
        raise AssertionError("no summary line at the end of:\n" + text)
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------
# Sockets for the crafted directories

class Sockets:
    """Unix sockets bound under the short scratch directory and renamed into place: a live
    one listens (the checker's probe lands in its backlog), a dead one is bound only."""

    def __init__(self):
        self.socks = []

    def make(self, path, listening=True, mode=0o777):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = os.path.join(harness.SCRATCH, f"k{len(self.socks)}_{os.getpid()}_{id(s) % 10000}")
        s.bind(staging)
        if listening:
            s.listen(64)
        os.chmod(staging, mode)
        os.rename(staging, path)
        self.socks.append(s)
        return path

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def mkdir(root, name, mode=0o755):
    d = os.path.join(root, name)
    os.mkdir(d)
    os.chmod(d, mode)  # explicit: independent of the umask
    return d


def touch(path, mode=0o644):
    open(path, "w").close()
    os.chmod(path, mode)


# ---------------------------------------------------------------------------------------
# hostname

class Hostname(unittest.TestCase):

    def assertLine(self, name, a_label, hashed, directory):
        status, out, err = ctl("hostname", name)
        self.assertEqual((status, err), (0, ""), f"hostname {name!r}")
        self.assertEqual(out, f"{name}\t{a_label}\t{hashed}\tdir={directory}\n")

    def test_hashed_name_vector_example_com(self):
        self.assertEqual(hashed_name("example.com"), EXAMPLE_COM_HASH)  # the harness agrees
        self.assertLine("example.com", "example.com", EXAMPLE_COM_HASH, "example.com")

    def test_unicode_idn_uppercase_and_trailing_dot(self):
        self.assertLine("Bücher.Example.", "xn--bcher-kva.example", BUECHER_HASH,
                        "xn--bcher-kva.example")
        self.assertEqual(hashed_name("xn--bcher-kva.example"), BUECHER_HASH)

    def test_uppercase(self):
        self.assertLine("WWW.EXAMPLE.COM", "www.example.com", hashed_name("www.example.com"),
                        "www.example.com")

    def test_trailing_dot(self):
        self.assertLine("example.com.", "example.com", EXAMPLE_COM_HASH, "example.com")

    def test_idn_already_an_a_label(self):
        self.assertLine("xn--bcher-kva.example", "xn--bcher-kva.example", BUECHER_HASH,
                        "xn--bcher-kva.example")

    def test_wildcard(self):
        self.assertLine("*.apps.example.com", "*.apps.example.com", WILDCARD_HASH,
                        "*.apps.example.com")
        self.assertEqual(hashed_name("*.apps.example.com"), WILDCARD_HASH)
        self.assertLine("*.Apps.Example.COM.", "*.apps.example.com", WILDCARD_HASH,
                        "*.apps.example.com")

    def test_output_format_is_four_tab_separated_fields(self):
        status, out, err = ctl("hostname", "Bücher.Example.", "*.apps.example.com", "example.com")
        self.assertEqual((status, err), (0, ""))
        self.assertTrue(out.endswith("\n"))
        lines = out.split("\n")[:-1]
        self.assertEqual(len(lines), 3, out)
        for line in lines:
            fields = line.split("\t")
            self.assertEqual(len(fields), 4, repr(line))
            self.assertNotIn("  ", line)
            self.assertEqual(len(fields[2]), 43)
            self.assertRegex(fields[2], r"^[A-Za-z0-9_-]{43}$")
            self.assertTrue(fields[3].startswith("dir="))
        self.assertEqual([l.split("\t")[0] for l in lines],
                         ["Bücher.Example.", "*.apps.example.com", "example.com"])  # order kept

    def test_long_name_is_looked_up_hashed(self):
        h = hashed_name(LONG_NAME)
        self.assertLine(LONG_NAME, LONG_NAME, h, h)
        # 96 bytes: NAME/tls-socket is exactly 107, which still fits
        fits = "c" * 63 + "." + "d" * 24 + ".example"
        self.assertEqual(len(fits), 96)
        self.assertLine(fits, fits, hashed_name(fits), fits)
        over = "c" * 63 + "." + "d" * 25 + ".example"
        self.assertLine(over, over, hashed_name(over), hashed_name(over))

    def test_longest_name(self):
        name = ("a" * 63 + ".") * 3 + "b" * 61  # 253 bytes, the most DNS allows
        h = hashed_name(name)
        self.assertLine(name, name, h, h)
        self.assertLine(name.upper() + ".", name, h, h)

    def test_all_hashed_option(self):
        status, out, err = ctl("hostname", "-a", "Example.COM", "*.apps.example.com")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, f"Example.COM\texample.com\t{EXAMPLE_COM_HASH}\tdir={EXAMPLE_COM_HASH}\n"
                              f"*.apps.example.com\t*.apps.example.com\t{WILDCARD_HASH}\tdir={WILDCARD_HASH}\n")

    REJECTED = [
        ("a_b.example", r"bad-char|character|underscore"),
        ("_acme.example", r"bad-char|character|underscore"),
        ("\uff3facme.example", r"bad-char|character|underscore"),  # full-width underscore
        ("127.0.0.1", r"ip-literal|IP"),
        ("[::1]", r"ip-literal|IP|bad-char|character"),
        ("a..example", r"empty-label|empty label"),
        (".example", r"empty-label|empty label"),
        ("a" * 64 + ".example", r"63|label-too-long|label too long"),
        ("x." * 127 + "example", r"too-long|25[35]|too long|longer than"),
        (("a" * 63 + ".") * 3 + "b" * 62, r"too-long|25[35]|too long|longer than"),  # 254 bytes
        ("-lead.example", r"hyphen"),
    ]

    def test_rejections(self):
        for name, reason in self.REJECTED:
            with self.subTest(name=name):
                status, out, err = ctl("hostname", "--", name)
                self.assertEqual(status, 1, err)
                self.assertEqual(out, "")
                self.assertEqual(err.count("\n"), 1, err)
                self.assertTrue(err.startswith(f"sniproxyctl: {name}: "), err)
                self.assertRegex(err[len(f"sniproxyctl: {name}: "):].rstrip("\n"), reason)

    def test_empty_name_rejected(self):
        status, out, err = ctl("hostname", "")
        self.assertEqual((status, out), (1, ""))
        self.assertRegex(err, r"^sniproxyctl: : \S.*\n$")

    def test_invalid_names_do_not_stop_the_others(self):
        status, out, err = ctl("hostname", "a_b.example", "example.com", "127.0.0.1", "Bücher.example")
        self.assertEqual(status, 1)
        self.assertEqual(out, f"example.com\texample.com\t{EXAMPLE_COM_HASH}\tdir=example.com\n"
                              f"Bücher.example\txn--bcher-kva.example\t{BUECHER_HASH}\t"
                              "dir=xn--bcher-kva.example\n")
        lines = err.splitlines()
        self.assertEqual(len(lines), 2, err)
        self.assertTrue(lines[0].startswith("sniproxyctl: a_b.example: "))
        self.assertTrue(lines[1].startswith("sniproxyctl: 127.0.0.1: "))

    def test_control_characters_are_escaped_on_stderr(self):
        status, out, err = ctl("hostname", "evil\n.example")
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err.count("\n"), 1, repr(err))
        self.assertIn("evil\\x0a.example", err)

    def test_usage_errors_exit_2(self):
        for args in (["hostname"], ["hostname", "-z", "example.com"], ["frobnicate"], []):
            with self.subTest(args=args):
                status, out, err = ctl(*args)
                self.assertEqual(status, 2, err)
                self.assertEqual(out, "")
                self.assertIn("usage:", err)

    def test_help_exits_0(self):
        status, out, err = ctl("-h")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("sniproxyctl hostname", out)
        self.assertIn("sniproxyctl check", out)


# ---------------------------------------------------------------------------------------
# alpn

class Alpn(unittest.TestCase):
    def test_directory_names_in_argument_order(self):
        status, out, err = ctl("alpn", "acme-tls/1", "h2", "http/1.1", "HTTP")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, "acme-tls%2f1\nh2\nhttp%2f1.1\n%48%54%54%50\n")

    def test_invalid_protocols_do_not_stop_the_others(self):
        status, out, err = ctl("alpn", "", "h2", "x" * 256)
        self.assertEqual(status, 1)
        self.assertEqual(out, "h2\n")
        self.assertEqual(err.count("1 to 255 bytes"), 2, err)

    def test_no_protocol_is_a_usage_error(self):
        status, out, err = ctl("alpn")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("sniproxyctl alpn", err)


# ---------------------------------------------------------------------------------------
# check, and sniproxyd -n

class CraftedDir(unittest.TestCase):
    """One hosts directory holding every kind of finding, built once for the class."""

    @classmethod
    def setUpClass(cls):
        cls.sockets = Sockets()
        cls.root = root = scratch_dir("c")
        cls.outside = scratch_dir("o")  # not in the tree
        s = cls.sockets
        # Valid, silent entries
        s.make(os.path.join(mkdir(root, "good.example"), "tls-socket"))
        os.symlink("good.example", os.path.join(root, "www.good.example"))  # an alias
        os.symlink("../good.example/tls-socket",
                   os.path.join(mkdir(root, "*.apps.example"), "tls-socket"))  # shared socket
        os.symlink("/good.example/tls-socket",  # absolute: resolved inside the tree (chroot)
                   os.path.join(mkdir(root, "_default"), "tls-socket"))
        s.make(os.path.join(mkdir(root, hashed_name("hashed.example")), "tls-socket"))
        s.make(os.path.join(mkdir(root, "xn--bcher-kva.example"), "tls-socket"))
        proxied = mkdir(root, "proxied.example")
        s.make(os.path.join(proxied, "tls-socket"))
        touch(os.path.join(proxied, "send-proxy-v2"))
        cls.silent = {"good.example", "www.good.example", "*.apps.example", "_default",
                      hashed_name("hashed.example"), "xn--bcher-kva.example", "proxied.example"}

        # Errors: names
        for name in ("Upper.example", "trail.example.", "bücher.example", "a_b.example",
                     "127.0.0.1", LONG_NAME):
            s.make(os.path.join(mkdir(root, name), "tls-socket"))
        # Errors: entries and their tls-socket
        mkdir(root, "nosock.example")
        touch(os.path.join(mkdir(root, "file.example"), "tls-socket"))
        os.symlink("../nowhere/tls-socket", os.path.join(mkdir(root, "dangling.example"), "tls-socket"))
        outside_socket = s.make(os.path.join(cls.outside, "backend.sock"))
        os.symlink(outside_socket, os.path.join(mkdir(root, "abs-out.example"), "tls-socket"))
        os.symlink("../../../backend.sock", os.path.join(mkdir(root, "climb.example"), "tls-socket"))
        os.symlink("/etc", os.path.join(root, "etc.example"))
        os.symlink("..", os.path.join(root, "up.example"))
        os.symlink("gone.example", os.path.join(root, "alias-gone.example"))
        os.symlink("loop.example", os.path.join(root, "loop.example"))
        os.symlink("README", os.path.join(root, "tofile.example"))
        both = mkdir(root, "both.example")
        s.make(os.path.join(both, "tls-socket"))
        touch(os.path.join(both, "send-proxy-v1"))
        touch(os.path.join(both, "send-proxy-v2"))
        # Warnings
        touch(os.path.join(root, "README"))
        extra = mkdir(root, "extra.example")
        s.make(os.path.join(extra, "tls-socket"))
        touch(os.path.join(extra, "notes.txt"))
        s.make(os.path.join(mkdir(root, "dead.example"), "tls-socket"), listening=False)
        s.make(os.path.join(mkdir(root, "closed.example", 0o700), "tls-socket"))
        s.make(os.path.join(mkdir(root, "ro.example"), "tls-socket"), mode=0o755)

        # (severity, entry as printed, pattern of the message): one line each, nothing else
        cls.expected = [
            ("error", "Upper.example", r"not a valid name.*rename it to upper\.example$"),
            ("error", "trail.example.", r"not a valid name.*trailing dot.*rename it to trail\.example$"),
            ("error", "b\\xc3\\xbccher.example", r"not a valid name.*A-label.*sniproxyctl hostname"),
            ("error", "a_b.example", r"not a valid name \(bad-char\)"),
            ("error", "127.0.0.1", r"not a valid name \(ip-literal\)"),
            ("error", LONG_NAME, r"never used: its tls-socket path does not fit in sun_path "
                                 r"\(120 > 107 bytes\): rename it to " + re.escape(hashed_name(LONG_NAME)) + "$"),
            ("error", "nosock.example", r"^no tls-socket$"),
            ("error", "file.example", r"tls-socket is not a socket \(it is a regular file\)"),
            ("error", "dangling.example", r"tls-socket is a dangling symlink \(dangling\.example/tls-socket -> "
                                          r"\.\./nowhere/tls-socket\)"),
            ("error", "abs-out.example", r"tls-socket leaves the hosts directory \(abs-out\.example/tls-socket -> "
                                         + re.escape(outside_socket) + r"\): the workers are chrooted"),
            ("error", "climb.example", r"tls-socket leaves the hosts directory \(climb\.example/tls-socket -> "
                                       r"\.\./\.\./\.\./backend\.sock\)$"),
            ("error", "etc.example", r"symlink leaves the hosts directory \(etc\.example -> /etc\)"),
            ("error", "up.example", r"symlink leaves the hosts directory \(up\.example -> \.\.\)"),
            ("error", "alias-gone.example", r"symlink is a dangling symlink \(alias-gone\.example -> gone\.example\)"),
            ("error", "loop.example", r"too many levels of symbolic links"),
            ("error", "tofile.example", r"symlink leads to README, which is a regular file, not a directory"),
            ("error", "both.example", r"both send-proxy-v1 and send-proxy-v2 exist"),
            ("warning", "README", r"unknown file \(a regular file, not a host directory\), ignored"),
            ("warning", "extra.example", r"^unknown file notes\.txt, ignored$"),
            ("warning", "dead.example", r"^tls-socket: nobody listens on it$"),
            ("warning", "closed.example", r"the worker user \(uid \d+, gid \d+\) cannot search closed\.example "
                                          r"\(.*\)"),
            ("warning", "ro.example", r"the worker user \(uid \d+, gid \d+\) cannot write ro\.example/tls-socket"),
        ]

    @classmethod
    def tearDownClass(cls):
        cls.sockets.close()
        shutil.rmtree(cls.root, ignore_errors=True)
        shutil.rmtree(cls.outside, ignore_errors=True)

    def assertFindings(self, out, expected, root=None):
        """Every expected finding on exactly one line with its severity, no other line but
        the summary, which counts them."""
        lines = out.splitlines()
        self.assertTrue(lines, "no output")
        body = lines[:-1]
        errors, warnings = summary_of(out)
        unmatched = list(body)
        for severity, entry, pattern in expected:
            hits = [l for l in body if l.startswith(f"{severity}: {entry}: ")
                    and re.search(pattern, l[len(f"{severity}: {entry}: "):])]
            self.assertEqual(len(hits), 1, f"{severity} for {entry!r} matching /{pattern}/ "
                                           f"expected once in:\n{out}")
            unmatched.remove(hits[0])
        self.assertEqual(unmatched, [], "unexpected findings:\n" + "\n".join(unmatched))
        for l in body:
            self.assertRegex(l, FINDING)
        self.assertEqual((errors, warnings),
                         (sum(e[0] == "error" for e in expected), sum(e[0] == "warning" for e in expected)))
        # directory findings first, then sorted by entry
        entries = [FINDING.match(l).group(2) for l in body]
        rest = [e for e in entries if e != root]
        self.assertEqual(entries[:len(entries) - len(rest)], [root] * (len(entries) - len(rest)))
        self.assertEqual(rest, sorted(rest, key=unescape))  # byte order of the real names


class Check(CraftedDir):

    def test_every_finding_on_its_line(self):
        status, out, err = ctl("check", "-u", WORKER_USER, self.root)
        self.assertFindings(out, self.expected)
        self.assertEqual(status, 1, out + err)
        self.assertEqual(err, "")

    def test_silent_entries_have_no_findings(self):
        _, out, _ = ctl("check", "-u", WORKER_USER, self.root)
        mentioned = {FINDING.match(l).group(2) for l in out.splitlines()[:-1]}
        self.assertEqual(mentioned & self.silent, set())

    def test_all_hashed_mode(self):
        root = scratch_dir("a")
        try:
            self.sockets.make(os.path.join(mkdir(root, "plain.example"), "tls-socket"))
            self.sockets.make(os.path.join(mkdir(root, hashed_name("plain2.example")), "tls-socket"))
            self.sockets.make(os.path.join(mkdir(root, "_default"), "tls-socket"))
            status, out, _ = ctl("check", "-a", "-u", WORKER_USER, root)
            self.assertFindings(out, [("error", "plain.example",
                                       r"never used with every name hashed \(-a\): rename it to "
                                       + re.escape(hashed_name("plain.example")) + "$")])
            self.assertEqual(status, 1)
            status, out, _ = ctl("check", "-u", WORKER_USER, root)  # without -a all is fine
            self.assertEqual((status, out), (0, "0 errors, 0 warnings\n"))
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_clean_dir_exits_0(self):
        root = scratch_dir("g")
        try:
            self.sockets.make(os.path.join(mkdir(root, "one.example"), "tls-socket"))
            os.symlink("one.example", os.path.join(root, "two.example"))
            status, out, err = ctl("check", "-u", WORKER_USER, root)
            self.assertEqual((status, out, err), (0, "0 errors, 0 warnings\n", ""))
            # warnings alone do not fail the check
            touch(os.path.join(root, "one.example", "notes"))
            self.sockets.make(os.path.join(mkdir(root, "dead.example"), "tls-socket"), listening=False)
            status, out, _ = ctl("check", "-u", WORKER_USER, root)
            self.assertFindings(out, [("warning", "dead.example", r"nobody listens"),
                                      ("warning", "one.example", r"unknown file notes")])
            self.assertTrue(out.endswith("\n0 errors, 2 warnings\n"), out)
            self.assertEqual(status, 0)
            # singular
            os.unlink(os.path.join(root, "one.example", "notes"))
            _, out, _ = ctl("check", "-u", WORKER_USER, root)
            self.assertTrue(out.endswith("\n0 errors, 1 warning\n"), out)
            os.mkdir(os.path.join(root, "Bad.example"))
            status, out, _ = ctl("check", "-u", WORKER_USER, root)
            self.assertTrue(out.endswith("\n1 error, 1 warning\n"), out)
            self.assertEqual(status, 1)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_empty_dir(self):
        root = scratch_dir("e")
        try:
            self.assertEqual(ctl("check", "-u", WORKER_USER, root), (0, "0 errors, 0 warnings\n", ""))
        finally:
            os.rmdir(root)

    def test_hosts_dir_itself(self):
        missing = os.path.join(harness.SCRATCH, "no-such-dir")
        status, out, _ = ctl("check", "-u", WORKER_USER, missing)
        self.assertEqual(status, 1)
        self.assertFindings(out, [("error", missing, r"cannot open the hosts directory: No such file")],
                            root=missing)
        regular = os.path.join(harness.SCRATCH, "regular-file")
        touch(regular)
        try:
            status, out, _ = ctl("check", "-u", WORKER_USER, regular)
            self.assertEqual(status, 1)
            self.assertFindings(out, [("error", regular, r"^not a directory$")], root=regular)
        finally:
            os.unlink(regular)
        root = scratch_dir("p")
        try:
            self.sockets.make(os.path.join(mkdir(root, "one.example"), "tls-socket"))
            os.chmod(root, 0o700)
            status, out, _ = ctl("check", "-u", WORKER_USER, root)
            self.assertFindings(out, [("warning", root, r"cannot search the hosts directory")], root=root)
            self.assertEqual(status, 0)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_symlinked_hosts_dir_is_followed(self):
        link = os.path.join(harness.SCRATCH, f"link{os.getpid()}")
        os.symlink(self.root, link)
        try:
            status, out, _ = ctl("check", "-u", WORKER_USER, link)
            self.assertEqual(status, 1)
            self.assertFindings(out, self.expected)
        finally:
            os.unlink(link)

    def test_usage_errors_exit_2(self):
        for args in (["check", "-u", "no-such-user-e2e", self.root], ["check", "-z", self.root],
                     ["check", self.root, self.root], ["check", "-u"]):
            with self.subTest(args=args):
                status, out, err = ctl(*args)
                self.assertEqual(status, 2, out + err)
                self.assertEqual(out, "")
                self.assertNotEqual(err, "")
        status, _, err = ctl("check", "-u", "no-such-user-e2e", self.root)
        self.assertIn("no-such-user-e2e: no such user", err)


class DaemonCheck(CraftedDir):
    """sniproxyd -n speaks like sniproxyctl check (same code, same worker user)."""

    def daemon_check(self, *args):
        p = run([SNIPROXYD, "-n"] + list(args))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_same_findings_as_sniproxyctl(self):
        status, out, err = self.daemon_check("-H", self.root, "-u", WORKER_USER)
        self.assertEqual(status, 1, out + err)
        self.assertFindings(out, self.expected)
        _, ctl_out, _ = ctl("check", "-u", WORKER_USER, self.root)
        self.assertEqual(out, ctl_out)

    def test_clean_dir_exits_0(self):
        root = scratch_dir("n")
        try:
            self.sockets.make(os.path.join(mkdir(root, "one.example"), "tls-socket"))
            os.symlink("one.example", os.path.join(root, "www.one.example"))
            self.sockets.make(os.path.join(mkdir(root, "_default"), "tls-socket"))
            status, out, err = self.daemon_check("-H", root, "-u", WORKER_USER, "-l", "127.0.0.1:8443")
            self.assertEqual((status, out), (0, "0 errors, 0 warnings\n"), err)
            # a warning alone still exits 0
            touch(os.path.join(root, "README"))
            status, out, err = self.daemon_check("-H", root, "-u", WORKER_USER)
            self.assertEqual(status, 0, out + err)
            self.assertTrue(out.endswith("0 errors, 1 warning\n"), out)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_all_hashed(self):
        root = scratch_dir("m")
        try:
            self.sockets.make(os.path.join(mkdir(root, "plain.example"), "tls-socket"))
            status, out, _ = self.daemon_check("-a", "-H", root, "-u", WORKER_USER)
            self.assertEqual(status, 1)
            self.assertFindings(out, [("error", "plain.example", r"never used with every name hashed.*"
                                       + re.escape(hashed_name("plain.example")))])
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_bad_options_are_findings(self):
        root = scratch_dir("b")
        try:
            status, out, _ = self.daemon_check("-H", root, "-u", "no-such-user-e2e", "-l", "nonsense")
            self.assertEqual(status, 1)
            lines = out.splitlines()
            self.assertTrue(any(l.startswith("error: -l: ") for l in lines), out)
            self.assertTrue(any(l.startswith("error: -u: no-such-user-e2e: no such user") for l in lines), out)
            self.assertEqual(summary_of(out), (2, 0))
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_missing_hosts_dir(self):
        missing = os.path.join(harness.SCRATCH, "no-such-hosts")
        status, out, _ = self.daemon_check("-H", missing, "-u", WORKER_USER)
        self.assertEqual(status, 1)
        self.assertFindings(out, [("error", missing, r"cannot open the hosts directory")], root=missing)


if __name__ == "__main__":
    harness.main()
