#!/usr/bin/env bash
# Runs a compiler command that must be rejected for passing a column of another model: passes
# only when the compiler exits non-zero and names an incompatible type (any other failure,
# a missing header say, is not the rejection this test is about).
set -uo pipefail
out=$("$@" 2>&1)
rc=$?
if ((rc == 0)); then
    echo "the compiler accepted a column of another model"
    exit 1
fi
if ! grep -q "incompatible" <<<"$out"; then
    printf '%s\n' "$out"
    echo "the compiler failed for another reason"
    exit 1
fi
echo "rejected: $(grep -m1 "incompatible" <<<"$out")"
