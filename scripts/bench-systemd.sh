#!/usr/bin/env bash
# bench-systemd.sh: the cost of --systemd-cgroup (a transient scope over D-Bus) for `run /bin/true`,
# hako and runc, with and without the flag. Needs a host booted with systemd on cgroup v2:
# `make bench-systemd` runs it in ../shared/vm's guest with systemd 252 as PID 1 (these machines
# have no systemd). Writes docs/benchmarks-systemd.md. Environment: RUNS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /run/systemd/system ] || { echo "bench-systemd: needs a host booted with systemd" >&2; exit 1; }
RUNS=${RUNS:-20}
HAKO=${HAKO:-$PWD/target/release/hako}
RUNC=$(command -v runc)
work=$(mktemp -d /tmp/hako-bench-sd.XXXXXX)
trap 'rm -rf "$work"' EXIT
scripts/mkbundle.sh "$work/bundle" /bin/true >/dev/null
# The cgroupfs runs get their own cgroup under a hako-owned parent; the systemd runs a scope
# (`:bench:<id>` → system.slice/bench-<id>.scope). `run` deletes the container, so one id serves.
jq '.linux.cgroupsPath = "/hako-bench/c"' "$work/bundle/config.json" >"$work/c.json"
mkdir -p "$work/bundle-sd"
cp -a "$work/bundle/rootfs" "$work/bundle-sd/"
jq '.linux.cgroupsPath = ":bench:c"' "$work/bundle/config.json" >"$work/bundle-sd/config.json"
mv "$work/c.json" "$work/bundle/config.json"
hyperfine -N --warmup 2 --runs "$RUNS" \
  -n "hako" "$HAKO --root $work/rh run -b $work/bundle c" \
  -n "hako --systemd-cgroup" "$HAKO --root $work/rh --systemd-cgroup run -b $work/bundle-sd c" \
  -n "runc" "$RUNC --root $work/rr run -b $work/bundle c" \
  -n "runc --systemd-cgroup" "$RUNC --root $work/rr --systemd-cgroup run -b $work/bundle-sd c" \
  --export-markdown "$work/run.md" --export-json "$work/run.json"
rmdir /sys/fs/cgroup/hako-bench 2>/dev/null || true
median() { jq -r ".results[] | select(.command==\"$1\") | .median * 1000" "$work/run.json"; }
{
  echo "# Benchmark: run with and without --systemd-cgroup"
  echo
  echo "Produced by \`make bench-systemd\` (scripts/bench-systemd.sh) on $(date -u +%Y-%m-%d) in the"
  echo "QEMU guest of ../shared/vm booted with $(systemctl --version | head -1) as PID 1, cgroup v2,"
  echo "kernel $(uname -r). The guest is **emulated** (7-20x slower than the host): compare the"
  echo "rows with each other, not with docs/benchmarks.md. $RUNS runs each after 2 warm-ups; on the"
  echo "loaded, emulated guest the spread is wide (σ up to half the mean): repeat before concluding."
  echo
  cat "$work/run.md"
  echo
  printf 'Cost of the flag (median): hako +%.1f ms, runc +%.1f ms. ' \
    "$(echo "$(median 'hako --systemd-cgroup') - $(median hako)" | bc -l)" \
    "$(echo "$(median 'runc --systemd-cgroup') - $(median runc)" | bc -l)"
  echo "The extra work is systemd's: a D-Bus connection (auth, Hello, AddMatch), StartTransientUnit,"
  echo "the wait for its job, and at delete StopUnit and the wait for that job. Without the flag hako"
  echo "loads and connects nothing of it (tests/tests/systemd.rs checks that a cgroupfs \`run\` never"
  echo "connects to the bus)."
} > docs/benchmarks-systemd.md
cat docs/benchmarks-systemd.md
