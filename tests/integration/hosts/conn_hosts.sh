#!/usr/bin/env bash
# Runs the conn_hosts test binary in a private mount namespace with its own /etc/hosts, so a
# name can resolve to several addresses without touching the machine's file.
#   conn_hosts.sh BINARY [ARGS...]
set -euo pipefail
bin=$1
shift
hosts=$(mktemp /tmp/lg-hosts.XXXXXX)
trap 'rm -f -- "$hosts"' EXIT
# ::1 first: the test PostgreSQL listens on 127.0.0.1 only, so the first address refuses.
printf '%s\n' '127.0.0.1 localhost' '::1 lg-multi' '127.0.0.1 lg-multi' \
    '::1 lg-nowhere' '127.0.0.2 lg-nowhere' >"$hosts"
chmod 644 "$hosts"
# shellcheck disable=SC2016 # $1 and $@ belong to the inner sh
unshare --mount -- sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' \
    sh "$hosts" "$bin" "$@"
