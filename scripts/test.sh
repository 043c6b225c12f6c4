#!/bin/sh
# test.sh: installs what is missing, builds, and runs the whole test suite (unit tests and
# end-to-end tests against real TLS peers). Exit status 0 only if everything passed.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
status=0
make -j"$(nproc)" check || status=$?
# One plain summary line for humans and CI, from automake's per-test results.
pass=$(grep -l '^:test-result: PASS' tests/*.trs tests/e2e/*.trs 2>/dev/null | wc -l)
fail=$(grep -l -E '^:test-result: (FAIL|ERROR|XPASS)' tests/*.trs tests/e2e/*.trs 2>/dev/null | wc -l)
skip=$(grep -l '^:test-result: SKIP' tests/*.trs tests/e2e/*.trs 2>/dev/null | wc -l)
if [ "$status" -ne 0 ]; then
    for log in tests/*.log tests/e2e/*.log; do
        [ -f "$log" ] && grep -q -E '^(FAIL|ERROR)' "$log" && { echo "=== $log"; tail -n 60 "$log"; }
    done
fi
echo "$pass passed, $fail failed, $skip skipped"
exit "$status"
