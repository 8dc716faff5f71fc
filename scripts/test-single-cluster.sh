#!/usr/bin/env bash
# One carpkv shard group at work, from the shell: start three agents, write,
# read, kill the leader, read again, and show that no acknowledged write was
# lost. Uses the binaries in bin/ (run `make build` first; `make
# single-cluster` does both). Everything runs on 127.0.0.1 and is cleaned up
# on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-bin}
AGENT=$BIN_DIR/carpkv-agent
CTL=$BIN_DIR/carpkvctl
for b in "$AGENT" "$CTL"; do [ -x "$b" ] || { echo "missing $b: run make build" >&2; exit 1; }; done

DIR=$(mktemp -d -t carpkv-single-XXXXXX)
BASE=${BASE_PORT:-27100}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill9 "$p"; done
  rm -rf "$DIR"
}
trap cleanup EXIT

http() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
start() { # start N [extra flags]
  local i=$1; shift
  "$AGENT" --group g1 --node-id "n$i" --data-dir "$DIR/n$i" \
    --raft-addr "127.0.0.1:$((BASE + $i))" --http-addr "$(http "$i")" \
    --gossip-addr "127.0.0.1:$((BASE + 20 + $i))" --gossip-profile local "$@" \
    >>"$DIR/n$i.log" 2>&1 &
  pids[$i]=$!
  disown # we reap it ourselves; keeps bash from announcing the kill -9
}
kill9() { # kill9 PID: kill and wait until it is gone
  kill -9 "$1" 2>/dev/null || true
  while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_until() { # wait_until SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*" >&2; tail -n 20 "$DIR"/*.log >&2; exit 1; }
    sleep 0.1
  done
}
wait_ready() { # wait_ready N: agent N answers /v1/ready, or its log explains why not
  local deadline=$((SECONDS + 30))
  until curl -sf "http://$(http "$1")/v1/ready" >/dev/null 2>&1; do
    if ! kill -0 "${pids[$1]}" 2>/dev/null; then
      echo "agent n$1 exited:" >&2; tail -n 20 "$DIR/n$1.log" >&2; exit 1
    fi
    [ $SECONDS -lt $deadline ] || { echo "n$1 not ready after 30s" >&2; tail -n 20 "$DIR"/*.log >&2; exit 1; }
    sleep 0.1
  done
}
export CARPKV_ADDR="$(http 1),$(http 2),$(http 3)"

step "start three agents (n1 bootstraps, n2 and n3 join through it)"
start 1 --bootstrap
start 2 --join "$(http 1)" --retry-join "127.0.0.1:$((BASE + 21))"
start 3 --join "$(http 1)" --retry-join "127.0.0.1:$((BASE + 21))"
for i in 1 2 3; do wait_ready "$i"; done
"$CTL" members

step "write and read"
"$CTL" put greeting "hello, carpkv"
for i in $(seq 1 100); do "$CTL" put "key-$i" "value-$i" >/dev/null; done
echo "wrote key-1..key-100"
printf 'get greeting -> %s\n' "$("$CTL" get greeting)"

step "kill -9 the leader"
leader=$("$CTL" --output json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["leader"])')
idx=${leader#n}
echo "leader is $leader; killing it"
kill9 "${pids[$idx]}"

step "the group elects a new leader and keeps serving"
wait_until 30 "$CTL" put after-failover yes
"$CTL" members
printf 'get greeting -> %s\n' "$("$CTL" get greeting)"
missing=0
for i in $(seq 1 100); do
  v=$("$CTL" get "key-$i")
  [ "$v" = "value-$i" ] || { echo "LOST key-$i (got '$v')"; missing=$((missing + 1)); }
done
echo "all 100 acknowledged writes readable after the failover: $([ $missing = 0 ] && echo yes || echo "NO, $missing missing")"

step "restart the old leader; it rejoins as a follower and catches up"
start "$idx"
wait_ready "$idx"
wait_until 30 bash -c "[ \"\$($CTL --addr $(http "$idx") get --stale after-failover)\" = yes ]"
echo "$leader serves after-failover=yes from its own copy"
"$CTL" status
[ $missing = 0 ]
