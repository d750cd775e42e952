#!/bin/sh
# Runs one libFuzzer harness for a bounded time on a scratch copy of its seed corpus and
# prints the one-line verdict scripts/test understands. Crash inputs are kept in
# ARTIFACTS (a build directory) for reproduction: ./fuzz_x ARTIFACTS/crash-...
#   run_fuzzer.sh FUZZER SEED_DIR ARTIFACTS SECONDS
set -u
fuzzer=$1 seeds=$2 artifacts=$3 seconds=$4
work=$(mktemp -d /tmp/lg-fuzz.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
# Leak checks stay on: the harnesses free everything they allocate.
# libFuzzer narrates every corpus change; keep its log and show the end of it.
log="$artifacts/$(basename "$fuzzer").log"
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -max_len=16384 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seeds" >"$log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
	tail -n 12 "$log"
else
	tail -n 60 "$log"
fi
if [ "$rc" -eq 0 ]; then
	echo "1 passed, 0 failed"
else
	echo "fuzz: $(basename "$fuzzer") failed with status $rc; inputs in $artifacts" >&2
	echo "0 passed, 1 failed"
fi
exit "$rc"
