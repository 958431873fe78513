#!/usr/bin/env bash
# systemd.sh: podman (cgroup_manager = "systemd") and containerd (runc option SystemdCgroup, ctr's
# --runc-systemd-cgroup) drive hako and runc with --systemd-cgroup, under a real systemd. Run as
# `make integration-systemd`: it boots ../shared/vm with systemd 252 as PID 1 (VMRUN_INIT=systemd,
# cgroup v2) and runs this script there; on a real systemd + cgroup v2 host it runs as it is.
# Storage, state and the daemon live in the guest's /tmp; results and logs go to $RESULTS/$LOGS.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

W=${SYSTEMD_INT_WORK:-/tmp/hako-int-systemd}
P=$W/podman
C=$W/containerd
SOCK=$C/containerd.sock
NS=hako-int-sd
IMG=localhost/hako-int/busybox:latest
export CONTAINERS_CONF=$P/containers.conf

# ---- podman ----
PFLAGS=(--root "$P/root" --runroot "$P/runroot" --tmpdir "$P/tmp" --storage-driver overlay
  --network-config-dir "$P/networks" --volumepath "$P/volumes"
  --cgroup-manager systemd --events-backend file --runtime "${RT:-hako}")
p() { podman "${PFLAGS[@]}" "$@"; }
pname() { echo "sd-$RT-$1"; }
pid_of() { p inspect --format '{{.State.Pid}}' "$1"; }
full_id() { p inspect --format '{{.Id}}' "$1"; }

# unit_prop UNIT PROP: systemd's value.
unit_prop() { systemctl show --value -p "$2" "$1"; }
# cgroup_of PID: the v2 cgroup path of PID.
cgroup_of() { awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup"; }

# ---- containerd ----
c() { ctr -a "$SOCK" -n "$NS" "$@"; }
crun() {
  local id=$1; shift
  c run --runc-binary "$RTBIN" --runc-root "$C/runc-root/$RT" --fifo-dir "$C/fifo" \
    --runc-systemd-cgroup --cgroup "system.slice:hakoint:$id" "$@"
}
cname() { echo "sd-$RT-$1"; }
task_status() { c task ls | awk -v id="$1" '$1 == id { print $3 }'; }
task_pid() { c task ls | awk -v id="$1" '$1 == id { print $2 }'; }
task_stopped() { [ "$(task_status "$1")" = STOPPED ]; }

setup() {
  mkdir -p "$P" "$C"
  write_containers_conf "$CONTAINERS_CONF" systemd
  make_rootfs "$W/rootfs"
  tar -C "$W/rootfs" -c . | p import -q --change CMD=/bin/sh - "$IMG" >/dev/null
  p save -q --format oci-archive -o "$W/busybox-oci.tar" "$IMG"
  containerd_conf "$C" "$SOCK" 'disabled_plugins = ["io.containerd.grpc.v1.cri"]' >"$C/config.toml"
  daemon_start containerd "$C/containerd.pid" "$LOGS/containerd-systemd-daemon.log" 300 c version -- \
    containerd --config "$C/config.toml"
  c images import "$W/busybox-oci.tar" >/dev/null
}

cleanup_containers() {
  p rm -af -t 0 >/dev/null 2>&1 || true
  local id
  for id in $(c task ls -q 2>/dev/null); do
    c task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    retry 50 task_stopped "$id" || true
    c task delete -f "$id" >/dev/null 2>&1 || true
  done
  for id in $(c containers ls -q 2>/dev/null); do c containers delete "$id" >/dev/null 2>&1 || true; done
}

teardown() {
  set +e
  cleanup_containers
  daemon_stop "$C/containerd.pid" "$C/config.toml"
  unmount_under "$W"
  rm -rf "$W"
}

# ---- scenarios: each runs in its own process with RT (hako|runc) and RTBIN set ----

sc_podman_run_echo() {
  assert_eq "$(p run --rm --network none "$IMG" echo hello)" hello
}

# The container is podman's libpod-<id>.scope in machine.slice, made by systemd with the runtime
# owning its inside; exec joins it; rm removes the unit.
sc_podman_scope_exec_stop() {
  local n id pid unit; n=$(pname det)
  p run -d --name "$n" --network none "$IMG" sleep 1000 >/dev/null
  id=$(full_id "$n"); pid=$(pid_of "$n"); unit=libpod-$id.scope
  assert_eq "$(unit_prop "$unit" ActiveState)" active "unit state"
  assert_eq "$(unit_prop "$unit" Delegate)" yes "Delegate"
  assert_eq "$(cgroup_of "$pid")" "/machine.slice/$unit" "the init's cgroup"
  assert_eq "$(p exec "$n" echo from-exec)" from-exec "exec"
  assert_eq "$(p exec "$n" cat /proc/self/cgroup)" "0::/" "exec's cgroup (the scope, as the namespace root)"
  p stop -t 1 "$n" >/dev/null
  p rm "$n" >/dev/null
  assert_eq "$(unit_prop "$unit" LoadState)" not-found "unit after rm"
  [ ! -d "/sys/fs/cgroup/machine.slice/$unit" ] || fail "cgroup left after rm"
}

sc_podman_limits_update() {
  local n id unit cg; n=$(pname lim)
  p run -d --name "$n" --network none --memory 64m --pids-limit 100 --cpus 0.5 "$IMG" sleep 1000 >/dev/null
  id=$(full_id "$n"); unit=libpod-$id.scope; cg=/sys/fs/cgroup/machine.slice/$unit
  assert_eq "$(unit_prop "$unit" MemoryMax)" 67108864 "MemoryMax"
  assert_eq "$(unit_prop "$unit" TasksMax)" 100 "TasksMax"
  assert_eq "$(unit_prop "$unit" CPUQuotaPerSecUSec)" 500ms "CPUQuotaPerSecUSec"
  assert_eq "$(cat "$cg/memory.max")" 67108864 "memory.max"
  assert_eq "$(cat "$cg/pids.max")" 100 "pids.max"
  assert_eq "$(p exec "$n" cat /sys/fs/cgroup/memory.max)" 67108864 "memory.max inside"
  p update --memory 128m "$n" >/dev/null
  assert_eq "$(unit_prop "$unit" MemoryMax)" 134217728 "MemoryMax after update"
  assert_eq "$(cat "$cg/memory.max")" 134217728 "memory.max after update"
  p pause "$n" >/dev/null
  assert_eq "$(cat "$cg/cgroup.freeze")" 1 "frozen"
  p unpause "$n" >/dev/null
  p rm -f -t 0 "$n" >/dev/null
  assert_eq "$(unit_prop "$unit" LoadState)" not-found "unit after rm"
}

sc_containerd_run_echo() {
  local id; id=$(cname echo)
  assert_eq "$(crun "$id" --rm "$IMG" "$id" echo hello)" hello
  assert_eq "$(unit_prop "hakoint-$id.scope" LoadState)" not-found "unit after the task"
}

sc_containerd_scope_exec_kill() {
  local id pid unit; id=$(cname det); unit=hakoint-$id.scope
  crun "$id" -d --memory-limit 67108864 "$IMG" "$id" sleep 1000 >/dev/null
  pid=$(task_pid "$id")
  assert_eq "$(unit_prop "$unit" ActiveState)" active "unit state"
  assert_eq "$(unit_prop "$unit" Delegate)" yes "Delegate"
  assert_eq "$(unit_prop "$unit" MemoryMax)" 67108864 "MemoryMax"
  assert_eq "$(cgroup_of "$pid")" "/system.slice/$unit" "the init's cgroup"
  assert_eq "$(cat "/sys/fs/cgroup/system.slice/$unit/memory.max")" 67108864 "memory.max"
  assert_eq "$(c task exec --fifo-dir "$C/fifo" --exec-id e1 "$id" echo from-exec)" from-exec "task exec"
  c task pause "$id"
  assert_eq "$(task_status "$id")" PAUSED
  c task resume "$id"
  assert_contains "$(c task metrics "$id")" memory "task metrics"
  c task kill -s SIGKILL "$id"
  retry 100 task_stopped "$id" || fail "task did not stop"
  c task delete "$id" >/dev/null
  c containers delete "$id"
  assert_eq "$(unit_prop "$unit" LoadState)" not-found "unit after delete"
  [ ! -d "/sys/fs/cgroup/system.slice/$unit" ] || fail "cgroup left after delete"
}

SCENARIOS=(podman_run_echo podman_scope_exec_stop podman_limits_update containerd_run_echo
  containerd_scope_exec_kill)

if [ "${1:-}" = scenario ]; then
  set -x
  "sc_$2"
  exit 0
fi

[ -d /run/systemd/system ] || { echo "systemd.sh: needs a host booted with systemd" >&2; exit 1; }
[ $# -eq 0 ] || SCENARIOS=("$@")
mkdir -p "$LOGS"
trap teardown EXIT
teardown
setup
run_scenarios systemd "$0" cleanup_containers "${SCENARIOS[@]}"
