#!/usr/bin/env bash
# Runs the integration tests against the plain build and against the
# AddressSanitizer + UBSan build side by side (`make test`): most of a test's
# time is spent waiting on sockets and timers, so the two runs share the two
# cores of a small machine well. Each run hands out ports from its own half
# of 20000-32000 (TEGAMI_TEST_PORTS, tests/integration/conftest.py), so
# neither can take a port the other gave a daemon. Each run's output goes to
# a log in its build directory, printed when both are done; the exit status
# is non-zero when either failed.
#
#   scripts/integration.sh BUILD_DIR ASAN_BUILD_DIR [pytest args...]
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR ASAN_BUILD_DIR [pytest args...]" >&2
    exit 2
fi
build=$(cd "$1" && pwd) || exit 2
asan=$(cd "$2" && pwd) || exit 2
shift 2
cd "$(dirname "$0")/.."
pytest=(/usr/bin/python3 -m pytest -q "$@" tests/integration)

echo "integration: plain run ($build) and sanitized run ($asan) side by side"
start=$(date +%s)
TEGAMI_BUILD=$build TEGAMI_TEST_PORTS=20000-25999 \
    "${pytest[@]}" >"$build/integration.log" 2>&1 &
plain=$!
TEGAMI_BUILD=$asan TEGAMI_SANITIZED=1 TEGAMI_TEST_PORTS=26000-31999 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "${pytest[@]}" >"$asan/integration.log" 2>&1 &
sanitized=$!
trap 'kill $plain $sanitized 2>/dev/null' INT TERM

wait $plain
rc_plain=$?
wait $sanitized
rc_sanitized=$?

for run in "plain:$build:$rc_plain" "sanitized:$asan:$rc_sanitized"; do
    IFS=: read -r name dir rc <<<"$run"
    echo "== integration, $name run (exit $rc): $dir/integration.log"
    cat "$dir/integration.log"
done
echo "integration: $(( $(date +%s) - start )) s; plain exit $rc_plain, sanitized exit $rc_sanitized"
[ "$rc_plain" -eq 0 ] && [ "$rc_sanitized" -eq 0 ]
