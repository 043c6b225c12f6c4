#!/bin/sh
# lint_test.sh: the manual pages are lint-clean, every shell script parses (and passes
# ShellCheck when it is installed), and the systemd units verify when systemd-analyze exists.
set -u
top=${srcdir:-.}
build=$(pwd)
status=0
if command -v mandoc >/dev/null; then
    for page in "$build"/man/sniproxyd.8 "$build"/man/sniproxyctl.8 "$build"/man/sniproxyd.hosts.5; do
        out=$(mandoc -Tlint -Wwarning "$page" 2>&1) || { echo "mandoc: $page"; echo "$out"; status=1; }
    done
else
    echo "skipped: mandoc not installed (man pages not linted)"
fi
for script in "$top"/scripts/*.sh "$top"/.ci/run "$top"/contrib/make-demo-hosts.sh \
    "$build"/contrib/init.d/sniproxyd "$build"/contrib/s6/sniproxyd/run "$top"/tests/lint_test.sh \
    "$top"/debian/sniproxyd.postinst "$top"/debian/sniproxyd.postrm "$top"/debian/sniproxyd.prerm; do
    sh -n "$script" || { echo "sh -n failed: $script"; status=1; }
    if command -v shellcheck >/dev/null; then
        shellcheck -s sh "$script" || status=1
    fi
done
if command -v systemd-analyze >/dev/null && [ -x "$build/src/sniproxyd" ]; then
    tmp=$(mktemp -d)
    sed "s|^ExecStart=[^ ]*|ExecStart=$build/src/sniproxyd|" "$build/contrib/systemd/sniproxyd.service" >"$tmp/sniproxyd.service"
    cp "$top/contrib/systemd/sniproxyd.socket" "$tmp/"
    out=$(systemd-analyze verify --man=no "$tmp/sniproxyd.socket" "$tmp/sniproxyd.service" 2>&1) ||
        { echo "systemd-analyze verify:"; echo "$out"; status=1; }
    rm -rf "$tmp"
else
    echo "note: systemd-analyze not available, units not verified"
fi
[ $status -eq 0 ] && echo "lint: all clean"
exit $status
