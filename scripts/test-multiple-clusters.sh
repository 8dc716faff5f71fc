#!/usr/bin/env bash
# Many carpkv shard groups at work, from the shell: start a local cluster of
# 3 groups × 3 agents, write and read keys (each goes to its CARP owner
# group), show the ring and the status, kill -9 one group's leader, read
# everything back, restart it, and stop the cluster. Uses the binaries in
# bin/ (run `make build` first; `make multiple-clusters` does both).
# Everything runs on 127.0.0.1 in a temporary directory, and is stopped and
# deleted on exit, failure or Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-bin}
CTL=$BIN_DIR/carpkvctl
for b in "$BIN_DIR/carpkv-agent" "$CTL"; do [ -x "$b" ] || { echo "missing $b: run make build" >&2; exit 1; }; done

GROUPS_N=${GROUPS_N:-3}
REPLICAS=${REPLICAS:-3}
KEYS=${KEYS:-200}
# Our own cluster directory: never the one `make run` uses.
export CARPKV_LOCAL_DIR
CARPKV_LOCAL_DIR=$(mktemp -d -t carpkv-multi-XXXXXX)
unset CARPKV_ADDR # carpkvctl finds the local cluster by itself

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -d "$CARPKV_LOCAL_DIR/logs" ]; then
    echo "FAILED (exit $rc); the end of each agent's log:" >&2
    for f in "$CARPKV_LOCAL_DIR"/logs/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
  fi
  "$CTL" local down --purge --grace 5s >/dev/null 2>&1 || true
  rm -rf "$CARPKV_LOCAL_DIR"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
owner() { "$CTL" ring owner "$1" | cut -d' ' -f1; }
leader_of_key() { "$CTL" ring owner "$1" | sed -n 's/.*(leader \([^ ]*\) at .*/\1/p'; }

step "start $GROUPS_N groups × $REPLICAS agents (they find each other by gossip and commit the first ring)"
"$CTL" local up --groups "$GROUPS_N" --replicas "$REPLICAS"

step "write $KEYS keys; each goes to its owner group's leader"
for i in $(seq 1 "$KEYS"); do "$CTL" put "key-$i" "value-$i" >/dev/null; done
echo "wrote key-1..key-$KEYS"
"$CTL" put greeting "hello, carpkv"
printf 'get greeting -> %s\n' "$("$CTL" get greeting)"
for k in key-1 key-2 key-3 greeting; do printf '%-9s -> %s\n' "$k" "$("$CTL" ring owner "$k")"; done

step "the ring and the status"
"$CTL" ring show
echo
"$CTL" status

step "kill -9 the leader of the group that owns greeting"
group=$(owner greeting)
leader=$(leader_of_key greeting)
[ -n "$leader" ] || { echo "no leader known for $group" >&2; exit 1; }
echo "greeting belongs to $group, led by $leader"
"$CTL" local kill "$leader"

step "$group elects a new leader; every group keeps serving"
"$CTL" --timeout 20s put after-failover yes >/dev/null
"$CTL" --timeout 20s put greeting "hello again"
newleader=$(leader_of_key greeting)
printf 'get greeting -> %s (new leader of %s: %s)\n' "$("$CTL" get greeting)" "$group" "${newleader:-not known to gossip yet}"
missing=0
for i in $(seq 1 "$KEYS"); do
  v=$("$CTL" --timeout 20s get "key-$i" || true)
  [ "$v" = "value-$i" ] || { echo "LOST key-$i (got '$v')"; missing=$((missing + 1)); }
done
echo "all $KEYS acknowledged writes readable after the failover: $([ $missing = 0 ] && echo yes || echo "NO, $missing missing")"

step "restart $leader; it rejoins $group as a follower"
"$CTL" local start "$leader"
"$CTL" local status

step "stop the cluster"
"$CTL" local down --purge
[ $missing = 0 ]
