#!/bin/sh
# deb_test.sh: the Debian package as a user meets it. Builds the .deb from a scratch clone
# of the committed tree (nothing is built in this one), runs lintian on it, installs it
# system-wide, starts it as README.Debian tells a sysvinit user (or with systemctl where
# systemd runs), routes a TLS connection through it to an openssl s_server backend in the
# installed hosts directory, stops it, purges the package and checks that nothing of it is
# left running or on disk (but the _sniproxyd user, which Debian policy keeps).
# Needs root on Debian 12 or later; changes the system, so CI runs it after the others.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
start=$(date +%s)
say() { echo "deb_test: [$(($(date +%s) - start)) s] $*"; }
fail() {
    echo "deb_test: FAILED: $*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and purges a package)"
if dpkg-query -W -f='${Status}' sniproxyd 2>/dev/null | grep -q "ok installed"; then
    fail "a sniproxyd package is already installed; purge it first (apt-get purge sniproxyd)"
fi
[ ! -e /var/lib/sniproxyd ] || fail "/var/lib/sniproxyd exists (an installation from source?): move it away first"

exe=/usr/sbin/sniproxyd
hosts=/var/lib/sniproxyd/hosts
name="deb-test.example"
tmp=$(mktemp -d /tmp/sniproxyd-deb.XXXXXX)
backend=""
dropin=/run/systemd/system/sniproxyd.service.d
if [ -d /run/systemd/system ]; then init=systemd; else init=sysvinit; fi

# Pids of every process running the installed binary: the parent and its workers (which
# are exec'd from it; after the purge their exe would read "/usr/sbin/sniproxyd (deleted)").
installed_pids() {
    for p in /proc/[0-9]*; do
        case "$(readlink "$p/exe" 2>/dev/null)" in "$exe" | "$exe (deleted)") echo "${p#/proc/}" ;; esac
    done
}
service_stop() {
    if [ "$init" = systemd ]; then systemctl stop sniproxyd.service; else /etc/init.d/sniproxyd stop; fi
}
cleanup() {
    status=$?
    [ -n "$backend" ] && kill "$backend" 2>/dev/null
    if dpkg-query -W -f='${Status}' sniproxyd 2>/dev/null | grep -q "ok installed"; then
        service_stop >/dev/null 2>&1 || true
        rm -rf "${hosts:?}/$name"
        apt-get purge -y -q sniproxyd >/dev/null 2>&1 || true
    fi
    rm -rf "$dropin" "$tmp"
    [ "$status" -eq 0 ] || echo "deb_test: failed after $(($(date +%s) - start)) s" >&2
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

say "build dependencies and packaging tools"
apt_opts="-y -q --no-install-recommends -o DPkg::Lock::Timeout=120"
sh scripts/deps.sh devscripts debhelper lintian fakeroot
git clone -q "$top" "$tmp/src"
# README: apt-get build-dep ./ then dpkg-buildpackage -us -uc -b.
# shellcheck disable=SC2086
(cd "$tmp/src" && apt-get build-dep $apt_opts ./) >"$tmp/build-dep.log" 2>&1 ||
    { cat "$tmp/build-dep.log"; fail "apt-get build-dep ./"; }

say "dpkg-buildpackage -us -uc -b (nocheck)"
(cd "$tmp/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
    >"$tmp/build.log" 2>&1 || { tail -n 60 "$tmp/build.log"; fail "dpkg-buildpackage"; }
deb=$(ls "$tmp"/sniproxyd_*.deb)
# debian/rules clean must take the clone back to what git has (debian/clean, dh_autoreconf).
(cd "$tmp/src" && debian/rules clean) >"$tmp/clean.log" 2>&1 || { cat "$tmp/clean.log"; fail "debian/rules clean"; }
[ -z "$(git -C "$tmp/src" status --porcelain --ignored)" ] ||
    { git -C "$tmp/src" status --short --ignored; fail "debian/rules clean left files behind"; }

say "lintian"
lint=0
lintian --fail-on error "$tmp"/sniproxyd_*.changes >"$tmp/lintian.log" 2>&1 || lint=$?
grep -v '^running with root' "$tmp/lintian.log" || echo "deb_test: lintian: no tags"
[ "$lint" -eq 0 ] || fail "lintian reports errors (exit $lint)"

say "apt-get install $deb"
# shellcheck disable=SC2086
apt-get install $apt_opts "$deb" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "apt-get install"; }
for f in "$exe" /usr/sbin/sniproxyctl /etc/init.d/sniproxyd; do
    [ -x "$f" ] || fail "$f is not installed executable"
done
for f in /usr/share/man/man8/sniproxyd.8.gz /usr/share/man/man8/sniproxyctl.8.gz \
    /usr/share/man/man5/sniproxyd.hosts.5.gz /etc/default/sniproxyd \
    /lib/systemd/system/sniproxyd.service /lib/systemd/system/sniproxyd.socket; do
    [ -f "$f" ] || fail "$f is not installed"
done
grep -q "^ExecStart=$exe -d " /lib/systemd/system/sniproxyd.service || fail "the unit does not start $exe"
getent passwd _sniproxyd >/dev/null || fail "the user _sniproxyd was not created"
gid=$(id -g _sniproxyd)
if [ "$gid" -eq 0 ] || [ "$(getent group "$gid" | cut -d: -f1)" != _sniproxyd ]; then
    fail "_sniproxyd's primary group is not _sniproxyd"
fi
if [ "$(readlink "$hosts")" != hosts.1 ] || [ ! -d "$hosts/" ]; then
    fail "$hosts is not a link to the directory hosts.1"
fi
[ -z "$(installed_pids)" ] || fail "the package started the daemon on installation"
! ls /etc/rc[2-5].d/S*sniproxyd >/dev/null 2>&1 || fail "the package enabled the init script"
# README.Debian's way to start it at boot (purge must take the links away again).
update-rc.d sniproxyd enable || fail "update-rc.d sniproxyd enable"
ls /etc/rc2.d/S*sniproxyd >/dev/null 2>&1 || fail "update-rc.d sniproxyd enable made no start link"
"$exe" -V >/dev/null 2>&1 || fail "$exe -V failed"

say "a backend for $name in the installed hosts directory"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$name" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1 || fail "openssl req"
install -d -m 0755 "$hosts/$name"
# OpenSSL 3.0 refuses socket paths of 32 bytes or more, hence the relative path.
(cd "$hosts/$name" && exec openssl s_server -unix tls-socket -unlink -www -quiet \
    -cert "$tmp/cert.pem" -key "$tmp/key.pem" </dev/null >"$tmp/backend.log" 2>&1) &
backend=$!
i=0
until [ -S "$hosts/$name/tls-socket" ]; do
    i=$((i + 1))
    [ "$i" -le 50 ] || { cat "$tmp/backend.log"; fail "the backend did not create its socket"; }
    sleep 0.1
done
chgrp _sniproxyd "$hosts/$name/tls-socket"
chmod 0660 "$hosts/$name/tls-socket"
sniproxyctl check -u _sniproxyd "$hosts" || fail "sniproxyctl check $hosts"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
opts="-w 1 -l 127.0.0.1:$port"
if [ "$init" = systemd ]; then
    say "systemctl start sniproxyd.service (SNIPROXYD_OPTS=$opts in a runtime drop-in)"
    mkdir -p "$dropin"
    printf '[Service]\nEnvironment="SNIPROXYD_OPTS=%s"\n' "$opts" >"$dropin/deb-test.conf"
    systemctl daemon-reload
    systemctl start sniproxyd.service || { systemctl status sniproxyd.service; fail "systemctl start"; }
else
    say "/etc/init.d/sniproxyd start (SNIPROXYD_OPTS=\"$opts\" in /etc/default/sniproxyd)"
    sed -i "s|^SNIPROXYD_OPTS=.*|SNIPROXYD_OPTS=\"$opts\"|" /etc/default/sniproxyd
    /etc/init.d/sniproxyd check || fail "/etc/init.d/sniproxyd check"
    /etc/init.d/sniproxyd start || fail "/etc/init.d/sniproxyd start"
    /etc/init.d/sniproxyd status || fail "/etc/init.d/sniproxyd status after start"
fi

say "openssl s_client -connect 127.0.0.1:$port -servername $name"
reply=""
i=0
until printf '%s' "$reply" | grep -q '^HTTP/1.0 200 ok'; do
    i=$((i + 1))
    [ "$i" -le 20 ] || { printf '%s\n' "$reply"; fail "no reply from the backend through sniproxyd"; }
    [ "$i" -eq 1 ] || sleep 0.25
    reply=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -quiet \
        -connect "127.0.0.1:$port" -servername "$name" 2>&1 | tr -d '\r') || true
done
printf '%s\n' "$reply" | grep -q 's_server' || fail "the reply is not the backend's page"
echo "deb_test: the backend answered: $(printf '%s\n' "$reply" | grep '^HTTP/')"
pids=$(installed_pids)
[ "$(echo "$pids" | wc -w)" -ge 2 ] || fail "expected a parent and a worker running $exe, found: $pids"

say "stop"
service_stop || fail "stopping the service"
for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then fail "process $pid of sniproxyd still runs after stop"; fi
done
[ -z "$(installed_pids)" ] || fail "sniproxyd still runs after stop: $(installed_pids)"

kill "$backend"
wait "$backend" 2>/dev/null || true
backend=""
rm -rf "${hosts:?}/$name" "$dropin"

say "apt-get purge sniproxyd"
apt-get purge -y -q -o DPkg::Lock::Timeout=120 sniproxyd >"$tmp/purge.log" 2>&1 ||
    { cat "$tmp/purge.log"; fail "apt-get purge"; }
if dpkg-query -W -f='${Status}' sniproxyd 2>/dev/null | grep -qv "not-installed"; then
    fail "dpkg still knows sniproxyd: $(dpkg-query -W -f='${Status}' sniproxyd)"
fi
for f in "$exe" /usr/sbin/sniproxyctl /etc/init.d/sniproxyd /etc/default/sniproxyd \
    /lib/systemd/system/sniproxyd.service /var/lib/sniproxyd /run/sniproxyd.pid; do
    if [ -e "$f" ] || [ -L "$f" ]; then fail "$f is left after purge"; fi
done
! ls /etc/rc[0-6S].d/*sniproxyd >/dev/null 2>&1 || fail "rc.d links are left after purge"
[ -z "$(installed_pids)" ] || fail "sniproxyd still runs after purge: $(installed_pids)"
getent passwd _sniproxyd >/dev/null || fail "purge removed the user _sniproxyd (policy keeps it)"
say "passed"
