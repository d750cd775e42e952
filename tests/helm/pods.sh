#!/usr/bin/env bash
# Pod simulation of helm/lifeguard-reflector (suite `helm`, TAP): the chart rendered for 3
# replicas, each pod a real lifeguard-reflector (started by the image's entrypoint,
# deploy/entrypoint.sh) in its own network namespace on a private bridge, with its own
# /etc/hosts (ip netns exec mounts /etc/netns/NAME/hosts) standing in for cluster DNS.
# Command, args, env (Secret values, the pod name), ports, probe paths and the ConfigMap come
# from the rendered objects (podspec.js); mount paths are mapped below a per-pod directory and
# the process runs with the rendered runAsUser.
#
# Steps (each one TAP line with its duration; no timing thresholds):
#   1. the cluster forms: every pod agrees on one leader, all voters, readiness probe 200;
#   2. the `helm test` pod (its own namespace) finds exactly one leader;
#      (and every metric the PrometheusRule alerts on is exported by the leader);
#   3. the leader is killed (SIGKILL, as a node loss) and another one is elected;
#   4. the killed pod comes back under the same name with a NEW IP and rejoins as a voter;
#   5. scale up: a 4th ordinal joins by itself (admin API, token from the Secret) as a voter;
#   6. scale down: `members remove` of ordinal 3, then its pod stops; 3 voters, one leader;
#   7. rolling upgrade: every pod restarted in turn (SIGTERM), leader last, each ready before
#      the next;
#   8. a pod whose volume was lost refuses to bootstrap and is re-added automatically;
#   9. all pods stop (SIGTERM) and no log shows a sanitizer report (the asan flavour).
# PostgreSQL and Redis (scripts/services, on the host's 127.0.0.1) are reached through a relay
# on the bridge address (relay.py): pod traffic stays on the private bridge.
# Cleanup (trap): every process, namespace, veth, the bridge, /etc/netns/NAME and temp dirs.
# The step functions run through `step`, which shellcheck cannot follow:
# shellcheck disable=SC2317
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${LG_SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
BIN=${LG_REFLECTOR_BIN:-$ROOT/build/test-normal/reflector/lifeguard-reflector}
WAIT_S=${LG_HELM_WAIT_S:-60}

tap_n=0
tap_failed=0
ok() {
    tap_n=$((tap_n + 1))
    echo "ok $tap_n - $*"
}
not_ok() {
    tap_n=$((tap_n + 1))
    tap_failed=$((tap_failed + 1))
    echo "not ok $tap_n - $*"
}
diag() { sed 's/^/# /'; }

if ((EUID != 0)) || ! command -v ip >/dev/null; then
    echo "1..0 # SKIP needs root and iproute2 (ip netns)"
    exit 0
fi
[[ -x $BIN ]] || {
    echo "1..1"
    not_ok "lifeguard-reflector binary $BIN is missing"
    exit 1
}
TOOLS=$("$ROOT/scripts/helm-tools" install)

# Unique names: interface names are limited to 15 characters.
tag=$(($$ % 100000))
net=$((($$ % 200) + 20))
PREFIX="lgh$tag"
BRIDGE="${PREFIX}br"
BRIDGE_IP="10.213.$net.1"
WORK=$(mktemp -d /tmp/lg-helm-pods.XXXXXX)
chmod 755 "$WORK"
SVC_ENV=
declare -A PID=() IPADDR=()
POD_ENV=() POD_CMD=() POD_USER=() POD_NS=
RELAY=
namespaces=()

cleanup() {
    set +e
    for k in "${!PID[@]}"; do
        kill -KILL -- "-${PID[$k]}" 2>/dev/null
        kill -KILL "${PID[$k]}" 2>/dev/null
    done
    [[ -n $RELAY ]] && kill "$RELAY" 2>/dev/null
    wait 2>/dev/null
    for ns in "${namespaces[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns delete "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
        ip link delete "${ns}h" 2>/dev/null
    done
    ip link delete "$BRIDGE" 2>/dev/null
    if [[ -n $SVC_ENV ]]; then
        "$ROOT/scripts/services" down "$SVC_ENV" >/dev/null 2>&1
    fi
    if ((tap_failed > 0)); then
        for f in "$WORK"/*.log; do
            [[ -f $f ]] || continue
            echo "# --- $(basename "$f") (last 25 lines)"
            tail -n 25 "$f" | diag
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- services -------------------------------------------------------------------------
if [[ -z ${LG_TEST_PG_PORT:-} || -z ${LG_TEST_REDIS_PORT:-} ]]; then
    SVC_ENV=$WORK/services.env
    "$ROOT/scripts/services" up "$SVC_ENV" --replicas 0 >/dev/null
    set -a
    # shellcheck disable=SC1090 # written just above
    . "$SVC_ENV"
    set +a
fi

# --- network --------------------------------------------------------------------------
ip link add "$BRIDGE" type bridge
ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
python3 "$HERE/relay.py" "$BRIDGE_IP" "$LG_TEST_PG_PORT" "$LG_TEST_REDIS_PORT" \
    >"$WORK/relay.log" 2>&1 &
RELAY=$!

# A namespace NAME with IP on the bridge (veth NAMEh on the host side).
netns_up() {
    local ns=$1 addr=$2
    ip netns add "$ns"
    namespaces+=("$ns")
    ip link add "${ns}h" type veth peer name "${ns}p"
    ip link set "${ns}h" master "$BRIDGE" up
    ip link set "${ns}p" netns "$ns"
    ip -n "$ns" link set "${ns}p" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "$BRIDGE_IP"
    mkdir -p "/etc/netns/$ns"
    : >"/etc/netns/$ns/hosts"
}

netns_down() {
    local ns=$1
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$ns"
    ip link delete "${ns}h" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
}

# --- the rendered chart ---------------------------------------------------------------
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
PG_CONNINFO=$(printf '%s' "${LG_TEST_PG_DSN:-host=127.0.0.1 port=$LG_TEST_PG_PORT user=postgres dbname=postgres}" |
    sed "s/127\.0\.0\.1/$BRIDGE_IP/g; s/localhost/$BRIDGE_IP/g")
REDIS_NAME=redis.services.svc.cluster.local
t0=$(date +%s%N)
"$TOOLS/bin/helm" template rf "$ROOT/helm/lifeguard-reflector" --namespace sim \
    --set replicaCount=3 --set "auth.adminToken=$TOKEN" --set-string "auth.postgres=$PG_CONNINFO" \
    --set "redis.host=$REDIS_NAME" --set "redis.port=$LG_TEST_REDIS_PORT" \
    --set config.electionTimeoutMs=1000 --set config.heartbeatTimeoutMs=100 \
    >"$WORK/rendered.yaml"
node "$HERE/podspec.js" "$TOOLS" "$WORK/rendered.yaml" "$WORK/spec"
SET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["statefulset"])' "$WORK/spec/member.json")
DOMAIN=$(python3 -c 'import json,sys
for e in json.load(open(sys.argv[1]))["env"]:
    if e["name"] == "LIFEGUARD_PEER_DOMAIN": print(e["value"])' "$WORK/spec/member.json")
read -r HTTP_PORT RUN_AS < <(python3 -c 'import json,sys
s = json.load(open(sys.argv[1])); print(s["ports"]["http"], s.get("runAsUser") or 0)' "$WORK/spec/member.json")
READY_PATH=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["probes"]["readiness"])' "$WORK/spec/member.json")
mkdir -p "$WORK/bin"
ln -s "$ROOT/deploy/entrypoint.sh" "$WORK/bin/lifeguard-entrypoint"
ln -s "$BIN" "$WORK/bin/lifeguard-reflector"
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
echo "# rendered and extracted in $(ms "$t0") ms: StatefulSet $SET, peers *.$DOMAIN"

pod_ns() { echo "${PREFIX}p$1"; }

# Every pod's hosts file: all pods by name (cluster DNS) plus Redis on the bridge.
write_hosts() {
    local ns k text
    text="127.0.0.1 localhost"$'\n'"$BRIDGE_IP $REDIS_NAME"$'\n'
    for k in "${!IPADDR[@]}"; do
        text+="${IPADDR[$k]} $SET-$k.$DOMAIN $SET-$k"$'\n'
    done
    for ns in "${namespaces[@]}"; do
        # Same inode (truncate and write): the bind mount inside running pods sees it.
        [[ -d /etc/netns/$ns ]] && printf '%s' "$text" >"/etc/netns/$ns/hosts"
    done
    return 0
}

# Sets POD_ENV, POD_CMD, POD_USER, POD_NS for pod ordinal $1 (spec $2: member or test).
pod_setup() {
    local k=$1 kind=${2:-member} root
    POD_NS=$(pod_ns "$k")
    [[ $kind == test ]] && POD_NS="${PREFIX}t"
    root=$WORK/pod-$k
    [[ $kind == test ]] && root=$WORK/pod-test
    mkdir -p "$root"
    mapfile -d '' -t POD_ENV < <(python3 - "$WORK/spec/$kind.json" "$SET-$k" "$root" "$WORK/spec/files/$kind" <<'EOF'
import json, os, shutil, sys
spec, pod, root, files = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
# Volumes: mountPath -> root/mountPath (a PVC and an emptyDir are plain directories that
# survive as long as the pod's directory; a ConfigMap is copied from the rendered object).
mapped = {}
for mount, kind in spec["mounts"].items():
    target = os.path.join(root, mount.lstrip("/"))
    if kind == "configmap":
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(files, mount.lstrip("/")), target)
    else:
        os.makedirs(target, exist_ok=True)
    mapped[mount] = target
def remap(v):
    for mount, target in mapped.items():
        if v == mount or v.startswith(mount + "/"):
            return target + v[len(mount):]
    return v
for e in spec["env"]:
    value = pod if e.get("fieldPath") == "metadata.name" else remap(e["value"])
    sys.stdout.write(f'{e["name"]}={value}\0')
EOF
)
    mapfile -d '' -t POD_CMD < <(python3 -c 'import json,sys
sys.stdout.write("".join(c + "\0" for c in json.load(open(sys.argv[1]))["command"]))' "$WORK/spec/$kind.json")
    POD_USER=()
    if ((RUN_AS > 0)); then
        chown -R "$RUN_AS:$RUN_AS" "$root"
        POD_USER=(setpriv --reuid "$RUN_AS" --regid "$RUN_AS" --clear-groups)
    fi
}

# Starts pod ordinal $1 (spec $2: member or test) in its namespace, as rendered.
start_pod() {
    local k=$1 kind=${2:-member}
    pod_setup "$k" "$kind"
    ip netns exec "$POD_NS" env -i "PATH=$WORK/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/tmp \
        "${POD_ENV[@]}" setsid "${POD_USER[@]}" "${POD_CMD[@]}" >>"$WORK/$kind-$k.log" 2>&1 &
    PID[$kind-$k]=$!
}

# Like `kubectl exec POD -- ARGS...`: runs ARGS in member pod $1's namespace and environment.
pod_exec() {
    local k=$1
    shift
    pod_setup "$k" member
    ip netns exec "$POD_NS" env -i "PATH=$WORK/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/tmp \
        "${POD_ENV[@]}" "${POD_USER[@]}" "$@"
}

stop_pod() { # ordinal signal
    local pid=${PID[member-$1]:-}
    [[ -n $pid ]] || return 0
    kill "-$2" -- "-$pid" 2>/dev/null || kill "-$2" "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < WAIT_S * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
    unset "PID[member-$1]"
}

# GET http://IP:HTTP_PORT/PATH from the host (over the bridge): prints "STATUS BODY".
http_get() {
    python3 - "$1" "$2" <<'EOF' 2>/dev/null || echo "000 "
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}{sys.argv[2]}", timeout=2) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
EOF
}

# View of the running pods given as ordinals: "LEADER_ID TERM VOTERS READY" when all of them
# agree on one leader (else "0 0 0 0"); voters = how many see themselves as voters.
cluster_view() {
    local k out=()
    for k in "$@"; do
        out+=("$(http_get "${IPADDR[$k]}:$HTTP_PORT" /status | cut -d' ' -f2-)")
        out+=("$(http_get "${IPADDR[$k]}:$HTTP_PORT" "$READY_PATH" | cut -d' ' -f1)")
    done
    python3 - "${out[@]}" <<'EOF'
import json, sys
args = sys.argv[1:]
leaders, terms, voters, ready = set(), set(), 0, 0
roles = []
for body, code in zip(args[::2], args[1::2]):
    try:
        s = json.loads(body)
    except ValueError:
        print("0 0 0 0"); sys.exit()
    leaders.add((s.get("leader") or {}).get("id", 0))
    terms.add(s.get("term"))
    roles.append(s.get("role"))
    voters += 1 if s.get("voter") else 0
    ready += 1 if code == "200" else 0
if len(leaders) == 1 and 0 not in leaders and len(terms) == 1 and roles.count("leader") == 1:
    print(leaders.pop(), terms.pop(), voters, ready)
else:
    print("0 0 0 0")
EOF
}

# Waits until the pods given agree on a leader with all of them voters and ready; sets
# LEADER (node id) and TERM. Returns 1 on timeout.
wait_cluster() {
    local deadline=$(($(date +%s) + WAIT_S)) view
    while (($(date +%s) < deadline)); do
        read -r LEADER TERM voters ready < <(cluster_view "$@")
        if ((LEADER > 0 && voters == $# && ready == $#)); then
            return 0
        fi
        sleep 0.2
    done
    echo "# last view: leader=$LEADER term=$TERM voters=$voters ready=$ready of $#"
    for view in "$@"; do
        echo "# pod $view: $(http_get "${IPADDR[$view]}:$HTTP_PORT" /status | cut -c1-300)"
    done
    return 1
}

# The leader as seen from the leader: configuration roles, "id:role ..." sorted.
leader_config() {
    local k=$((LEADER - 1))
    http_get "${IPADDR[$k]}:$HTTP_PORT" /status | cut -d' ' -f2- | python3 -c 'import json,sys
s = json.load(sys.stdin)
print(" ".join("%d:%s" % (p["id"], p["role"]) for p in sorted(s["peers"], key=lambda p: p["id"])))'
}

step() { # name, then the command; prints the TAP line with the duration
    local name=$1 t
    shift
    t=$(date +%s%N)
    if "$@"; then
        ok "$name ($(ms "$t") ms)"
    else
        not_ok "$name ($(ms "$t") ms)"
        return 1
    fi
}

# --- steps ----------------------------------------------------------------------------
echo "1..10"
up=(0 1 2)
for k in "${up[@]}"; do
    IPADDR[$k]="10.213.$net.$((10 + k))"
    netns_up "$(pod_ns "$k")" "${IPADDR[$k]}"
done
write_hosts

s1() {
    for k in "${up[@]}"; do start_pod "$k"; done
    # The operator's one-time schema setup, as NOTES.txt says: exec into a pod.
    pod_exec 0 lifeguard-entrypoint setup >"$WORK/setup.log" 2>&1 || {
        diag <"$WORK/setup.log"
        return 1
    }
    wait_cluster "${up[@]}" && echo "# leader node $LEADER in term $TERM; config $(leader_config)"
}
step "cluster of 3 forms: one leader, 3 voters, $READY_PATH 200 on every pod" s1 || exit 1

s2() {
    netns_up "${PREFIX}t" "10.213.$net.9"
    write_hosts
    start_pod 0 test
    local pid=${PID[test-0]}
    wait "$pid" && rc=0 || rc=$?
    unset "PID[test-0]"
    tail -n 3 "$WORK/test-0.log" | diag
    return "$rc"
}
step "helm test pod: exactly one leader across all pods" s2 || true

s2b() {
    local k=$((LEADER - 1)) names missing=()
    http_get "${IPADDR[$k]}:$HTTP_PORT" /metrics | sed '1s/^[0-9]* //' >"$WORK/metrics.txt"
    "$TOOLS/bin/helm" template rf "$ROOT/helm/lifeguard-reflector" --namespace sim \
        --set auth.adminToken=x --set monitoring.prometheusRule.enabled=true \
        --show-only templates/prometheusrule.yaml >"$WORK/rules.yaml"
    names=$(grep -o 'lifeguard_reflector_[a-z_]*' "$WORK/rules.yaml" | sort -u)
    for m in $names; do
        grep -q "^${m}[{ ]" "$WORK/metrics.txt" || missing+=("$m")
    done
    echo "# alert metrics: $(echo "$names" | tr '\n' ' ')"
    ((${#missing[@]} == 0)) || {
        echo "# not exported by the leader: ${missing[*]}"
        return 1
    }
}
step "every metric the PrometheusRule alerts on is exported by the leader" s2b || true

s3() {
    OLD=$((LEADER - 1))
    OLD_TERM=$TERM
    stop_pod "$OLD" KILL
    local rest=()
    for k in "${up[@]}"; do ((k == OLD)) || rest+=("$k"); done
    wait_cluster_2of3 "${rest[@]}"
}
# Two of three: both agree on a new leader (they see the killed voter as a voter, unreachable).
wait_cluster_2of3() {
    local deadline=$(($(date +%s) + WAIT_S))
    while (($(date +%s) < deadline)); do
        read -r LEADER TERM voters ready < <(cluster_view "$@")
        if ((LEADER > 0 && LEADER != OLD + 1 && TERM > OLD_TERM)); then
            echo "# new leader node $LEADER in term $TERM (was node $((OLD + 1)), term $OLD_TERM)"
            return 0
        fi
        sleep 0.2
    done
    return 1
}
step "leader (pod) killed: a new leader is elected" s3 || exit 1

s4() {
    local old_ip=${IPADDR[$OLD]}
    netns_down "$(pod_ns "$OLD")"
    IPADDR[$OLD]="10.213.$net.$((100 + OLD))"
    netns_up "$(pod_ns "$OLD")" "${IPADDR[$OLD]}"
    write_hosts
    echo "# pod $SET-$OLD: $old_ip -> ${IPADDR[$OLD]} (same name, same volume)"
    start_pod "$OLD"
    wait_cluster "${up[@]}" && [[ $(leader_config) == "1:voter 2:voter 3:voter" ]]
}
step "the killed pod returns with a new IP under its name and rejoins as a voter" s4 || exit 1

s5() {
    IPADDR[3]="10.213.$net.13"
    netns_up "$(pod_ns 3)" "${IPADDR[3]}"
    write_hosts
    start_pod 3
    up=(0 1 2 3)
    wait_cluster "${up[@]}" && [[ $(leader_config) == "1:voter 2:voter 3:voter 4:voter" ]] &&
        echo "# config $(leader_config)"
}
step "scale up: ordinal 3 joins by itself and votes (4 voters)" s5 || exit 1

s6() {
    local k=$((LEADER - 1))
    ip netns exec "$(pod_ns "$k")" env LIFEGUARD_ADMIN_TOKEN="$TOKEN" "$BIN" members remove \
        --url "http://127.0.0.1:$HTTP_PORT" --id 4 | diag
    stop_pod 3 TERM
    netns_down "$(pod_ns 3)"
    unset "IPADDR[3]"
    write_hosts
    up=(0 1 2)
    wait_cluster "${up[@]}" && [[ $(leader_config) == "1:voter 2:voter 3:voter" ]]
}
step "scale down: members remove 4, then its pod stops; 3 voters keep a leader" s6 || exit 1

s7() {
    local order=() k
    for k in "${up[@]}"; do ((k == LEADER - 1)) || order+=("$k"); done
    order+=($((LEADER - 1)))
    for k in "${order[@]}"; do
        stop_pod "$k" TERM
        start_pod "$k"
        wait_cluster "${up[@]}" || return 1
        echo "# restarted $SET-$k: leader node $LEADER, term $TERM"
    done
}
step "rolling upgrade: pods restarted one at a time, leader last" s7 || exit 1

s8() {
    local k=$(((LEADER) % 3)) # a follower
    stop_pod "$k" KILL
    rm -rf "$WORK/pod-$k/var/lib/lifeguard-reflector"
    start_pod "$k"
    wait_cluster "${up[@]}" && [[ $(leader_config) == "1:voter 2:voter 3:voter" ]] &&
        grep -q "knows an existing cluster" "$WORK/member-$k.log" &&
        grep -q "removing and re-adding" "$WORK/member-$k.log"
}
step "a pod with a lost volume refuses to bootstrap and is re-added as a voter" s8 || true

s9() {
    for k in "${!PID[@]}"; do stop_pod "${k#member-}" TERM; done
    ! grep -h -m 3 -E "Sanitizer|runtime error:" "$WORK"/member-*.log "$WORK"/test-*.log
}
step "every pod stopped; no sanitizer report in any pod's log" s9 || true

echo "# $((tap_n - tap_failed)) passed, $tap_failed failed"
exit $((tap_failed > 0))
