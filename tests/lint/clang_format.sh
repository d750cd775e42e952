#!/usr/bin/env bash
# Lint: every tracked C file (*.c, *.h) is formatted the way .clang-format
# says: `clang-format --dry-run -Werror`. One TAP line per top-level
# directory; the diagnostics name the offending files (fix: clang-format -i).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(lint_root)"
if ! command -v clang-format >/dev/null; then
    tap_plan 1
    tap_not_ok "clang-format is not installed (scripts/bootstrap installs it)"
    tap_exit
fi
if [[ ! -f .clang-format ]]; then
    tap_plan 1
    tap_not_ok ".clang-format is missing at the top of the tree"
    tap_exit
fi

declare -A groups=()
mapfile -d '' -t files < <(lint_files '*.c' '*.h')
for f in "${files[@]}"; do
    if [[ -f $f ]]; then
        g=${f%%/*}
        [[ $f == */* ]] || g=.
        groups[$g]+="$f"$'\n'
    fi
done
if ((${#groups[@]} == 0)); then
    tap_plan 1
    tap_not_ok "clang-format: no C files found (git ls-files '*.c' '*.h')"
    tap_exit
fi

mapfile -t names < <(printf '%s\n' "${!groups[@]}" | sort)
tap_plan "${#names[@]}"
out=$(mktemp)
trap 'rm -f -- "$out"' EXIT
for g in "${names[@]}"; do
    mapfile -t list < <(printf '%s' "${groups[$g]}")
    rc=0
    clang-format --style=file --dry-run -Werror -- "${list[@]}" >"$out" 2>&1 || rc=$?
    if ((rc == 0)) && [[ ! -s $out ]]; then
        tap_ok "clang-format: $g/ (${#list[@]} files)"
    else
        bad=$(grep -oE '^[^:]+:[0-9]+:[0-9]+: (error|warning)' "$out" | cut -d: -f1 | sort -u |
            wc -l)
        tap_not_ok "clang-format: $g/ ($bad of ${#list[@]} files need clang-format -i)"
        tap_diag <"$out"
    fi
done
tap_exit
