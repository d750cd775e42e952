# shellcheck shell=bash
# TAP helpers for the lint checks (sourced, not run). Every check prints a
# TAP plan and one `ok`/`not ok` line per thing it checked; diagnostics are
# `# ` comment lines. A check exits non-zero iff a line was `not ok`.

tap_n=0
tap_failed=0

tap_plan() {
    echo "1..$1"
}

tap_ok() {
    tap_n=$((tap_n + 1))
    echo "ok $tap_n - $*"
}

tap_not_ok() {
    tap_n=$((tap_n + 1))
    tap_failed=$((tap_failed + 1))
    echo "not ok $tap_n - $*"
}

# Standard input as TAP diagnostics, at most 80 lines.
tap_diag() {
    awk -v max=80 'NR <= max { print "# " $0 } END { if (NR > max) print "# ... (" NR - max " more lines)" }'
}

tap_exit() {
    exit $((tap_failed > 0))
}

# The source tree: $LG_SOURCE_ROOT (set by meson), else two levels up from here.
lint_root() {
    if [[ -n ${LG_SOURCE_ROOT:-} ]]; then
        echo "$LG_SOURCE_ROOT"
    else
        (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    fi
}

# NUL-separated paths (relative to the root, which must be the cwd) of the
# tracked files matching the git pathspecs "$@" (e.g. '*.c'); without a git
# checkout, the files under the tree whose names match, outside build*/ and
# .git/.
lint_files() {
    local pattern args=()
    if [[ -e .git ]] && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z -- "$@"
        return
    fi
    for pattern in "$@"; do
        if ((${#args[@]})); then
            args+=(-o)
        fi
        args+=(-name "$pattern")
    done
    find . \( -path './build*' -o -path ./.git \) -prune -o -type f \( "${args[@]}" \) \
        -printf '%P\0' | sort -z
}
