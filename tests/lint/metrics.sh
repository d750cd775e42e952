#!/usr/bin/env bash
# Lint: `promtool check metrics` on the live /metrics of a real 3-node
# lifeguard-reflector cluster, scraped from the leader and from a follower.
#
# The leader runs the coherence pipeline (PostgreSQL and Redis configured) and
# has propagated a change before it is scraped, so its text carries every
# coherence metric: connections, the outbox and Redis samples, the counters
# and the propagation histogram with observations.
#
# Needs LG_REFLECTOR_BIN (meson) and LG_TEST_PG_DSN (scripts/services, as
# exported by scripts/test). Private to this run: a database created on that
# PostgreSQL, a Redis started in a temp dir, ports from `scripts/services
# freeport`, the nodes' configs, data and logs in the temp dir. On exit the
# nodes are stopped (SIGTERM, then SIGKILL), Redis is killed, the database
# dropped and the temp dir removed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WAIT_SECONDS=60
CHECKS=(
    "3-node cluster: the leader runs the coherence pipeline and propagated a change"
    "leader /metrics carries the coherence metrics and a propagation histogram"
    "promtool check metrics: leader /metrics"
    "promtool check metrics: follower /metrics"
)

root=$(lint_root)
services=$root/scripts/services
bin=${LG_REFLECTOR_BIN:-}
dsn=${LG_TEST_PG_DSN:-}
dir=
db=
pids=()
http=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local pid deadline
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 20))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $dir ]]; then
        "$services" redis kill "$dir/redis" >/dev/null 2>&1 || true
    fi
    if [[ -n $db ]]; then
        psql -qX "$dsn" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [[ -n $dir ]]; then
        rm -rf -- "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Every check not reported yet fails with reason $1; the nodes' logs follow.
fail_rest() {
    local i
    for ((i = tap_n; i < ${#CHECKS[@]}; i++)); do
        tap_not_ok "${CHECKS[i]} ($1)"
    done
    for ((i = 1; i <= ${#pids[@]}; i++)); do
        echo "node $i (http ${http[i - 1]}), last lines of its log:"
        tail -n 15 -- "$dir/node$i.log" 2>/dev/null || true
    done | tap_diag
    tap_exit
}

# GET http://ADDR/PATH: the body on stdout; fails unless the answer is 200.
http_get() {
    python3 - "http://$1$2" <<'EOF'
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
EOF
}

# Runs "$@" with its output in $dir/out; on failure, fails every check left.
step() {
    if ! "$@" >"$dir/out" 2>&1; then
        tap_diag <"$dir/out"
        fail_rest "failed: $*"
    fi
}

tap_plan "${#CHECKS[@]}"
for tool in promtool python3 psql; do
    command -v "$tool" >/dev/null || fail_rest "$tool is not installed (scripts/bootstrap)"
done
[[ -n $bin && -x $bin ]] || fail_rest "LG_REFLECTOR_BIN ('$bin') is not an executable"
[[ -n $dsn ]] || fail_rest "LG_TEST_PG_DSN is not set: run through scripts/test"

dir=$(mktemp -d /tmp/lg-lint-metrics.XXXXXX)
redis_port=$("$services" freeport)
step "$services" redis start "$dir/redis" "$redis_port"
db=lg_lint_metrics_$$
step psql -qX -v ON_ERROR_STOP=1 "$dsn" -c "CREATE DATABASE $db"
dbdsn="$dsn dbname=$db"

peers=()
for i in 1 2 3; do
    raft=127.0.0.1:$("$services" freeport)
    http+=("127.0.0.1:$("$services" freeport)")
    peers+=("{\"id\": $i, \"raft_address\": \"$raft\", \"http_address\": \"${http[i - 1]}\"}")
done
# write_config I: $dir/nodeI.json.
# shellcheck disable=SC2317 # invoked through step
write_config() {
    python3 - "$dir/node$1.json" "$1" "$dir/data$1" "$dbdsn" "$redis_port" "${peers[@]}" <<'EOF'
import json
import sys

path, node, data, dsn, redis_port = sys.argv[1:6]
config = {
    "node_id": int(node),
    "data_dir": data,
    "peers": [json.loads(p) for p in sys.argv[6:]],
    "postgres": dsn,
    "redis": {"host": "127.0.0.1", "port": int(redis_port)},
    "poll_interval_ms": 200,
}
with open(path, "w") as f:
    json.dump(config, f)
EOF
}
for i in 1 2 3; do
    step write_config "$i"
done

step "$bin" setup --config "$dir/node1.json"
step psql -qX -v ON_ERROR_STOP=1 "$dbdsn" -c "CREATE TABLE lint_items (id int PRIMARY KEY, n int)"
step "$bin" reflect --config "$dir/node1.json" public.lint_items
for i in 1 2 3; do
    "$bin" --config "$dir/node$i.json" 2>"$dir/node$i.log" &
    pids+=("$!")
done

# The node answering 200 on /leader whose /metrics shows a running coherence
# session (connected and listening); its index (0-based) in $leader.
find_leader() {
    local i
    for i in 0 1 2; do
        if http_get "${http[i]}" /leader >/dev/null 2>&1 &&
            http_get "${http[i]}" /metrics >"$dir/leader.prom" 2>/dev/null &&
            grep -qx 'lifeguard_reflector_coherence_leading 1' "$dir/leader.prom" &&
            grep -qx 'lifeguard_reflector_postgres_listening 1' "$dir/leader.prom"; then
            leader=$i
            return 0
        fi
    done
    return 1
}

leader=
deadline=$((SECONDS + WAIT_SECONDS))
until find_leader; do
    ((SECONDS < deadline)) || fail_rest "no leader with a coherence session in ${WAIT_SECONDS}s"
    sleep 0.2
done
step psql -qX -v ON_ERROR_STOP=1 "$dbdsn" \
    -c "INSERT INTO lint_items SELECT g, g FROM generate_series(1, 3) g"
# Wait for the change to reach Redis and for the leader's periodic samples of
# the outbox and of Redis (their metrics appear once sampled).
populated() {
    find_leader &&
        grep -qE '^lifeguard_reflector_changes_total [1-9]' "$dir/leader.prom" &&
        grep -qE '^lifeguard_reflector_outbox_pending [0-9]' "$dir/leader.prom" &&
        grep -qE '^lifeguard_reflector_redis_evicted_keys [0-9]' "$dir/leader.prom"
}
until populated; do
    ((SECONDS < deadline)) || fail_rest "the change was not propagated in ${WAIT_SECONDS}s"
    sleep 0.2
done
tap_ok "${CHECKS[0]} (leader: node $((leader + 1)))"

missing=()
for family in postgres_connected postgres_listening redis_connected redis_evicted_keys \
    coherence_leading outbox_pending changes_total; do
    grep -q "^# TYPE lifeguard_reflector_$family " "$dir/leader.prom" || missing+=("$family")
done
if ! grep -qE '^# TYPE lifeguard_reflector_propagation[a-z_]* histogram$' "$dir/leader.prom" ||
    ! grep -qE '^lifeguard_reflector_propagation[a-z_]*_count [1-9]' "$dir/leader.prom"; then
    missing+=("a propagation histogram with observations")
fi
if ((${#missing[@]} == 0)); then
    tap_ok "${CHECKS[1]}"
else
    tap_not_ok "${CHECKS[1]} (missing: ${missing[*]})"
    tap_diag <"$dir/leader.prom"
fi

follower=
for ((t = 0; t < WAIT_SECONDS * 5 && ${#follower} == 0; t++)); do
    for i in 0 1 2; do
        if ((i != leader)) && http_get "${http[i]}" /metrics >"$dir/follower.prom" 2>/dev/null &&
            grep -qx 'lifeguard_reflector_is_leader 0' "$dir/follower.prom" &&
            grep -qx 'lifeguard_reflector_leader_known 1' "$dir/follower.prom"; then
            follower=$i
            break
        fi
    done
    [[ -n $follower ]] || sleep 0.2
done

for role in leader follower; do
    if [[ $role == follower && -z $follower ]]; then
        fail_rest "no follower that knows the leader"
    fi
    check=${CHECKS[tap_n]}
    node=$((${!role} + 1))
    if promtool check metrics <"$dir/$role.prom" >"$dir/out" 2>&1; then
        tap_ok "$check (node $node)"
    else
        tap_not_ok "$check (node $node)"
        tap_diag <"$dir/out"
    fi
done
tap_exit
