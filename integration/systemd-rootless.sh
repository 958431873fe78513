#!/usr/bin/env bash
# systemd-rootless.sh: rootless podman with cgroup_manager = "systemd" drives hako and runc, as an
# unprivileged user whose own systemd instance (user@UID.service, started here by lingering) gives
# each container its scope over the user bus. Needs a host booted with systemd on cgroup v2:
# `make test-systemd` runs it in the systemd VM after systemd.sh; on a real systemd + v2 host it
# runs as it is (as root). Runs as root only to start the user's instance and to make a directory
# that user owns, with copies of the scripts and both runtimes in it; everything else runs as the
# user, inside rootless podman's user namespace (where the runtime is root and finds the user bus
# through its uid map).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# ---- as the test user (this script again, with INNER=1) ----
if [ "${INNER:-}" = 1 ]; then
  W=$INT_WORK
  IMG=localhost/hako-int/busybox:latest
  export CONTAINERS_CONF=$W/containers.conf
  PFLAGS=(--root "$W/root" --runroot "$W/runroot" --tmpdir "$W/tmp" --storage-driver overlay
    --cgroup-manager systemd --events-backend file --runtime "${RT:-hako}")
  p() { podman "${PFLAGS[@]}" "$@"; }
  pname() { echo "sdrl-$RT-$1"; }
  uprop() { systemctl --user show --value -p "$2" "$1"; }
  cgroup_of() { awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup"; }
  # The user's instance's own cgroup, below which its user.slice holds the containers.
  MCG=/user.slice/user-$(id -u).slice/user@$(id -u).service

  sc_podman_run_echo() {
    assert_eq "$(p run --rm --network none "$IMG" echo hello)" hello
  }

  # The container is libpod-<id>.scope of the user's instance, in its user.slice, with the limits
  # that user@.service delegates (cpu, memory, pids); exec joins it; update changes the unit and
  # the file; pause freezes it; rm removes the unit and its cgroup.
  sc_podman_scope_limits_update() {
    local n id pid unit cg; n=$(pname lim)
    p run -d --name "$n" --network none --memory 64m --pids-limit 100 --cpus 0.5 "$IMG" sleep 1000 >/dev/null
    id=$(p inspect --format '{{.Id}}' "$n"); pid=$(p inspect --format '{{.State.Pid}}' "$n")
    unit=libpod-$id.scope; cg=/sys/fs/cgroup$MCG/user.slice/$unit
    assert_eq "$(uprop "$unit" ActiveState)" active "unit state"
    assert_eq "$(uprop "$unit" Delegate)" yes "Delegate"
    assert_eq "$(uprop "$unit" ControlGroup)" "$MCG/user.slice/$unit" "ControlGroup"
    assert_eq "$(cgroup_of "$pid")" "$MCG/user.slice/$unit" "the init's cgroup"
    assert_eq "$(uprop "$unit" MemoryMax)" 67108864 "MemoryMax"
    assert_eq "$(uprop "$unit" TasksMax)" 100 "TasksMax"
    assert_eq "$(uprop "$unit" CPUQuotaPerSecUSec)" 500ms "CPUQuotaPerSecUSec"
    assert_eq "$(cat "$cg/memory.max")" 67108864 "memory.max"
    assert_eq "$(cat "$cg/pids.max")" 100 "pids.max"
    assert_eq "$(p exec "$n" cat /proc/self/cgroup)" "0::/" "exec's cgroup (the scope, as the namespace root)"
    assert_eq "$(p exec "$n" cat /sys/fs/cgroup/memory.max)" 67108864 "memory.max inside"
    p update --memory 128m "$n" >/dev/null
    assert_eq "$(uprop "$unit" MemoryMax)" 134217728 "MemoryMax after update"
    assert_eq "$(cat "$cg/memory.max")" 134217728 "memory.max after update"
    p pause "$n" >/dev/null
    assert_eq "$(cat "$cg/cgroup.freeze")" 1 "frozen"
    p unpause "$n" >/dev/null
    assert_eq "$(cat "$cg/cgroup.freeze")" 0 "thawed"
    p rm -f -t 0 "$n" >/dev/null
    assert_eq "$(uprop "$unit" LoadState)" not-found "unit after rm"
    [ ! -d "$cg" ] || fail "cgroup left after rm"
  }

  cleanup_containers() { p rm -af -t 0 >/dev/null 2>&1 || true; }

  SCENARIOS=(podman_run_echo podman_scope_limits_update)
  if [ "${1:-}" = scenario ]; then
    set -x
    "sc_$2"
    exit 0
  fi
  [ $# -eq 0 ] || SCENARIOS=("$@")
  mkdir -p "$W/tmp"
  write_containers_conf "$CONTAINERS_CONF" systemd
  make_rootfs "$W/rootfs"
  tar -C "$W/rootfs" -c . | p import -q --change CMD=/bin/sh - "$IMG" >/dev/null
  run_scenarios systemd-rootless "$0" cleanup_containers "${SCENARIOS[@]}"
  exit $?
fi

# ---- as root: the user, its systemd instance, a directory it owns ----
[ -d /run/systemd/system ] || { echo "systemd-rootless.sh: needs a host booted with systemd" >&2; exit 1; }
grep -q "cgroup2 cgroup2" /proc/self/mountinfo && ! grep -q " - cgroup cgroup" /proc/self/mountinfo ||
  { echo "systemd-rootless.sh: needs cgroup v2 only (rootless systemd cgroups need it)" >&2; exit 1; }
user=$(ensure_test_user)
uid=$(id -u "$user")
lingered=0
[ ! -e "/var/lib/systemd/linger/$user" ] || lingered=1
W=$(mktemp -d /tmp/hako-sdrl.XXXXXX)
cleanup() {
  local e pid
  # Rootless podman's pause process (and anything else of this run), by the marker in their
  # environment; then the storage (owned by subordinate ids: removed as root).
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}; pid=${pid%/environ}
    if tr '\0' '\n' <"$e" 2>/dev/null | grep -qxF "CONTAINERS_CONF=$W/work/containers.conf"; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$W"
  [ "$lingered" = 1 ] || loginctl disable-linger "$user" 2>/dev/null || true
}
trap cleanup EXIT
loginctl enable-linger "$user"
retry 300 test -S "/run/user/$uid/bus" || { echo "the user manager of $user did not come up" >&2; exit 1; }
chmod 755 "$W"
mkdir -p "$W/repo/integration" "$W/repo/scripts" "$W/bin" "$W/home" "$W/work"
cp "$REPO"/integration/*.sh "$W/repo/integration/"
cp "$REPO/scripts/mkbundle.sh" "$W/repo/scripts/"
cp "$HAKO" "$W/bin/hako"
cp "$RUNC" "$W/bin/runc"
chown -R "$user:" "$W"
status=0
runuser -u "$user" -- env -i PATH="$PATH" HOME="$W/home" USER="$user" \
  XDG_RUNTIME_DIR="/run/user/$uid" DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" \
  INT_WORK="$W/work" RESULTS="$W/results" LOGS="$W/logs" HAKO="$W/bin/hako" RUNC="$W/bin/runc" \
  SCENARIO_TIMEOUT="$SCENARIO_TIMEOUT" INNER=1 \
  "$W/repo/integration/systemd-rootless.sh" "$@" || status=$?
mkdir -p "$LOGS"
[ ! -f "$W/results" ] || cat "$W/results" >>"$RESULTS"
[ ! -d "$W/logs" ] || cp "$W"/logs/* "$LOGS"/ 2>/dev/null || true
exit "$status"
