#!/bin/sh
# lifeguard-entrypoint: runs lifeguard-reflector as one member of a StatefulSet (Helm chart
# helm/lifeguard-reflector) or of the compose file, deriving everything per pod from its name.
#
#   lifeguard-entrypoint [run [EXTRA REFLECTOR FLAGS...]]
#   lifeguard-entrypoint ARGS...              (anything else: lifeguard-reflector ARGS...)
#   lifeguard-entrypoint setup                (one-time schema set-up, with this pod's settings)
#   lifeguard-entrypoint check-one-leader     (the chart's `helm test`)
#
# Environment (the chart sets all of it; the compose file the first five):
#   POD_NAME                      e.g. lifeguard-reflector-2: ordinal 2 -> node id 3
#   LIFEGUARD_PEER_DOMAIN         DNS suffix of every member, e.g.
#                                 lifeguard-reflector-headless.NS.svc.cluster.local
#                                 (empty: the bare pod names resolve, as in compose)
#   LIFEGUARD_BOOTSTRAP_MEMBERS   how many ordinals form the cluster at its first start
#   LIFEGUARD_RAFT_PORT, LIFEGUARD_HTTP_PORT   (7000, 8080)
#   LIFEGUARD_DATA_DIR            raft state (a volume per pod)
#   LIFEGUARD_CONFIG              JSON settings file (optional)
#   LIFEGUARD_AUTO_REJOIN         true: an empty data dir in an existing cluster (a new ordinal,
#                                 or a volume that was lost) is removed and re-added as a
#                                 member automatically; false: the pod fails with the
#                                 reflector's message and an operator decides
#   LIFEGUARD_ADMIN_TOKEN         needed for the automatic membership changes
#   LIFEGUARD_REDIS_HOST/_PORT/_DB/_PASSWORD   composed into LIFEGUARD_REDIS (the host may be
#                                 a name: it is resolved here, the reflector wants an address)
#   LIFEGUARD_WAIT_LEADER_S       check-one-leader: how long to wait for agreement (120)
#
# Start-up decisions (run):
#   1. node id = ordinal + 1; peers = ordinals 0..max(BOOTSTRAP_MEMBERS, own)-1 by DNS name.
#   2. data dir has raft state -> start normally (a restart, possibly with a new IP).
#   3. empty, id <= BOOTSTRAP_MEMBERS -> start; the reflector bootstraps unless a peer knows
#      an existing cluster, in which case it exits 3 (see 4).
#   4. empty and id > BOOTSTRAP_MEMBERS (scale up), or exit 3 above with AUTO_REJOIN -> remove
#      this id from the cluster (if present), start with --join, ask the leader to add it
#      (POST /members via `lifeguard-reflector members add`, token from the Secret) until it
#      is a voter, then keep running.
# SIGTERM/SIGINT are passed to the reflector (it hands leadership off before exiting).
set -eu

BIN=${LIFEGUARD_BIN:-lifeguard-reflector}
RAFT_PORT=${LIFEGUARD_RAFT_PORT:-7000}
HTTP_PORT=${LIFEGUARD_HTTP_PORT:-8080}
DATA_DIR=${LIFEGUARD_DATA_DIR:-/var/lib/lifeguard-reflector}
MEMBERS=${LIFEGUARD_BOOTSTRAP_MEMBERS:-3}
child=

log() {
	printf '{"ts":"%s","level":"info","event":"entrypoint","msg":"%s"}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

die() {
	printf '{"ts":"%s","level":"error","event":"entrypoint","msg":"%s"}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
	exit 2
}

# The DNS name of ordinal $1.
member_host() {
	if [ -n "${LIFEGUARD_PEER_DOMAIN:-}" ]; then
		printf '%s-%s.%s' "$SET" "$1" "$LIFEGUARD_PEER_DOMAIN"
	else
		printf '%s-%s' "$SET" "$1"
	fi
}

# JSON string escaping for the few characters that matter in a password.
json_escape() {
	printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'
}

identity() {
	[ -n "${POD_NAME:-}" ] || POD_NAME=$(hostname)
	ORDINAL=${POD_NAME##*-}
	SET=${POD_NAME%-*}
	case $ORDINAL in
	'' | *[!0-9]*) die "POD_NAME $POD_NAME does not end in -<ordinal>" ;;
	esac
	case $MEMBERS in
	'' | *[!0-9]* | 0) die "LIFEGUARD_BOOTSTRAP_MEMBERS must be a positive integer" ;;
	esac
	NODE_ID=$((ORDINAL + 1))
	n=$MEMBERS
	[ "$NODE_ID" -gt "$n" ] && n=$NODE_ID
	peers=
	i=0
	while [ "$i" -lt "$n" ]; do
		host=$(member_host "$i")
		peers="$peers${peers:+,}{\"id\":$((i + 1)),\"raft_address\":\"$host:$RAFT_PORT\",\"http_address\":\"$host:$HTTP_PORT\"}"
		i=$((i + 1))
	done
	SELF=$(member_host "$ORDINAL")
	export LIFEGUARD_NODE_ID="$NODE_ID" LIFEGUARD_PEERS="[$peers]" LIFEGUARD_DATA_DIR="$DATA_DIR"
	export LIFEGUARD_HTTP_ADDRESS="${LIFEGUARD_HTTP_ADDRESS:-0.0.0.0:$HTTP_PORT}"
}

redis_setting() {
	[ -n "${LIFEGUARD_REDIS_HOST:-}" ] || return 0
	addr=$(getent ahostsv4 "$LIFEGUARD_REDIS_HOST" | awk 'NR == 1 { print $1 }')
	[ -n "$addr" ] || die "cannot resolve LIFEGUARD_REDIS_HOST $LIFEGUARD_REDIS_HOST"
	redis="{\"host\":\"$addr\",\"port\":${LIFEGUARD_REDIS_PORT:-6379},\"db\":${LIFEGUARD_REDIS_DB:-0}"
	if [ -n "${LIFEGUARD_REDIS_PASSWORD:-}" ]; then
		redis="$redis,\"password\":\"$(json_escape "$LIFEGUARD_REDIS_PASSWORD")\""
	fi
	export LIFEGUARD_REDIS="$redis}"
}

has_state() {
	[ -e "$DATA_DIR/metadata1" ] || [ -e "$DATA_DIR/metadata2" ]
}

forward() {
	if [ -n "$child" ]; then
		kill -"$1" "$child" 2>/dev/null || true
	fi
}

# Runs the reflector in the background (signals forwarded) and sets rc to its exit status.
start_child() {
	if [ -n "${LIFEGUARD_CONFIG:-}" ]; then
		"$BIN" --config "$LIFEGUARD_CONFIG" "$@" &
	else
		"$BIN" "$@" &
	fi
	child=$!
}

wait_child() {
	rc=0
	while :; do
		wait "$child" && rc=0 || rc=$?
		kill -0 "$child" 2>/dev/null || break
	done
	child=
}

# Any member's HTTP URL that answers (ourselves excluded).
any_peer_url() {
	i=0
	n=$MEMBERS
	[ "$NODE_ID" -gt "$n" ] && n=$NODE_ID
	while [ "$i" -lt "$n" ]; do
		if [ "$i" != "$ORDINAL" ]; then
			url="http://$(member_host "$i"):$HTTP_PORT"
			if "$BIN" status --url "$url" --timeout-ms 2000 >/dev/null 2>&1; then
				printf '%s' "$url"
				return 0
			fi
		fi
		i=$((i + 1))
	done
	return 1
}

# Remove this id (if present), start with --join, add it back until the leader says yes.
rejoin() {
	[ -n "${LIFEGUARD_ADMIN_TOKEN:-}" ] || die "automatic rejoin needs LIFEGUARD_ADMIN_TOKEN"
	until url=$(any_peer_url); do
		log "node $NODE_ID: waiting for a member to answer"
		sleep 2
	done
	log "node $NODE_ID: empty data dir in an existing cluster: removing and re-adding it via $url"
	# The old membership must be gone before the new one is added: a member that kept its
	# vote after losing its state is what the refusal to bootstrap protects against.
	until out=$("$BIN" members remove --url "$url" --id "$NODE_ID" 2>&1); do
		case $out in
		*'no such member'*) break ;;
		esac
		log "node $NODE_ID: remove: $(printf '%s' "$out" | tr -d '"\n')"
		sleep 2
		url=$(any_peer_url) || true
	done
	start_child --join "$@"
	until "$BIN" members add --url "$url" --id "$NODE_ID" \
		--raft "$SELF:$RAFT_PORT" --http "$SELF:$HTTP_PORT" >/dev/null 2>&1; do
		kill -0 "$child" 2>/dev/null || break
		sleep 2
		url=$(any_peer_url) || true
	done
	log "node $NODE_ID: added to the cluster as $SELF:$RAFT_PORT"
	wait_child
	exit "$rc"
}

run() {
	identity
	redis_setting
	trap 'forward TERM' TERM
	trap 'forward INT' INT
	if has_state; then
		log "node $NODE_ID: raft state found: restarting as $SELF"
	elif [ "$NODE_ID" -gt "$MEMBERS" ]; then
		log "node $NODE_ID: new ordinal beyond the $MEMBERS bootstrap members: joining"
		rejoin "$@"
	fi
	start_child "$@"
	wait_child
	if [ "$rc" = 3 ] && [ "${LIFEGUARD_AUTO_REJOIN:-true}" = true ]; then
		rejoin "$@"
	fi
	exit "$rc"
}

# helm test: every member answers and all of them agree on exactly one leader.
check_one_leader() {
	identity
	deadline=$(($(date +%s) + ${LIFEGUARD_WAIT_LEADER_S:-120}))
	n=${LIFEGUARD_REPLICAS:-$MEMBERS}
	while :; do
		ok=1
		leader=
		i=0
		while [ "$i" -lt "$n" ]; do
			url="http://$(member_host "$i"):$HTTP_PORT"
			out=$("$BIN" status --url "$url" --timeout-ms 2000 2>&1 | grep '^cluster via') || out=
			case $out in
			*"$n/$n peers reachable; all reachable peers agree"*) ;;
			*) ok=0 ;;
			esac
			this=$(printf '%s' "$out" | sed -n 's/.*leader node \([0-9]*\) in term.*/\1/p')
			[ -n "$leader" ] && [ "$this" != "$leader" ] && ok=0
			leader=$this
			i=$((i + 1))
		done
		if [ "$ok" = 1 ] && [ -n "$leader" ]; then
			echo "ok: $n members agree on exactly one leader: node $leader"
			return 0
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "FAIL: no single agreed leader across $n members; last view: $out" >&2
			return 1
		fi
		sleep 2
	done
}

case ${1:-run} in
setup)
	# One-time schema set-up (`lifeguard-reflector setup`) with this pod's settings.
	identity
	shift
	if [ -n "${LIFEGUARD_CONFIG:-}" ]; then
		exec "$BIN" setup --config "$LIFEGUARD_CONFIG" "$@"
	fi
	exec "$BIN" setup "$@"
	;;
run)
	[ $# -gt 0 ] && shift
	run "$@"
	;;
check-one-leader) check_one_leader ;;
*) exec "$BIN" "$@" ;; # anything else: the reflector itself (--help, status, members ...)
esac
