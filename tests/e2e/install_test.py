#!/usr/bin/env python3
"""install_test.py: what `make install` gives a user, and that `make uninstall` takes it back.

Runs `make install DESTDIR=<scratch>` in the build tree (TOP_BUILDDIR, default ../.. from
here; `make check` passes it), then checks that the programs, manual pages, service files
and documents land where configure said, that no @placeholder@ survived substitution, that
the installed pages, rc scripts and systemd units pass their linters, and that the INSTALLED
sniproxyd routes real TLS connections (openssl s_server backends) by name. A second install
into a fresh DESTDIR is undone with `make uninstall`, which must leave no file behind.

Works in an out-of-tree build with a read-only source tree (make distcheck): everything is
written under DESTDIR in the scratch directory, and configure's prefix is only a path inside
it. The parent make's MAKEFLAGS (jobserver descriptors, TESTS=...) are not passed on.
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
import harness  # noqa: E402
from harness import DaemonTestCase, cert, scratch_dir, tls_fetch

TOP_BUILDDIR = os.path.abspath(os.environ.get("TOP_BUILDDIR")
                               or os.path.join(harness.HERE, "..", ".."))
MAKE = os.environ.get("MAKE") or "make"
# The installation directories as the build tree's Makefile expands them.
DIR_VARIABLES = ("sbindir", "mandir", "pkgdatadir", "docdir", "DEFAULT_HOSTS_DIR",
                 "DEFAULT_USER", "PACKAGE_VERSION")
PLACEHOLDER = re.compile(rb"@[A-Za-z_][A-Za-z0-9_]*@")

# What a user gets, relative to the directory variable it belongs to.
EXPECTED = {
    "sbindir": ["sniproxyd", "sniproxyctl"],
    "mandir": ["man8/sniproxyd.8", "man8/sniproxyctl.8", "man5/sniproxyd.hosts.5"],
    "pkgdatadir": ["contrib/systemd/sniproxyd.service", "contrib/systemd/sniproxyd.socket",
                   "contrib/init.d/sniproxyd", "contrib/rc.d/sniproxyd",
                   "contrib/s6/sniproxyd/run", "contrib/inetd.conf",
                   "contrib/hosts.example/README", "contrib/make-demo-hosts.sh"],
    "docdir": ["README.md", "COPYING", "DEPLOYMENT.md", "ARCHITECTURE.md"],
}


def _make_env():
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR"):
        env.pop(k, None)
    return env


def run_make(*args, timeout=300):
    r = subprocess.run([MAKE, "-C", TOP_BUILDDIR, "--no-print-directory"] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, env=_make_env(),
                       timeout=timeout)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if r.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed ({r.returncode}):\n{out}")
    return out


def make_variables():
    """The Makefile's values of DIR_VARIABLES, fully expanded by make itself."""
    extra = os.path.join(scratch_dir("m"), "print.mk")
    with open(extra, "w") as f:
        f.write("install-test-print-vars:\n")
        for v in DIR_VARIABLES:
            f.write(f"\t@echo '{v}=$({v})'\n")
    out = run_make("-s", "-f", "Makefile", "-f", extra, "install-test-print-vars", timeout=60)
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    missing = [v for v in DIR_VARIABLES if not values.get(v)]
    if missing:
        raise AssertionError(f"the Makefile in {TOP_BUILDDIR} does not define {missing}:\n{out}")
    return values


def files_under(root):
    """Every non-directory path under root, relative to it."""
    found = []
    for dirpath, _, files in os.walk(root):
        found += [os.path.relpath(os.path.join(dirpath, n), root) for n in files]
    return sorted(found)


def _check_build_tree():
    if not os.path.isfile(os.path.join(TOP_BUILDDIR, "Makefile")):
        raise unittest.SkipTest(f"skipped: no configured build tree at {TOP_BUILDDIR} "
                                "(set TOP_BUILDDIR)")


class InstalledTree(DaemonTestCase):
    """One `make install DESTDIR=...` shared by the checks of the installed files."""

    @classmethod
    def setUpClass(cls):
        _check_build_tree()
        cls.vars = make_variables()
        cls.destdir = scratch_dir("inst")
        cls.install_log = run_make("install", "DESTDIR=" + cls.destdir)

    @classmethod
    def installed(cls, var, rel=""):
        return os.path.join(cls.destdir + cls.vars[var], rel)

    def test_expected_files_are_installed(self):
        for var, rels in EXPECTED.items():
            for rel in rels:
                with self.subTest(path=f"$({var})/{rel}"):
                    path = self.installed(var, rel)
                    self.assertTrue(os.path.isfile(path),
                                    f"{path} not installed; installed files:\n"
                                    + "\n".join(files_under(self.destdir)))
                    self.assertGreater(os.path.getsize(path), 0, path)
        for prog in EXPECTED["sbindir"]:
            mode = os.stat(self.installed("sbindir", prog)).st_mode
            self.assertTrue(mode & stat.S_IXUSR, f"{prog} is not executable ({oct(mode)})")

    def test_nothing_installed_outside_the_prefix_directories(self):
        # Every installed file is one of the expected ones (a stray file such as a unit test
        # program or an unsubstituted .in template would be a packaging bug).
        expected = sorted(os.path.relpath(self.installed(var, rel), self.destdir)
                          for var, rels in EXPECTED.items() for rel in rels)
        self.assertEqual(files_under(self.destdir), expected)

    def test_no_placeholders_left_in_installed_pages_and_service_files(self):
        texts = ([self.installed("mandir", r) for r in EXPECTED["mandir"]]
                 + [self.installed("pkgdatadir", r) for r in EXPECTED["pkgdatadir"]])
        for path in texts:
            with self.subTest(path=path), open(path, "rb") as f:
                data = f.read()
                self.assertEqual(PLACEHOLDER.findall(data), [], f"{path}: unsubstituted")
        # The pages name the configured defaults, and the service files the installed binary.
        with open(self.installed("mandir", "man8/sniproxyd.8")) as f:
            page = f.read()
        self.assertIn(self.vars["DEFAULT_HOSTS_DIR"], page)
        self.assertIn(self.vars["DEFAULT_USER"], page)
        for rel in ("contrib/systemd/sniproxyd.service", "contrib/init.d/sniproxyd",
                    "contrib/rc.d/sniproxyd"):
            with self.subTest(path=rel), open(self.installed("pkgdatadir", rel)) as f:
                self.assertIn(self.vars["sbindir"] + "/sniproxyd", f.read())

    def test_installed_programs_run(self):
        # sniproxyd -V prints the version; sniproxyctl has no -V, its -h must work.
        for prog, arg, want in (("sniproxyd", "-V", self.vars["PACKAGE_VERSION"]),
                                ("sniproxyctl", "-h", "sniproxyctl check")):
            with self.subTest(prog=prog):
                r = subprocess.run([self.installed("sbindir", prog), arg], capture_output=True,
                                   timeout=10, stdin=subprocess.DEVNULL)
                out = (r.stdout + r.stderr).decode(errors="replace")
                self.assertEqual(r.returncode, 0, out)
                self.assertIn(want, out)

    def test_installed_daemon_routes_real_tls_by_name(self):
        self.hosts.openssl("example.com", "example.com")
        self.hosts.openssl("other.example", "other.example")
        binary = self.installed("sbindir", "sniproxyd")
        d = self.start_daemon(binary=binary)
        # It is really the installed file that runs (not the build tree's).
        self.assertEqual(os.path.realpath(f"/proc/{d.pid}/exe"), os.path.realpath(binary))
        for name in ("example.com", "other.example"):
            with self.subTest(sni=name):
                der, body, port = tls_fetch(d.port, name)
                self.assertEqual(der, cert(name).der, f"{name}: answered by the wrong backend")
                self.assertIn(b"HTTP/1.0 200 ok", body)
                log = d.connection_log(port)
                self.assertEqual((log["sni"], log["route"], log["result"]), (name, name, "ok"))
        # The installed checker agrees the directory is fine.
        r = subprocess.run([self.installed("sbindir", "sniproxyctl"), "check", "-u",
                            harness.WORKER_USER, self.hosts.root], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode(errors="replace"))

    # --- linters on what was installed -------------------------------------------------

    def test_installed_man_pages_are_lint_clean(self):
        if not harness.have("mandoc"):
            self.skipTest("skipped: mandoc not installed")
        for rel in EXPECTED["mandir"]:
            with self.subTest(page=rel):
                r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", self.installed("mandir", rel)],
                                   capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode(errors="replace"))

    def test_installed_rc_scripts_parse_and_pass_shellcheck(self):
        scripts = [("contrib/init.d/sniproxyd", "sh"), ("contrib/s6/sniproxyd/run", "sh"),
                   ("contrib/make-demo-hosts.sh", "sh"), ("contrib/rc.d/sniproxyd", "ksh")]
        for rel, dialect in scripts:
            path = self.installed("pkgdatadir", rel)
            with self.subTest(script=rel):
                # OpenBSD's ksh script parses with any POSIX sh too (it uses nothing else).
                r = subprocess.run(["sh", "-n", path], capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
                if harness.have("shellcheck"):
                    r = subprocess.run(["shellcheck", "-s", dialect, path], capture_output=True,
                                       timeout=60)
                    self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))

    def test_installed_systemd_units_verify(self):
        if not harness.have("systemd-analyze"):
            self.skipTest("skipped: systemd-analyze not installed")
        # verify checks that ExecStart= exists: point it at the DESTDIR copy (the only change).
        units = scratch_dir("units")
        service = self.installed("pkgdatadir", "contrib/systemd/sniproxyd.service")
        with open(service) as f:
            text = f.read()
        configured = self.vars["sbindir"] + "/sniproxyd"
        self.assertIn("ExecStart=" + configured + " ", text)
        with open(os.path.join(units, "sniproxyd.service"), "w") as f:
            f.write(text.replace("ExecStart=" + configured,
                                 "ExecStart=" + self.installed("sbindir", "sniproxyd")))
        shutil.copy(self.installed("pkgdatadir", "contrib/systemd/sniproxyd.socket"), units)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            os.path.join(units, "sniproxyd.socket"),
                            os.path.join(units, "sniproxyd.service")],
                           capture_output=True, timeout=60, env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
        out = (r.stdout + r.stderr).decode(errors="replace")
        if r.returncode != 0 and re.search(r"Failed to (initialize|connect|set up)|No such file or "
                                           r"directory.*(/run/systemd|manager)", out):
            self.skipTest("skipped: systemd-analyze verify cannot run here: " + out.strip()[:200])
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(out.strip(), "", "systemd-analyze verify complained")


class Uninstall(unittest.TestCase):
    def test_uninstall_removes_every_installed_file(self):
        _check_build_tree()
        destdir = scratch_dir("uninst")
        run_make("install", "DESTDIR=" + destdir)
        self.assertGreaterEqual(len(files_under(destdir)), 16, "install put too few files")
        run_make("uninstall", "DESTDIR=" + destdir)
        self.assertEqual(files_under(destdir), [], "left behind by make uninstall")


if __name__ == "__main__":
    harness.main()
