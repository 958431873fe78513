#!/usr/bin/env bash
# docker.sh: a private dockerd (Debian's docker.io) runs the busybox image with `--runtime hako`
# and `--runtime runc` through the same scenarios (see docs/integration.md).
#
# Everything is private to this run: the daemon's config file, --data-root, --exec-root, socket,
# pidfile and legacy key under $INT_WORK/docker, its own containerd (dockerd starts one in the
# exec-root), no bridge and no iptables rules, a cgroup parent of its own. Stopped by its pid on
# exit; the directories the daemon and its shims create outside (/run/docker, /run/containerd/s)
# are removed when this run made them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

D=$INT_WORK/docker
export DOCKER_HOST=unix://$D/docker.sock
# The client's own config dir (no ~/.docker), and Debian's client, which matches the daemon.
export DOCKER_CONFIG=$D/cli
DOCKER=/usr/bin/docker
IMG=localhost/hako-int/busybox:latest
# Containers go under /$CGROUP_PARENT/<id> (dockerd's --cgroup-parent), removed at the end.
export CGROUP_PARENT=${CGROUP_PARENT:-hako-int-docker-$$}

d() { "$DOCKER" "$@"; }
# docker run with the runtime under test. Every scenario runs with docker's default seccomp
# profile, as users get it, except the one that checks `seccomp=unconfined`.
drun() { d run --runtime "$RT" --network none "$@"; }
name() { echo "int-$RT-$1"; }
state() { d inspect --format '{{.State.Status}}' "$1"; }
cpid() { d inspect --format '{{.State.Pid}}' "$1"; }
logs_have() { d logs "$1" 2>&1 | grep -q "$2"; }
in_tty() { script -qec "$(printf '%q ' "$@")" /dev/null | tr -d '\r'; }

write_conf() {
  mkdir -p "$D" "$DOCKER_CONFIG"
  # The documented daemon.json (docs/integration.md): hako as an extra runtime next to the
  # built-in runc. dockerd 20.10 writes a legacy key to /etc/docker/key.json unless told where
  # (a daemon.json key only, no flag).
  cat >"$D/daemon.json" <<EOF
{
  "runtimes": {
    "hako": { "path": "$HAKO" }
  },
  "deprecated-key-path": "$D/key.json"
}
EOF
}

setup() {
  write_conf
  [ -e /run/docker ] || touch "$D/made-run-docker"
  [ -e /run/containerd ] || touch "$D/made-run-containerd"
  # dockerd writes its own --pidfile; daemon_start writes another, so neither overwrites the other.
  daemon_start dockerd "$D/dockerd.pid" "$LOGS/docker-daemon.log" 150 d version -- \
    dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
    --host "$DOCKER_HOST" --pidfile "$D/docker.pid" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --cgroup-parent "/$CGROUP_PARENT"
  if [ ! -s "$INT_WORK/busybox-docker.tar" ]; then
    "$(dirname "$0")/podman.sh" image-only
  fi
  d load -q -i "$INT_WORK/busybox-docker.tar" >/dev/null
  d image inspect "$IMG" >/dev/null || fail "image $IMG not loaded: $(d images)"
}

cleanup_containers() {
  local ids
  ids=$(d ps -aq 2>/dev/null) || return 0
  [ -z "$ids" ] || d rm -f $ids >/dev/null 2>&1 || true
}

teardown() {
  set +e
  if daemon_pid "$D/dockerd.pid" "$D/data" >/dev/null; then
    cleanup_containers
    d rmi -f "$IMG" >/dev/null 2>&1
    # dockerd stops its containerd on the way out.
    daemon_stop "$D/dockerd.pid" "$D/data" 100
  fi
  # A containerd or shim that outlived the daemon (it would be a bug) is ours: it names our dirs.
  kill_strays "$D/exec/containerd"
  unmount_under "$D"
  remove_cgroups "$CGROUP_PARENT"
  [ ! -e "$D/made-run-docker" ] || rmdir /run/docker/plugins /run/docker 2>/dev/null
  [ ! -e "$D/made-run-containerd" ] || rmdir /run/containerd/s /run/containerd 2>/dev/null
  rm -rf "$D"
}

# ---- scenarios: each runs in its own process with RT (hako|runc) set ----

sc_run_echo() {
  assert_eq "$(drun --rm "$IMG" echo hello)" hello
}

sc_exit_code() {
  assert_eq "$(rc drun --rm "$IMG" sh -c 'exit 7')" 7 "exit status"
}

sc_detach_exec_top_stop() {
  local c; c=$(name det)
  drun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  assert_eq "$(state "$c")" running
  assert_eq "$(d exec "$c" echo from-exec)" from-exec "exec"
  assert_eq "$(rc d exec "$c" sh -c 'exit 5')" 5 "exec exit status"
  assert_eq "$(echo piped | d exec -i "$c" cat)" piped "exec -i"
  # docker maps an exec the runtime could not start to 126 (runc too).
  assert_eq "$(rc d exec "$c" no-such-cmd)" 126 "exec of a missing executable"
  assert_contains "$(d ps --format '{{.Names}} {{.Status}}')" "$c Up" "ps"
  assert_contains "$(d top "$c")" "sleep 1000" "top"
  d stop -t 1 "$c" >/dev/null
  assert_eq "$(state "$c")" exited
  d rm "$c" >/dev/null
  assert_eq "$(rc d container inspect "$c")" 1 "container inspect after rm"
}

sc_tty() {
  local c out; c=$(name tty)
  out=$(in_tty "$DOCKER" run --runtime "$RT" --network none --rm -t "$IMG" \
    sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; sleep 0.3')
  assert_contains "$out" /dev/pts/ "tty in run -t"
  assert_contains "$out" stdin-is-tty "run -t"
  drun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  out=$(in_tty "$DOCKER" exec -t "$c" sh -c 'tty; sleep 0.3')
  assert_contains "$out" /dev/pts/ "tty in exec -t"
}

sc_stdin() {
  assert_eq "$(printf 'one\ntwo\n' | drun --rm -i "$IMG" sh -c 'cat; echo done')" "$(printf 'one\ntwo\ndone')"
}

sc_kill_signal() {
  local c; c=$(name kill)
  drun -d --name "$c" "$IMG" sh -c 'trap "echo got-usr1; exit 3" USR1; echo ready; while :; do sleep 0.1; done' >/dev/null
  retry 50 logs_have "$c" ready
  d kill -s USR1 "$c" >/dev/null
  assert_eq "$(d wait "$c")" 3 "exit status after USR1"
  assert_contains "$(d logs "$c")" got-usr1 "logs"
}

sc_pause_unpause() {
  local c; c=$(name pause)
  drun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  d pause "$c" >/dev/null
  assert_eq "$(state "$c")" paused
  assert_eq "$(cat "$(host_cgroup_file "$(cpid "$c")" freezer freezer.state)")" FROZEN "freezer.state"
  d unpause "$c" >/dev/null
  assert_eq "$(state "$c")" running
  assert_eq "$(d exec "$c" echo alive)" alive "exec after unpause"
}

sc_stats() {
  local c out; c=$(name stats)
  drun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  out=$(d stats --no-stream --format '{{.Name}} {{.PIDs}} {{.MemUsage}}' "$c")
  assert_contains "$out" "$c 1 " "stats"
  case "$out" in *" -- "* | *" 0B / "*) fail "stats: no memory usage in '$out'" ;; esac
}

sc_update_memory() {
  local c f; c=$(name upd)
  drun -d --name "$c" --memory 64m --memory-swap 256m --pids-limit 50 "$IMG" sleep 1000 >/dev/null
  f=$(host_cgroup_file "$(cpid "$c")" memory memory.limit_in_bytes)
  assert_eq "$(cat "$f")" 67108864 "memory limit before update"
  d update --memory 128m "$c" >/dev/null
  assert_eq "$(cat "$f")" 134217728 "memory limit after update"
  # docker sends 0 for what the update leaves out: the pids limit set at run stays.
  assert_eq "$(cat "$(host_cgroup_file "$(cpid "$c")" pids pids.max)")" 50 "pids.max after update"
}

sc_resource_limits() {
  local c pid; c=$(name res)
  drun -d --name "$c" --memory 64m --pids-limit 100 --cpus 0.5 --cpu-shares 512 "$IMG" sleep 1000 >/dev/null
  pid=$(cpid "$c")
  assert_eq "$(cat "$(host_cgroup_file "$pid" memory memory.limit_in_bytes)")" 67108864 "host memory.limit_in_bytes"
  assert_eq "$(cat "$(host_cgroup_file "$pid" pids pids.max)")" 100 "host pids.max"
  assert_eq "$(cat "$(host_cgroup_file "$pid" cpu cpu.cfs_quota_us)")" 50000 "host cpu.cfs_quota_us"
  assert_eq "$(cat "$(host_cgroup_file "$pid" cpu cpu.cfs_period_us)")" 100000 "host cpu.cfs_period_us"
  assert_eq "$(cat "$(host_cgroup_file "$pid" cpu cpu.shares)")" 512 "host cpu.shares"
  assert_contains "$(host_cgroup_file "$pid" memory memory.limit_in_bytes)" "/$CGROUP_PARENT/" "cgroup parent"
  assert_eq "$(d exec "$c" cat /sys/fs/cgroup/memory/memory.limit_in_bytes)" 67108864 "memory limit inside"
  assert_eq "$(d exec "$c" cat /sys/fs/cgroup/pids/pids.max)" 100 "pids.max inside"
}

sc_cap_drop() {
  assert_contains "$(drun --rm --cap-drop all "$IMG" grep CapEff /proc/self/status)" 0000000000000000 "CapEff with --cap-drop all"
  assert_eq "$(drun --rm --cap-drop chown "$IMG" sh -c 'touch /tmp/f; chown 65534 /tmp/f 2>/dev/null && echo chowned || echo denied')" denied "chown without CAP_CHOWN"
  assert_eq "$(drun --rm "$IMG" sh -c 'touch /tmp/f; chown 65534 /tmp/f && echo chowned')" chowned "chown with the default caps"
}

sc_user() {
  assert_eq "$(drun --rm --user 65534:65534 "$IMG" sh -c 'echo $(id -u):$(id -g)')" 65534:65534
  assert_eq "$(drun --rm --user nobody "$IMG" id -un)" nobody
}

sc_read_only() {
  # docker mounts no tmpfs of its own with --read-only: /tmp is read-only too unless asked.
  assert_eq "$(drun --rm --read-only --tmpfs /run "$IMG" sh -c 'touch /x 2>/dev/null && echo rw || echo ro; touch /tmp/y 2>/dev/null && echo tmp-rw || echo tmp-ro; touch /run/z && echo run-rw')" \
    "$(printf 'ro\ntmp-ro\nrun-rw')"
}

sc_seccomp_default() {
  # docker's default profile: filter mode (2).
  assert_contains "$(drun --rm "$IMG" grep Seccomp: /proc/self/status)" "$(printf 'Seccomp:\t2')"
}

sc_seccomp_unconfined() {
  assert_contains "$(drun --rm --security-opt seccomp=unconfined "$IMG" grep Seccomp: /proc/self/status)" "$(printf 'Seccomp:\t0')"
}

sc_missing_executable() {
  local out code=0
  out=$(drun --rm "$IMG" no-such-cmd 2>&1) || code=$?
  assert_eq "$code" 127 "exit status"
  assert_contains "$out" 'exec: "no-such-cmd": executable file not found in $PATH' "docker's error"
}

sc_network_none() {
  local out
  out=$(drun --rm "$IMG" sh -c 'readlink /proc/self/ns/net; ls /sys/class/net')
  [ "$(sed -n 1p <<<"$out")" != "$(readlink /proc/self/ns/net)" ] || fail "--network none shares the host's network namespace"
  assert_eq "$(sed 1d <<<"$out")" lo "interfaces with --network none"
}

sc_network_host() {
  local out
  out=$(d run --runtime "$RT" --rm --network host "$IMG" sh -c 'readlink /proc/self/ns/net; hostname')
  assert_eq "$(sed -n 1p <<<"$out")" "$(readlink /proc/self/ns/net)" "network namespace with --network host"
  assert_eq "$(sed -n 2p <<<"$out")" "$(hostname)" "hostname with --network host"
}

SCENARIOS=(run_echo exit_code detach_exec_top_stop tty stdin kill_signal pause_unpause stats
  update_memory resource_limits cap_drop user read_only seccomp_default seccomp_unconfined
  missing_executable network_none network_host)

if [ "${1:-}" = scenario ]; then
  set -x
  "sc_$2"
  exit 0
fi

[ $# -eq 0 ] || SCENARIOS=("$@")
mkdir -p "$LOGS"
trap teardown EXIT
teardown
setup
run_scenarios docker "$0" cleanup_containers "${SCENARIOS[@]}"
