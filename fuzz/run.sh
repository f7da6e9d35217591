#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each, with its dictionary and seed
# corpus. Usage: fuzz/run.sh BUILD_DIR SECONDS     (make fuzz FUZZ_SECONDS=N)
#
# The seeds in fuzz/corpus/<target>/ are copied into BUILD_DIR/fuzz-corpus/
# <target>/, where the fuzzer adds what it finds (kept between runs, never in
# the source tree). A crash, leak or sanitizer report leaves its input in
# BUILD_DIR/fuzz-artifacts/<target>/ and makes this script exit 1; reproduce
# it with: BUILD_DIR/fuzz/<target> FILE
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
seconds=$2
case $seconds in
    ''|*[!0-9]*|0) echo "run.sh: SECONDS must be a positive number, not '$seconds'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build directory '$1'" >&2; exit 2; }

# target -> dictionary
targets=(fuzz_addr fuzz_smtp_parse fuzz_sasl fuzz_pop3_wire fuzz_smtp_reply fuzz_dsn fuzz_spool)
declare -A dict=([fuzz_addr]=addr.dict [fuzz_smtp_parse]=smtp.dict [fuzz_sasl]=sasl.dict
                 [fuzz_pop3_wire]=pop3_wire.dict [fuzz_smtp_reply]=smtp_reply.dict
                 [fuzz_dsn]=dsn.dict [fuzz_spool]=spool.dict)

failed=()
for t in "${targets[@]}"; do
    bin=$build/fuzz/$t
    if [ ! -x "$bin" ]; then
        echo "run.sh: $bin is missing (configure with CC=clang -DTEGAMI_FUZZ=ON and build)" >&2
        exit 2
    fi
    corpus=$build/fuzz-corpus/$t
    artifacts=$build/fuzz-artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    cp -n "$here/corpus/$t/"* "$corpus/" 2>/dev/null || true
    echo "== $t: ${seconds}s, dict ${dict[$t]}, corpus $corpus"
    # halt_on_error/abort_on_error: any sanitizer report is a crash with an artifact.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1} \
        "$bin" -max_total_time="$seconds" -max_len=1024 -timeout=10 \
        -dict="$here/${dict[$t]}" -artifact_prefix="$artifacts/" \
        -print_final_stats=1 "$corpus" 2>"$build/fuzz-$t.log"
    rc=$?
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::new_units_added)' "$build/fuzz-$t.log" || true
    if [ $rc -ne 0 ]; then
        echo "!! $t failed (exit $rc); log: $build/fuzz-$t.log" >&2
        grep -E 'ERROR|SUMMARY|fuzz_[a-z_]+: |^input: |Test unit written' "$build/fuzz-$t.log" | head -20 >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "run.sh: crashes in: ${failed[*]} (inputs in $build/fuzz-artifacts/)" >&2
    exit 1
fi
echo "run.sh: no crash in ${targets[*]} (${seconds}s each)"
