#!/usr/bin/env bash
# Runs the integration tests against the plain build and, in two halves,
# against the AddressSanitizer + UBSan build, all side by side (`make test`):
# most of a test's time is spent waiting on sockets and timers, so the runs
# share the cores of a small machine well, and the sanitized build is the
# slower one. The halves are two sets of test files of about the same size.
# Each run hands out ports from its own part of 20000-31999
# (TEGAMI_TEST_PORTS, tests/integration/conftest.py), so no run can take a
# port another gave a daemon. Each run's output goes to a log, printed when
# all are done; the exit status is non-zero when any failed.
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
pytest=(/usr/bin/python3 -m pytest -q "$@")

# The test files in two halves of about equal size, largest first.
half=(0 0)
set_a=() set_b=()
while read -r size file; do
    if [ "${half[0]}" -le "${half[1]}" ]; then
        set_a+=("$file"); half[0]=$(( half[0] + size ))
    else
        set_b+=("$file"); half[1]=$(( half[1] + size ))
    fi
done < <(wc -c tests/integration/test_*.py | grep -v ' total$' | sort -rn)

sanitized_env=(TEGAMI_BUILD="$asan" TEGAMI_SANITIZED=1
               ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
               UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
names=(plain sanitized-1 sanitized-2)
logs=("$build/integration.log" "$asan/integration-1.log" "$asan/integration-2.log")
pids=()

echo "integration: plain run ($build) and two sanitized runs ($asan) side by side"
start=$(date +%s)
env TEGAMI_BUILD="$build" TEGAMI_TEST_PORTS=20000-23999 \
    "${pytest[@]}" tests/integration >"${logs[0]}" 2>&1 &
pids+=($!)
env "${sanitized_env[@]}" TEGAMI_TEST_PORTS=24000-27999 \
    "${pytest[@]}" "${set_a[@]}" >"${logs[1]}" 2>&1 &
pids+=($!)
env "${sanitized_env[@]}" TEGAMI_TEST_PORTS=28000-31999 \
    "${pytest[@]}" "${set_b[@]}" >"${logs[2]}" 2>&1 &
pids+=($!)
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM

failed=0
rcs=()
for i in 0 1 2; do
    wait "${pids[$i]}"
    rcs+=($?)
    [ "${rcs[$i]}" -eq 0 ] || failed=1
done
for i in 0 1 2; do
    echo "== integration, ${names[$i]} run (exit ${rcs[$i]}): ${logs[$i]}"
    cat "${logs[$i]}"
done
echo "integration: $(( $(date +%s) - start )) s; exit: plain ${rcs[0]}," \
     "sanitized ${rcs[1]} and ${rcs[2]}"
exit $failed
