#!/usr/bin/env bash
# podman.sh: podman drives hako and runc through the same scenarios (see docs/integration.md).
# Private storage and state under $INT_WORK/podman; everything is removed on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

P=$INT_WORK/podman
# podman refuses a runroot longer than 50 characters, which $P/runroot is in a checkout with a
# long path: a short one in /tmp instead, named after $P so each checkout (and user) has its own.
RUNROOT=/tmp/hako-prr-$(printf %s "$P" | md5sum | cut -c1-12)
IMG=localhost/hako-int/busybox:latest
PAUSE_IMG=localhost/hako-int/pause:latest
export CONTAINERS_CONF=$P/containers.conf
# Every scenario runs with podman's default seccomp profile, as users get it, except the one that
# checks `seccomp=unconfined`.
SECCOMP=()
XFAIL_hako=""

# podman with private storage; the runtime is picked by name from containers.conf.
PFLAGS=(--root "$P/root" --runroot "$RUNROOT" --tmpdir "$P/tmp" --storage-driver overlay
  --network-config-dir "$P/networks" --volumepath "$P/volumes"
  --cgroup-manager cgroupfs --events-backend file --runtime "${RT:-hako}")
p() { podman "${PFLAGS[@]}" "$@"; }
# in_tty CMD...: CMD on a pseudo-terminal (script(1)), output without carriage returns.
in_tty() { script -qec "$(printf '%q ' "$@")" /dev/null | tr -d '\r'; }
# Containers (and conmon) go under a cgroup parent of this run, removed at the end.
export CGROUP_PARENT=${CGROUP_PARENT:-hako-int-podman-$$}
# ROOTLESS=1: run by an unprivileged user (integration/podman-rootless.sh); podman then picks the
# cgroups itself (none on a cgroup v1 host), so no parent is given.
ROOTLESS=${ROOTLESS:-}
SUITE=${SUITE:-podman}
CGP=(--cgroup-parent "/$CGROUP_PARENT")
[ -z "$ROOTLESS" ] || CGP=()
prun() { p run --network none "${CGP[@]}" "${SECCOMP[@]}" "$@"; }
# Scenarios about the container's cgroup: rootless on a cgroup v1 (or hybrid) host the user can
# write no hierarchy, so podman and the runtime give the container no cgroup (docs/rootless.md).
needs_cgroup() {
  if [ -n "$ROOTLESS" ] && grep -q ' - cgroup cgroup ' /proc/self/mountinfo; then
    skip "rootless on a cgroup v1 host: no cgroup to $1"
  fi
}
name() { echo "int-$RT-$1"; }
logs_have() { p logs "$1" 2>&1 | grep -q "$2"; }
state() { p inspect --format '{{.State.Status}}' "$1"; }
cpid() { p inspect --format '{{.State.Pid}}' "$1"; }

write_conf() {
  mkdir -p "$P"
  write_containers_conf "$CONTAINERS_CONF" cgroupfs \
    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
}

setup() {
  write_conf
  make_rootfs "$P/rootfs"
  echo from-image >"$P/rootfs/tmp/from-image" # read_only: the tmpfs podman puts on /tmp keeps it
  # cri.sh's pod sandbox image: the same files, an entrypoint that only waits, as the pause image.
  printf '#!/bin/sh\ntrap "exit 0" TERM INT\nwhile :; do sleep 3600 & wait $!; done\n' >"$P/rootfs/pause"
  chmod +x "$P/rootfs/pause"
  tar -C "$P/rootfs" -c . | p import -q --change CMD=/bin/sh - "$IMG" >/dev/null
  # The same image for containerd.sh and cri.sh (OCI archive) and docker.sh (docker 20.10 loads
  # only its own archive format).
  [ -z "$ROOTLESS" ] || return 0
  tar -C "$P/rootfs" -c . | p import -q --change 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMG" >/dev/null
  rm -f "$INT_WORK/busybox-oci.tar" "$INT_WORK/busybox-docker.tar"
  p save -q --format oci-archive -o "$INT_WORK/busybox-oci.tar" "$IMG"
  p save -q --format docker-archive -o "$INT_WORK/busybox-docker.tar" "$IMG"
  rm -f "$INT_WORK/pause-oci.tar"
  p save -q --format oci-archive -o "$INT_WORK/pause-oci.tar" "$PAUSE_IMG"
}

cleanup_containers() { p rm -af -t 0 >/dev/null 2>&1 || true; }

teardown() {
  set +e
  RT=hako cleanup_containers
  p rmi -af >/dev/null 2>&1 || true
  if [ -n "$ROOTLESS" ]; then
    # Storage files belong to subordinate ids: removed from inside podman's user namespace; then
    # podman's pause process (it keeps that namespace) goes.
    [ ! -d "$P" ] || p unshare rm -rf "$P/root" "$RUNROOT" >/dev/null 2>&1
    [ ! -f "$P/tmp/pause.pid" ] || kill "$(cat "$P/tmp/pause.pid")" 2>/dev/null
  fi
  # Storage mounts (overlay home, container rootfs) all live under $P and $RUNROOT.
  findmnt -rn -o TARGET | grep -e "^$P/" -e "^$RUNROOT/" | sort -r | while read -r m; do umount -l "$m"; done
  remove_cgroups "$CGROUP_PARENT"
  rm -rf "$P" "$RUNROOT"
}

# ---- scenarios: each runs in its own process with RT (hako|runc) set ----

sc_run_echo() {
  assert_eq "$(prun --rm "$IMG" echo hello)" hello
}

sc_exit_code() {
  assert_eq "$(rc prun --rm "$IMG" sh -c 'exit 7')" 7 "exit status"
}

sc_detach_exec_ps_top_stop() {
  local c; c=$(name det)
  prun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  assert_eq "$(state "$c")" running
  assert_eq "$(p exec "$c" echo from-exec)" from-exec "exec"
  assert_eq "$(rc p exec "$c" sh -c 'exit 5')" 5 "exec exit status"
  assert_eq "$(echo piped | p exec -i "$c" cat)" piped "exec -i"
  assert_eq "$(rc p exec "$c" no-such-cmd)" 127 "exec of a missing executable"
  assert_contains "$(p ps --format '{{.Names}} {{.Status}}')" "$c Up" "ps"
  assert_contains "$(p top "$c" pid args)" "sleep 1000" "top"
  p stop -t 1 "$c" >/dev/null
  assert_eq "$(state "$c")" exited
  p rm "$c" >/dev/null
  assert_eq "$(rc p container exists "$c")" 1 "container exists after rm"
}

sc_tty() {
  local c out; c=$(name tty)
  out=$(in_tty podman "${PFLAGS[@]}" run --rm -t --network none "${CGP[@]}" "${SECCOMP[@]}" "$IMG" \
    sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; sleep 0.3')
  assert_contains "$out" /dev/pts/ "tty in run -t"
  assert_contains "$out" stdin-is-tty "run -t"
  prun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  out=$(in_tty podman "${PFLAGS[@]}" exec -t "$c" sh -c 'tty; sleep 0.3')
  assert_contains "$out" /dev/pts/ "tty in exec -t"
}

sc_stdin() {
  assert_eq "$(printf 'one\ntwo\n' | prun --rm -i "$IMG" sh -c 'cat; echo done')" "$(printf 'one\ntwo\ndone')"
}

sc_kill_signal() {
  local c; c=$(name kill)
  prun -d --name "$c" "$IMG" sh -c 'trap "echo got-usr1; exit 3" USR1; echo ready; while :; do sleep 0.1; done' >/dev/null
  retry 50 logs_have "$c" ready
  p kill -s USR1 "$c" >/dev/null
  assert_eq "$(p wait "$c")" 3 "exit status after USR1"
  assert_contains "$(p logs "$c")" got-usr1 "logs"
}

sc_pause_unpause() {
  needs_cgroup "freeze"
  local c; c=$(name pause)
  prun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  p pause "$c" >/dev/null
  assert_eq "$(state "$c")" paused
  assert_eq "$(cat "$(host_cgroup_file "$(cpid "$c")" freezer freezer.state)")" FROZEN "freezer.state"
  p unpause "$c" >/dev/null
  assert_eq "$(state "$c")" running
  assert_eq "$(p exec "$c" echo alive)" alive "exec after unpause"
}

sc_stats() {
  needs_cgroup "read stats from"
  local c out; c=$(name stats)
  prun -d --name "$c" "$IMG" sleep 1000 >/dev/null
  out=$(p stats --no-stream --format '{{.Name}} {{.PIDs}} {{.MemUsage}}' "$c")
  assert_contains "$out" "$c 1 " "stats"
  case "$out" in *" -- "* | *" 0B / "*) fail "stats: no memory usage in '$out'" ;; esac
}

sc_update_memory() {
  needs_cgroup "update"
  local c f; c=$(name upd)
  prun -d --name "$c" --memory 64m "$IMG" sleep 1000 >/dev/null
  f=$(host_cgroup_file "$(cpid "$c")" memory memory.limit_in_bytes)
  assert_eq "$(cat "$f")" 67108864 "memory limit before update"
  p update --memory 128m "$c" >/dev/null
  assert_eq "$(cat "$f")" 134217728 "memory limit after update"
}

sc_resource_limits() {
  needs_cgroup "limit"
  local c pid; c=$(name res)
  prun -d --name "$c" --memory 64m --pids-limit 100 --cpus 0.5 "$IMG" sleep 1000 >/dev/null
  pid=$(cpid "$c")
  assert_eq "$(cat "$(host_cgroup_file "$pid" memory memory.limit_in_bytes)")" 67108864 "host memory.limit_in_bytes"
  assert_eq "$(cat "$(host_cgroup_file "$pid" pids pids.max)")" 100 "host pids.max"
  assert_eq "$(cat "$(host_cgroup_file "$pid" cpu cpu.cfs_quota_us)")" 50000 "host cpu.cfs_quota_us"
  assert_eq "$(cat "$(host_cgroup_file "$pid" cpu cpu.cfs_period_us)")" 100000 "host cpu.cfs_period_us"
  # What the container itself sees (its own cgroup at the root of /sys/fs/cgroup/<controller>).
  assert_eq "$(p exec "$c" cat /sys/fs/cgroup/memory/memory.limit_in_bytes)" 67108864 "memory limit inside"
  assert_eq "$(p exec "$c" cat /sys/fs/cgroup/pids/pids.max)" 100 "pids.max inside"
  assert_eq "$(p exec "$c" cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)" 50000 "cpu quota inside"
}

sc_cap_drop() {
  assert_contains "$(prun --rm --cap-drop all "$IMG" grep CapEff /proc/self/status)" 0000000000000000 "CapEff with --cap-drop all"
  assert_eq "$(prun --rm --cap-drop chown "$IMG" sh -c 'touch /tmp/f; chown 65534 /tmp/f 2>/dev/null && echo chowned || echo denied')" denied "chown without CAP_CHOWN"
  assert_eq "$(prun --rm "$IMG" sh -c 'touch /tmp/f; chown 65534 /tmp/f && echo chowned')" chowned "chown with the default caps"
}

sc_user() {
  assert_eq "$(prun --rm --user 65534:65534 "$IMG" sh -c 'echo $(id -u):$(id -g)')" 65534:65534
  assert_eq "$(prun --rm --user nobody "$IMG" id -un)" nobody
}

sc_read_only() {
  assert_eq "$(prun --rm --read-only "$IMG" sh -c 'touch /x 2>/dev/null && echo rw || echo ro; touch /tmp/y && echo tmp-rw; cat /tmp/from-image')" \
    "$(printf 'ro\ntmp-rw\nfrom-image')"
}

sc_seccomp_unconfined() {
  assert_contains "$(prun --rm --security-opt seccomp=unconfined "$IMG" grep Seccomp: /proc/self/status)" "$(printf 'Seccomp:\t0')"
}

sc_seccomp_default() {
  # podman's default profile: filter mode (2).
  assert_contains "$(p run --rm --network none "${CGP[@]}" "$IMG" grep Seccomp: /proc/self/status)" "$(printf 'Seccomp:\t2')"
}

sc_rootfs_dir() {
  local dir=$P/rootfs-$RT
  rm -rf "$dir" && cp -a "$P/rootfs" "$dir"
  echo "rootfs of $RT" >"$dir/marker"
  assert_eq "$(prun --rm --rootfs "$dir" cat /marker)" "rootfs of $RT"
  rm -rf "$dir"
}

sc_network_host() {
  # No network namespace: the host's interfaces (sysfs cannot be mounted fresh rootless then; the
  # runtime binds the host's /sys).
  local want; want=$(ls /sys/class/net | sort | tr '\n' ' ')
  assert_eq "$(p run --rm --network host "${CGP[@]}" "${SECCOMP[@]}" "$IMG" sh -c "ls /sys/class/net | sort | tr '\n' ' '")" \
    "$want" "interfaces with --network host"
}

sc_missing_executable() {
  local out code=0
  out=$(prun --rm "$IMG" no-such-cmd 2>&1) || code=$?
  assert_eq "$code" 127 "exit status"
  assert_contains "$out" "executable file not found" "error"
}

# checkpoint/restore: CRIU on PATH (`make integration` puts ../shared/criu's build first). The token
# lives only in the shell's memory: a restarted container would show another one.
COUNTER='v=$(cat /proc/sys/kernel/random/uuid); i=0; while :; do i=$((i+1)); echo "$v $i" >/tmp/count; sleep 0.1; done'
needs_root_criu() {
  [ -z "$ROOTLESS" ] || skip "checkpoint/restore needs root (CRIU)"
  needs_criu
}
token() { p exec "$1" cat /tmp/count | cut -d' ' -f1; }
count_of() { p exec "$1" cat /tmp/count | cut -d' ' -f2; }
count_above() { [ "$(count_of "$1")" -gt "$2" ]; }

sc_checkpoint_restore() {
  needs_root_criu
  local c t n; c=$(name ckpt)
  prun -d --name "$c" "$IMG" sh -c "$COUNTER" >/dev/null
  retry 50 count_above "$c" 2
  t=$(token "$c")
  p container checkpoint "$c" >/dev/null
  assert_eq "$(state "$c")" exited "state after checkpoint"
  p container restore "$c" >/dev/null
  assert_eq "$(state "$c")" running "state after restore"
  assert_eq "$(token "$c")" "$t" "token after restore (memory)"
  n=$(count_of "$c")
  retry 50 count_above "$c" "$n" || fail "the counter stopped after restore"
  # Again, leaving it running.
  p container checkpoint --leave-running "$c" >/dev/null
  assert_eq "$(state "$c")" running "state after checkpoint --leave-running"
  assert_eq "$(token "$c")" "$t" "token after the second checkpoint"
}

sc_checkpoint_export_import() {
  needs_root_criu
  local c t n f; c=$(name ckpt-exp); f=$P/checkpoint-$RT.tar.gz
  prun -d --name "$c" "$IMG" sh -c "$COUNTER" >/dev/null
  retry 50 count_above "$c" 2
  t=$(token "$c")
  p container checkpoint --export "$f" "$c" >/dev/null
  p rm -f "$c" >/dev/null
  p container restore --import "$f" >/dev/null
  assert_eq "$(state "$c")" running "state after restore --import"
  assert_eq "$(token "$c")" "$t" "token after import (memory)"
  n=$(count_of "$c")
  retry 50 count_above "$c" "$n" || fail "the counter stopped after import"
  rm -f "$f"
}

# Idmapped volumes (podman's `:idmap`, issue 19): in a user namespace of its own the container's
# root owns what the host's root owns, and what it writes is the host's root's. Debian's runc 1.1
# has no idmapped mounts (runc 1.2+ has).
MAPS=(--uidmap 0:200000:65536 --gidmap 0:200000:65536)
idmap_dir() {
  local d=$P/idmap-$RT
  rm -rf "$d" && mkdir -p "$d" && echo x >"$d/f"
  echo "$d"
}
no_rootless() { [ -z "$ROOTLESS" ] || skip "rootless: the runtime cannot idmap the host's filesystems"; }

sc_idmap_volume_uidmap() {
  no_rootless
  local d; d=$(idmap_dir)
  assert_eq "$(prun --rm "${MAPS[@]}" -v "$d:/v:idmap" "$IMG" sh -c \
    'stat -c %u:%g /v/f; touch /v/new; set -- $(cat /proc/self/uid_map); echo $2')" \
    "$(printf '0:0\n200000')" "owner inside of a file of the host's root, and the root's host id"
  assert_eq "$(stat -c %u:%g "$d/new")" 0:0 "host owner of a file the container's root wrote"
  assert_eq "$(prun --rm "${MAPS[@]}" -v "$d:/v" "$IMG" stat -c %u:%g /v/f)" 65534:65534 \
    "owner inside without idmap"
  rm -rf "$d"
}

# `:idmap=uids=FS-HOST-SIZE;gids=…` (crun's syntax; podman 4.3 passes the option through): the
# filesystem's 1000:2000 is the container's root.
sc_idmap_volume_mapping() {
  no_rootless
  local d; d=$(idmap_dir)
  chown -R 1000:2000 "$d"
  assert_eq "$(prun --rm "${MAPS[@]}" -v "$d:/v:idmap=uids=1000-200000-1;gids=2000-200000-1" "$IMG" \
    sh -c 'stat -c %u:%g /v/f; touch /v/new')" 0:0 "owner inside of the filesystem's 1000:2000"
  assert_eq "$(stat -c %u:%g "$d/new")" 1000:2000 "host owner of a file the container's root wrote"
  rm -rf "$d"
}

# --userns=auto takes its ranges from the subordinate ids of storage's `root-auto-userns-user`:
# the test user's (ensure_test_user), named in a storage.conf of this scenario.
sc_idmap_volume_userns_auto() {
  no_rootless
  ensure_test_user
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n[storage.options]\nroot-auto-userns-user = "hakotest"\n' \
    "$RUNROOT" "$P/root" >"$P/storage-auto.conf"
  export CONTAINERS_STORAGE_CONF=$P/storage-auto.conf
  local d; d=$(idmap_dir)
  local out; out=$(prun --rm --userns=auto -v "$d:/v:idmap" "$IMG" sh -c \
    'stat -c %u:%g /v/f; touch /v/new; set -- $(cat /proc/self/uid_map); echo $2')
  assert_eq "$(echo "$out" | head -1)" 0:0 "owner inside with --userns=auto"
  # Really in a user namespace of its own: its root is not the host's.
  [ "$(echo "$out" | tail -1)" -ge 100000 ] || fail "not in an automatic user namespace: $out"
  assert_eq "$(stat -c %u:%g "$d/new")" 0:0 "host owner of a file the container's root wrote"
  rm -rf "$d"
}

# `--rootfs PATH:idmap`: podman versions that have it make the idmapped mount of PATH themselves
# and pass PATH as root.path; the runtime binds it as it is (tests/idmap.rs has that case).
sc_rootfs_idmap() {
  no_rootless
  local dir=$P/rootfs-idmap-$RT out
  rm -rf "$dir" && cp -a "$P/rootfs" "$dir"
  out=$(prun --rm "${MAPS[@]}" --rootfs "$dir:idmap" stat -c %u:%g /bin/busybox 2>&1) || true
  case $out in *"$dir:idmap: no such file"*) skip "podman $(podman --version | cut -d' ' -f3) has no --rootfs PATH:idmap" ;; esac
  assert_eq "$out" 0:0 "owner inside of the idmapped rootfs"
  rm -rf "$dir"
}
# runc 1.1 passes `idmap` to nothing: the volume is a plain bind, the host's root is nobody
# (runc 1.3, RUNC=…/runc-1.3/runc, passes both). Rootless, both runtimes skip them.
[ -n "$ROOTLESS" ] || XFAIL_runc="idmap_volume_uidmap idmap_volume_mapping idmap_volume_userns_auto"
XFAIL_NOTE_idmap_volume_mapping="runc has no idmap=uids=…;gids=… option (crun's)"
XFAIL_NOTE_idmap_volume_uidmap="runc 1.1 has no idmapped mounts"
XFAIL_MATCH_idmap_volume_uidmap="got '65534:65534"
XFAIL_NOTE_idmap_volume_userns_auto="runc 1.1 has no idmapped mounts"
XFAIL_MATCH_idmap_volume_userns_auto="got '65534:65534"

SCENARIOS=(run_echo exit_code detach_exec_ps_top_stop tty stdin kill_signal pause_unpause stats
  update_memory resource_limits cap_drop user read_only seccomp_unconfined seccomp_default
  rootfs_dir network_host missing_executable checkpoint_restore checkpoint_export_import
  idmap_volume_uidmap idmap_volume_mapping idmap_volume_userns_auto rootfs_idmap)

if [ "${1:-}" = scenario ]; then
  set -x; "sc_$2"
  exit 0
fi

trap teardown EXIT
teardown
setup
[ "${1:-}" != image-only ] || exit 0
[ $# -eq 0 ] || SCENARIOS=("$@")
run_scenarios "$SUITE" "$0" cleanup_containers "${SCENARIOS[@]}"
