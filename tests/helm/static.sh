#!/usr/bin/env bash
# Static checks of the Helm chart (suite `helm`, TAP): installs the tools if needed
# (scripts/helm-tools), then runs static.js (lint, template matrix, schema validation of every
# rendered object, assertions, bad values).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${LG_SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
if ! TOOLS=$("$ROOT/scripts/helm-tools" install 2>"${TMPDIR:-/tmp}/lg-helm-tools.$$.log"); then
    echo "1..1"
    echo "not ok 1 - scripts/helm-tools install failed"
    sed 's/^/# /' "${TMPDIR:-/tmp}/lg-helm-tools.$$.log"
    rm -f "${TMPDIR:-/tmp}/lg-helm-tools.$$.log"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/lg-helm-tools.$$.log"
exec node "$HERE/static.js" "$ROOT/helm/lifeguard-reflector" "$TOOLS"
