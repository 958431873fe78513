#!/usr/bin/env bash
# podman-rootless.sh: podman.sh's scenarios run by an unprivileged user (rootless podman: its own
# user namespace from /etc/subuid and /etc/subgid, its own storage under a private dir), hako and
# runc side by side. Runs as root only to create the user and a directory that user owns, with
# copies of the scripts and both runtimes in it (the checkout may be unreadable to the user).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

user=$(ensure_test_user)
W=$(mktemp -d /tmp/hako-rl.XXXXXX)
# Processes this run left (podman's pause process keeps its user namespace): exactly those whose
# environment names this run's $XDG_RUNTIME_DIR, each by its pid.
cleanup() {
  local e pid
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}; pid=${pid%/environ}
    if tr '\0' '\n' <"$e" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$W/xdg"; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$W"
}
trap cleanup EXIT
chmod 755 "$W"
mkdir -p "$W/repo/integration" "$W/repo/scripts" "$W/bin" "$W/home" "$W/xdg" "$W/work"
cp "$REPO"/integration/*.sh "$W/repo/integration/"
cp "$REPO/scripts/mkbundle.sh" "$W/repo/scripts/"
cp "$HAKO" "$W/bin/hako"
cp "$RUNC" "$W/bin/runc"
chmod 700 "$W/xdg"
chown -R "$user:" "$W"
status=0
runuser -u "$user" -- env -i PATH="$PATH" HOME="$W/home" USER="$user" XDG_RUNTIME_DIR="$W/xdg" \
  INT_WORK="$W/work" RESULTS="$W/results" LOGS="$W/logs" HAKO="$W/bin/hako" RUNC="$W/bin/runc" \
  ROOTLESS=1 SUITE=podman-rootless CGROUP_PARENT=unused \
  "$W/repo/integration/podman.sh" "$@" || status=$?
mkdir -p "$LOGS"
[ ! -f "$W/results" ] || cat "$W/results" >>"$RESULTS"
[ ! -d "$W/logs" ] || cp "$W"/logs/* "$LOGS"/ 2>/dev/null || true
exit "$status"
