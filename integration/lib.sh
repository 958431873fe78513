# integration/lib.sh: helpers shared by the suite scripts (sourced, not run).
#
# A suite script calls itself as `SUITE.sh scenario NAME` for each scenario, in a fresh bash with
# `set -euo pipefail` and a timeout, so one failing or hanging scenario never stops the others.
# Results go to $RESULTS, one `suite|scenario|runtime|STATUS|note` line each; STATUS is PASS,
# FAIL, SKIP (the scenario exited 77), XFAIL (failed, and listed as expected to fail) or XPASS.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HAKO=${HAKO:-$REPO/target/release/hako}
export RUNC=${RUNC:-/usr/sbin/runc}
export INT_WORK=${INT_WORK:-$REPO/.tmp/integration}
export RESULTS=${RESULTS:-$INT_WORK/results}
export LOGS=${LOGS:-$INT_WORK/logs}
SCENARIO_TIMEOUT=${SCENARIO_TIMEOUT:-120}

# Ctrl-C: bash waits for the running scenario (timeout gives it its own process group), then
# exits, and the suite's EXIT trap cleans up.
trap 'exit 130' INT

log() { printf '%s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

assert_eq() { # ACTUAL EXPECTED [WHAT]
  [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"
}
assert_contains() { # HAYSTACK NEEDLE [WHAT]
  case "$1" in *"$2"*) ;; *) fail "${3:-output}: expected to contain '$2', got '$1'" ;; esac
}

# rc CMD...: run CMD (never aborting under set -e) and print its exit status.
rc() { local s=0; "$@" >/dev/null 2>&1 || s=$?; echo "$s"; }

# retry N CMD...: run CMD up to N times, 0.2 s apart, until it succeeds.
retry() {
  local n=$1; shift
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}

# daemon_start NAME PIDFILE LOG TRIES PROBE... -- CMD...: a private daemon. CMD runs in the
# background (output to LOG, its pid into PIDFILE), then PROBE is tried up to TRIES times, 0.2 s
# apart, until it answers; otherwise the run fails with LOG's last lines.
daemon_start() {
  local name=$1 pidfile=$2 log=$3 tries=$4 probe=()
  shift 4
  while [ $# -gt 0 ] && [ "$1" != -- ]; do probe+=("$1"); shift; done
  [ $# -gt 1 ] || fail "daemon_start $name: no command after --"
  shift
  "$@" >"$log" 2>&1 &
  echo $! >"$pidfile"
  retry "$tries" "${probe[@]}" >/dev/null 2>&1 || fail "$name did not come up: $(tail -5 "$log")"
}

# daemon_pid PIDFILE MARK: the pid in PIDFILE while that process is still ours, i.e. its command
# line names MARK (our config file or data dir): a stale file or a recycled pid is someone else's.
daemon_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || return 1
  grep -qF -- "$2" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# daemon_stop PIDFILE MARK [TRIES]: our daemon (see daemon_pid) gets TERM, up to TRIES (50) checks
# 0.2 s apart to exit (it stops its own children on the way out), then KILL.
daemon_stop() {
  local pid
  pid=$(daemon_pid "$1" "$2") || return 0
  kill "$pid" && retry "${3:-50}" sh -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid"
}

# kill_strays PATTERN: KILL what outlived its daemon (it would be a bug), ours because its command
# line names PATTERN (our socket or exec dir).
kill_strays() {
  local pid
  for pid in $(pgrep -f -- "$1" || true); do kill -9 "$pid"; done
}

# unmount_under DIR: every mount below DIR, the deepest first (lazily): what our daemons left.
unmount_under() {
  findmnt -rn -o TARGET | grep "^$1/" | sort -r | while read -r m; do umount -l "$m"; done
}

# containerd_conf DIR SOCK [TOP-LEVEL LINES]: the head of a private containerd's config.toml (root,
# state, sockets and opt under DIR, on stdout); callers append their plugin tables.
containerd_conf() {
  cat <<EOF
version = 2
root = "$1/root"
state = "$1/state"
${3:-}
[grpc]
  address = "$2"

[ttrpc]
  address = "$2.ttrpc"

[debug]
  address = "$1/debug.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$1/opt"
EOF
}

# needs_criu: SKIP the scenario unless CRIU is on PATH with the ip(6)tables-restore its network
# lock runs on a dumped network namespace (the iptables package, which `make deps` installs).
needs_criu() {
  command -v criu >/dev/null || skip "no criu on PATH"
  local t
  for t in iptables-restore ip6tables-restore; do
    command -v "$t" >/dev/null || skip "CRIU's network lock needs $t (install iptables)"
  done
}

# The absolute path of a runtime name (hako or runc).
runtime_bin() { case "$1" in hako) echo "$HAKO" ;; runc) echo "$RUNC" ;; esac; }

# host_cgroup_file PID CONTROLLER FILE: the path of FILE in PID's v1 CONTROLLER cgroup on the host
# (these machines are a v1 hybrid; on pure v2 the unified path is used).
host_cgroup_file() {
  local pid=$1 ctl=$2 file=$3 path
  path=$(awk -F: -v c="$ctl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
  if [ -n "$path" ]; then
    echo "/sys/fs/cgroup/$ctl$path/$file"
  else
    echo "/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")/$file"
  fi
}

# remove_cgroups NAME: the cgroup directory NAME (a parent this run made) and what is under it, in
# every hierarchy. rmdir only removes empty cgroups: one still in use stays.
remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
    [ ! -d "$d" ] || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# podman's containers.conf in FILE: hako (the default) and runc as runtimes, cgroup manager
# MANAGER (cgroupfs or systemd); CONTAINERS, if given, is the body of a [containers] section.
write_containers_conf() { # FILE MANAGER [CONTAINERS]
  {
    [ -z "${3:-}" ] || printf '[containers]\n%s\n\n' "$3"
    cat <<EOF
[engine]
cgroup_manager = "$2"
events_logger = "file"
runtime = "hako"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "hako"]

[engine.runtimes]
hako = ["$HAKO"]
runc = ["$RUNC"]
EOF
  } >"$1"
}

# A busybox-static root filesystem in DIR (the one scripts/mkbundle.sh makes).
make_rootfs() {
  local dir=$1
  "$REPO/scripts/mkbundle.sh" "$dir.bundle" >/dev/null
  mv "$dir.bundle/rootfs" "$dir"
  rm -rf "$dir.bundle"
}

# run_scenarios SUITE SCRIPT CLEANUP_FN SCENARIO...: every scenario against hako and runc.
# XFAIL_hako / XFAIL_runc (space-separated scenario names) mark expected failures, with the reason
# in XFAIL_NOTE_<scenario>; when XFAIL_MATCH_<scenario> is set, the scenario's log must contain it
# (otherwise it failed for another reason: FAIL).
run_scenarios() {
  local suite=$1 script=$2 cleanup=$3 rt name status code note failed=0
  shift 3
  mkdir -p "$LOGS"
  for rt in hako runc; do
    for name in "$@"; do
      local logf="$LOGS/$suite-$rt-$name.log" xfail_var="XFAIL_$rt"
      local start=$SECONDS
      code=0
      RT=$rt RTBIN=$(runtime_bin "$rt") timeout -k 10 "$SCENARIO_TIMEOUT" \
        "$script" scenario "$name" >"$logf" 2>&1 </dev/null || code=$?
      RT=$rt "$cleanup" >>"$logf" 2>&1 || true
      note=""
      case " ${!xfail_var:-} " in
        *" $name "*)
          local mv="XFAIL_MATCH_$name"
          if [ "$code" = 0 ]; then
            status=XPASS
          elif [ -n "${!mv:-}" ] && ! grep -qF -- "${!mv}" "$logf"; then
            status=FAIL note="expected failure, but not with '${!mv}'"
          else
            status=XFAIL
          fi ;;
        *) case $code in 0) status=PASS ;; 77) status=SKIP ;; *) status=FAIL ;; esac ;;
      esac
      [ "$code" = 124 ] && note="timed out after ${SCENARIO_TIMEOUT}s"
      [ "$status" = SKIP ] && note=$(sed -n 's/^SKIP: //p' "$logf" | tail -1)
      if [ "$status" = XFAIL ]; then local nv="XFAIL_NOTE_$name"; note=${!nv:-expected failure}; fi
      printf '%s|%s|%s|%s|%s\n' "$suite" "$name" "$rt" "$status" "$note" >>"$RESULTS"
      printf '%-10s %-5s %-22s %-5s %3ss %s\n' "$suite" "$rt" "$name" "$status" $((SECONDS - start)) "$note"
      if [ "$status" = FAIL ]; then
        failed=1
        sed 's/^/    | /' "$logf" | tail -n 15
      fi
    done
  done
  return "$failed"
}

# ensure_test_user: the unprivileged user `hakotest` with 65536 subordinate uids and gids (what
# tests/src/lib.rs test_user() makes; the same name, so both share it). Prints its name.
ensure_test_user() {
  flock /run/hako-test-user.lock sh -c '
    name=hakotest
    id -u $name >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin -U $name
    for f in /etc/subuid /etc/subgid; do
      touch $f
      if ! grep -q "^$name:" $f; then
        start=$(awk -F: "BEGIN{m=100000} {e=\$2+\$3; if (e>m) m=e} END{print m}" $f)
        echo "$name:$start:65536" >> $f
      fi
    done'
  echo hakotest
}
