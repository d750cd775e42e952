#!/usr/bin/env bash
# The shared library exports the public lg_ API and nothing else (internal lg__ symbols and
# statics stay hidden behind -fvisibility=hidden).
set -euo pipefail
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
    grep -vE '^lg_[a-z]' | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' || true)
internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -E '^lg__' || true)
public=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -cE '^lg_[a-z]' || true)
if [[ -n $bad || -n $internal || $public -lt 50 ]]; then
    echo "unexpected exports: ${bad} ${internal} (public: $public)"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "exports: $public public lg_ symbols, nothing else"
echo "1 passed, 0 failed"
