#!/bin/sh
# deps.sh: installs the Debian 12 packages sniproxyd needs to build and test, only those
# that are missing (so a second run is quick and needs no network).
set -eu
packages="build-essential autoconf automake pkg-config libevent-dev libcap-dev libseccomp-dev
libidn2-dev libb2-dev libssl-dev catch2 openssl curl gnutls-bin python3 mandoc procps iproute2 passwd
haproxy socat prometheus"
[ $# -gt 0 ] && packages="$packages $*"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing packages:$missing (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "deps.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
    # tests/e2e/metrics_test.py starts its own Prometheus on a free port; the one the
    # package's postinst may have started (where policy-rc.d allows it) is not wanted.
    case " $missing " in *" prometheus "*)
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            systemctl disable --now prometheus >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/prometheus ]; then
            /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi ;;
    esac
fi
