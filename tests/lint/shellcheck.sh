#!/usr/bin/env bash
# Lint: shellcheck at its strictest default severity (style) over the shell
# scripts: scripts/*, .ci/run and every tracked *.sh. One TAP line per script.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(lint_root)"
if ! command -v shellcheck >/dev/null; then
    tap_plan 1
    tap_not_ok "shellcheck is not installed (scripts/bootstrap installs it)"
    tap_exit
fi

scripts=()
for f in scripts/* .ci/run; do
    if [[ -f $f ]]; then
        scripts+=("$f")
    fi
done
mapfile -d '' -t more < <(lint_files '*.sh')
for f in "${more[@]}"; do
    if [[ -f $f ]]; then
        scripts+=("$f")
    fi
done
if ((${#scripts[@]} == 0)); then
    tap_plan 1
    tap_not_ok "shellcheck: no scripts found"
    tap_exit
fi

tap_plan "${#scripts[@]}"
out=$(mktemp)
trap 'rm -f -- "$out"' EXIT
for f in "${scripts[@]}"; do
    # -x: follow `source` directives (tests/lint/*.sh source lib.sh).
    if shellcheck -x -S style -- "$f" >"$out" 2>&1; then
        tap_ok "shellcheck: $f"
    else
        tap_not_ok "shellcheck: $f"
        tap_diag <"$out"
    fi
done
tap_exit
