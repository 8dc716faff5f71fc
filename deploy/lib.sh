# shellcheck shell=bash
# Helpers for deploy/e2e.sh: containers as VMs, polling with deadlines,
# and reading the cluster through carpkvctl. Sourced, not run.

step() { printf '\n\033[1m== [%4ss] %s\033[0m\n' "$SECONDS" "$*"; }
note() { printf '   %s\n' "$*"; }
fail() { printf '\033[31mFAIL: %s\033[0m\n' "$*" >&2; exit 1; }

# wait_for SECONDS WHAT CMD...: run CMD until it succeeds, at most SECONDS.
# Polls every 0.5 s; on timeout prints CMD's last output and fails.
wait_for() {
  local limit=$1 what=$2 out deadline=$((SECONDS + $1))
  shift 2
  until out=$("$@" 2>&1); do
    if [ "$SECONDS" -ge "$deadline" ]; then
      printf '%s\n' "$out" | tail -n 20 >&2
      fail "timed out after $limit s waiting for: $what"
    fi
    sleep 0.5
  done
}

# --- containers as VMs ------------------------------------------------------

# create_network NAME: a bridge network on a free /24 of 172.30.0.0/16
# (fixed addresses need a subnet of our choosing; Docker refuses one that
# overlaps another network, and we skip any the host already routes).
create_network() {
  local try net
  for try in $(seq 1 30); do
    net=172.30.$(((RANDOM + try) % 256))
    ip -4 route | grep -q "^$net.0/24 " && continue
    docker network create --label "$LABEL" --subnet "$net.0/24" --gateway "$net.1" "$1" >/dev/null 2>&1 && return 0
  done
  fail "found no free /24 in 172.30.0.0/16 for network $1"
}

# vm_create NAME IP: create (not start) a "VM": the systemd image with
# systemd as PID 1, its own address on the test network, the capabilities
# systemd needs to set up the units' sandboxes (mount namespaces), and the
# host's cgroup tree. The agent's data dir is an anonymous volume, as a VM's
# disk would be: it survives `docker kill` and `docker start`.
vm_create() {
  docker create --name "$1" --hostname "$1" --label "$LABEL" \
    --network "$NET" --ip "$2" \
    --stop-signal SIGRTMIN+3 --cap-add SYS_ADMIN \
    --tmpfs /run --tmpfs /run/lock \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    -v /var/lib/carpkv \
    "$IMAGE" >/dev/null
}

# vm_booted NAME: systemd finished booting (running, or degraded: some
# unit failed, which the callers check separately).
vm_booted() {
  local state
  state=$(docker exec "$1" systemctl is-system-running 2>/dev/null) || true
  case $state in running | degraded) return 0 ;; esac
  echo "$1: $state"
  return 1
}

# --- the cluster through carpkvctl ------------------------------------------

# ctl ARGS...: carpkvctl against every agent of the plan.
ctl() { "$CTL" --addr "$CARPKV_ADDR" "$@"; }

status_json() { ctl --timeout 10s -o json status; }

# cluster_healthy GROUPS MEMBERS EPOCH: the committed ring has EPOCH, and
# every group has a leader and MEMBERS voters that are ready and act under
# EPOCH. (A voter must answer as itself: status also lists dead members
# that gossip remembers, probed at an address a new agent may now hold.)
cluster_healthy() {
  status_json | jq -e --argjson g "$1" --argjson m "$2" --argjson e "$3" '
    .ring.epoch == $e and (.groups | length) == $g and all(.groups[];
      .leader != null and .leader != "" and
      ([.members[] | select(.suffrage == "Voter" and .ready and .agent.id == .id
        and .agent.ring_epoch == $e)] | length) == $m)' >/dev/null
}

# voter_at ADDR: the ID of the voter whose HTTP address is ADDR.
voter_at() {
  status_json | jq -r --arg a "$1" '.groups[].members[] | select(.http_addr == $a and .suffrage == "Voter") | .id'
}

# leader_of GROUP: the ID of GROUP's leader.
leader_of() { status_json | jq -r --arg g "$1" '.groups[] | select(.group == $g) | .leader'; }

# member FIELD ID: a field of member ID as status shows it.
member() { status_json | jq -r --arg id "$2" ".groups[].members[] | select(.id == \$id) | .$1"; }

# vm_of ID: the container (VM) that runs agent ID.
vm_of() {
  local ip
  ip=$(member http_addr "$1")
  ip=${ip%:*}
  jq -r --arg ip "$ip" 'to_entries[] | select(.value.ip == $ip) | .key' "$WORK/nodes.json"
}

# check_keys FILE: every "key value" line of FILE reads back as value
# (keys and values are plain words). Six reads in flight: each is a
# carpkvctl process, and thousands of them one after the other would take
# minutes on a busy machine.
check_keys() {
  local n bad
  n=$(wc -l <"$1")
  # shellcheck disable=SC2016 # expanded by the sh -c, not here
  bad=$(xargs -P 6 -L 1 sh -c '
    got=$("$0" --addr "$CARPKV_ADDR" --timeout 20s get "$1" 2>&1) || true
    [ "$got" = "$2" ] || echo "$1: got [$got], want [$2]"' "$CTL" <"$1")
  if [ -n "$bad" ]; then
    printf '%s\n' "$bad" | head -n 50 | sed 's/^/   /'
    fail "$(wc -l <<<"$bad") of $n acknowledged writes read back wrong"
  fi
  note "all $n acknowledged writes read back"
}

# put_keys FILE PREFIX N: write PREFIX1..PREFIXN and log them in FILE.
put_keys() {
  local i
  for i in $(seq 1 "$3"); do
    ctl --timeout 20s put "$2$i" "value-$2$i" >/dev/null || fail "put $2$i"
    echo "$2$i value-$2$i" >>"$1"
  done
}

# load ID: a client: put a unique key, read it back, again and again until
# $WORK/load.stop exists, about four rounds a second. Every failure (after kvclient's own retries
# within --timeout) is counted; acknowledged writes go to load-ID.acked.
load() {
  local id=$1 n=0 failed=0 key val got rc out=$WORK/load-$1 run
  # Keys are new in every run of a client: the acknowledged writes of all
  # runs are checked together at the end, one value per key.
  run=$(date +%s%N)
  : >"$out.acked"
  while [ ! -e "$WORK/load.stop" ]; do
    n=$((n + 1))
    key=load-$id-$run-$n val=v$n-$RANDOM
    rc=0
    ctl --timeout 20s put "$key" "$val" >/dev/null 2>>"$out.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
      failed=$((failed + 1))
      echo "put $key: exit $rc" >>"$out.err"
      continue
    fi
    echo "$key $val" >>"$out.acked"
    got=$(ctl --timeout 20s get "$key" 2>>"$out.err") || true
    if [ "$got" != "$val" ]; then
      failed=$((failed + 1))
      echo "get $key: got '$got', want '$val'" >>"$out.err"
    fi
    sleep 0.2 # pace: enough load to see every restart, little CPU
  done
  echo "$n $failed" >"$out.result"
}
