#!/bin/bash
# make soak: N lifecycles (run -d, exec, pause/resume, kill, delete) of one runtime, half of them
# with an injected fault (the runtime SIGKILLed at a random moment of `run -d`, then
# `delete --force`), then a leak report: mounts, cgroup directories, container processes and files
# under --root that outlived their container, and the open fds of a foreground `run` that stays
# alive through the whole soak (exec, pause and resume reach its container every 10 lifecycles).
# docs/reliability.md has the figures.
#
#   scripts/soak.sh [N]            RUNTIME=/path/to/runtime (default target/debug/hako)
set -u
N=${1:-1000}
RUNTIME=${RUNTIME:-$(dirname "$0")/../target/debug/hako}
case $RUNTIME in */*) ;; *) RUNTIME=$(command -v "$RUNTIME" || echo "$RUNTIME") ;; esac
[ "$(id -u)" = 0 ] || { echo "soak: needs root" >&2; exit 1; }
[ -x "$RUNTIME" ] || { echo "soak: no runtime at $RUNTIME" >&2; exit 1; }

work=$(mktemp -d /tmp/soak.XXXXXX)
root=$work/root
parent=hako-soak-$$
mark=31337$$
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys" "$bundle/rootfs/tmp" "$root"
cp /bin/busybox "$bundle/rootfs/bin/"
for a in sh sleep true; do ln -s busybox "$bundle/rootfs/bin/$a"; done
(cd "$bundle" && "$RUNTIME" spec 2>/dev/null || runc spec)
jq --arg cg "/$parent/CG" --arg m "$mark" \
	'.process.terminal=false | .process.args=["sleep",$m] | .linux.cgroupsPath=$cg' \
	"$bundle/config.json" >"$bundle/c.json"

# The long-lived runtime: a foreground `run` (as a shell or conmon-less caller keeps one).
fg=soak-$$-fg
sed "s|CG|fg|" "$bundle/c.json" >"$bundle/config.json"
"$RUNTIME" --root "$root" run --bundle "$bundle" "$fg" >/dev/null 2>&1 </dev/null &
fg_pid=$!
for _ in $(seq 50); do [ -f "$root/$fg/state.json" ] && break; sleep 0.1; done
sleep 0.2
fds() { ls "/proc/$fg_pid/fd" 2>/dev/null | wc -l; }
fds_before=$(fds)

mounts_before=$(wc -l </proc/self/mountinfo)
failures=0 faults=0 fault_left=0
fail() { failures=$((failures + 1)); echo "soak: #$i: $*" >&2; }
start=$(date +%s)
for i in $(seq 1 "$N"); do
	id=soak-$$-$i
	sed "s|CG|c$i|" "$bundle/c.json" >"$bundle/config.json"
	if [ $((i % 2)) = 0 ]; then
		# A fault: SIGKILL after 0-30 ms (a shim timing out), then the caller's cleanup.
		faults=$((faults + 1))
		d=$(printf '0.%03d' $((1 + RANDOM % 30)))
		"$RUNTIME" --root "$root" run -d --bundle "$bundle" "$id" >/dev/null 2>&1 </dev/null &
		sleep "$d"
		kill -KILL $! 2>/dev/null
		wait $! 2>/dev/null
		"$RUNTIME" --root "$root" delete -f "$id" >/dev/null 2>&1 || fail "delete -f after the fault failed"
		[ -e "$root/$id" ] && fault_left=$((fault_left + 1))
		continue
	fi
	if [ $((i % 10)) = 1 ]; then
		"$RUNTIME" --root "$root" exec "$fg" true </dev/null >/dev/null 2>&1 || fail "exec into the foreground container"
		"$RUNTIME" --root "$root" pause "$fg" >/dev/null 2>&1 || fail "pause the foreground container"
		"$RUNTIME" --root "$root" resume "$fg" >/dev/null 2>&1 || fail "resume the foreground container"
	fi
	"$RUNTIME" --root "$root" run -d --bundle "$bundle" "$id" >/dev/null 2>&1 </dev/null || { fail "run -d"; "$RUNTIME" --root "$root" delete -f "$id" >/dev/null 2>&1; continue; }
	"$RUNTIME" --root "$root" exec "$id" true </dev/null >/dev/null 2>&1 || fail "exec"
	"$RUNTIME" --root "$root" pause "$id" >/dev/null 2>&1 || fail "pause"
	"$RUNTIME" --root "$root" resume "$id" >/dev/null 2>&1 || fail "resume"
	"$RUNTIME" --root "$root" kill "$id" KILL >/dev/null 2>&1 || fail "kill"
	"$RUNTIME" --root "$root" delete -f "$id" >/dev/null 2>&1 || fail "delete -f"
done
secs=$(($(date +%s) - start))
fds_after=$(fds)
"$RUNTIME" --root "$root" kill "$fg" KILL >/dev/null 2>&1
wait "$fg_pid" 2>/dev/null
[ -e "$root/$fg" ] && "$RUNTIME" --root "$root" delete -f "$fg" >/dev/null 2>&1
sleep 1 # SIGKILLed inits are reaped by pid 1 asynchronously

procs=$(pgrep -f "^sleep $mark\$" | wc -l)
cgdirs=0
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
	[ -d "$h$parent" ] || continue
	n=$(find "$h$parent" -mindepth 0 -type d | wc -l)
	cgdirs=$((cgdirs + n))
done
files=$(find "$root" -mindepth 1 | wc -l)
mounts=$(($(wc -l </proc/self/mountinfo) - mounts_before))

echo "runtime: $RUNTIME ($("$RUNTIME" --version 2>/dev/null | head -1))"
echo "lifecycles: $N ($faults with a fault), ${secs}s"
echo "command failures: $failures (faulted containers still recorded after delete -f: $fault_left)"
echo "leaks: processes $procs, cgroup dirs $cgdirs, files under --root $files, mounts $mounts"
echo "foreground run's open fds: $fds_before at the start, $fds_after at the end"
fdleak=$((fds_after > fds_before ? fds_after - fds_before : 0))
[ "$fds_before" -gt 0 ] || { fdleak=1; echo "soak: the foreground run did not start" >&2; }

# Clean what the runtime left, so the next run starts from nothing (only what this run made).
pkill -KILL -f "^sleep $mark\$" 2>/dev/null
sleep 0.2
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
	[ -d "$h$parent" ] && find "$h$parent" -mindepth 0 -depth -type d -exec rmdir {} + 2>/dev/null
done
# runc leaves a bind mount of its own binary in a state directory it did not finish.
grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
rm -rf "$work"
[ "$procs$cgdirs$files$mounts$fdleak" = 00000 ] && [ "$failures" = 0 ]
