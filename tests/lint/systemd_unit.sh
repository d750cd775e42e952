#!/usr/bin/env bash
# Lint: `systemd-analyze verify` on deploy/lifeguard-reflector.service.
#
# verify checks the unit offline (no systemd as PID 1 needed): syntax, every
# directive's value, the dependencies it names, and that ExecStart is an
# executable. The unit runs /usr/local/bin/lifeguard-reflector, which a
# checkout does not install, so the check runs on a temporary copy whose
# ExecStart points at the built binary ($LG_REFLECTOR_BIN); everything else is
# the unit as shipped. verify does not resolve User=/Group= (the `lifeguard`
# system user the unit's header tells operators to create), so that is not
# checked here. verify prints problems (an unknown key, a bad value) as
# warnings and still exits 0: any output counts as a failure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

UNIT=deploy/lifeguard-reflector.service
INSTALLED=/usr/local/bin/lifeguard-reflector

cd "$(lint_root)"
tap_plan 1
bin=${LG_REFLECTOR_BIN:-}
if ! command -v systemd-analyze >/dev/null; then
    tap_not_ok "systemd-analyze is not installed (scripts/bootstrap installs systemd)"
    tap_exit
fi
if [[ -z $bin || ! -x $bin ]]; then
    tap_not_ok "systemd-analyze verify: LG_REFLECTOR_BIN ('$bin') is not an executable"
    tap_exit
fi

dir=$(mktemp -d /tmp/lg-lint-unit.XXXXXX)
trap 'rm -rf -- "$dir"' EXIT
copy=$dir/${UNIT##*/}
n=0
while IFS= read -r line; do
    if [[ $line == "ExecStart=$INSTALLED "* ]]; then
        line="ExecStart=$bin ${line#"ExecStart=$INSTALLED "}"
        n=$((n + 1))
    fi
    printf '%s\n' "$line"
done <"$UNIT" >"$copy"
if ((n != 1)) || [[ $(grep -c '^ExecStart=' "$copy") != 1 ]]; then
    tap_not_ok "systemd-analyze verify: $UNIT has no single 'ExecStart=$INSTALLED ...' line"
    grep -n '^ExecStart' "$UNIT" | tap_diag
    tap_exit
fi

rc=0
out=$(systemd-analyze verify "$copy" 2>&1) || rc=$?
if ((rc == 0)) && [[ -z $out ]]; then
    tap_ok "systemd-analyze verify: $UNIT (ExecStart=$bin)"
else
    tap_not_ok "systemd-analyze verify: $UNIT (exit status $rc)"
    tap_diag <<<"$out"
fi
tap_exit
