#!/usr/bin/env bash
# cri.sh: the Kubernetes node path. A private containerd with its CRI plugin and two runtime
# handlers, `hako` and `runc` (runtime type io.containerd.runc.v2, BinaryName), driven over the CRI
# gRPC API by integration/cri-client, which does what kubelet does for a pod (see
# docs/integration.md). Pods use the host's network (no CNI). Stopped by its pid on exit.
# Needs $INT_WORK/busybox-oci.tar and pause-oci.tar (podman.sh writes them).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

C=$INT_WORK/cri
SOCK=$C/containerd.sock
IMG=localhost/hako-int/busybox:latest
PAUSE=localhost/hako-int/pause:latest
CLIENT_DIR=$REPO/integration/cri-client
CLIENT=$CLIENT_DIR/target/debug/hako-cri-client
export CRI_IMAGE=$IMG CRI_LOG_DIR=$C/pods
# Pods go under /$CRI_CGROUP_PARENT/pod<uid>/<container> (cgroupfs driver), removed at the end.
export CRI_CGROUP_PARENT=${CRI_CGROUP_PARENT:-hako-int-cri-$$}

c() { ctr -a "$SOCK" -n k8s.io "$@"; }

write_conf() {
  mkdir -p "$C/net.d"
  # The documented configuration (docs/integration.md), with private paths. The sandbox image is
  # imported below; no registry is reached.
  {
    containerd_conf "$C" "$SOCK"
    cat <<EOF

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  # These machines lack CAP_SYS_RESOURCE: the sandbox's oom_score_adj -998 cannot be written by
  # any runtime. Clamp it to containerd's own, as on nodes without that capability.
  restrict_oom_score_adj = true

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$C/net.d"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hako]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hako.options]
  BinaryName = "$HAKO"
  Root = "$C/runtime-root/hako"
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "$RUNC"
  Root = "$C/runtime-root/runc"
  SystemdCgroup = false
EOF
  } >"$C/config.toml"
}

setup() {
  write_conf
  # The shim keeps its sockets in /run/containerd/s whatever the config says: remove what we made.
  [ -e /run/containerd ] || touch "$C/made-run-containerd"
  # The client: its own workspace, debug profile (a release build of tonic costs minutes here).
  cargo build -q --manifest-path "$CLIENT_DIR/Cargo.toml" || fail "building the CRI client failed"
  daemon_start containerd "$C/containerd.pid" "$LOGS/cri-containerd-daemon.log" 100 c version -- \
    containerd --config "$C/config.toml"
  if [ ! -s "$INT_WORK/busybox-oci.tar" ] || [ ! -s "$INT_WORK/pause-oci.tar" ]; then
    "$(dirname "$0")/podman.sh" image-only
  fi
  c images import "$INT_WORK/busybox-oci.tar" >/dev/null
  c images import "$INT_WORK/pause-oci.tar" >/dev/null
  c images ls -q | grep -qx "$PAUSE" || fail "image $PAUSE not imported: $(c images ls -q)"
}

cleanup_containers() {
  local id
  for id in $(c task ls -q 2>/dev/null); do
    c task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    retry 25 sh -c "ctr -a '$SOCK' -n k8s.io task ls | awk -v id=$id '\$1 == id { print \$3 }' | grep -qx STOPPED" || true
    c task delete -f "$id" >/dev/null 2>&1 || true
  done
  for id in $(c containers ls -q 2>/dev/null); do c containers delete "$id" >/dev/null 2>&1 || true; done
}

teardown() {
  set +e
  if [ -s "$C/containerd.pid" ]; then
    cleanup_containers
    daemon_stop "$C/containerd.pid" "$C/config.toml"
    # A shim that outlived its task (it would be a bug) is ours: it names our socket.
    kill_strays "-address $SOCK"
  fi
  unmount_under "$C"
  remove_cgroups "$CRI_CGROUP_PARENT"
  [ ! -e "$C/made-run-containerd" ] || rmdir /run/containerd/s /run/containerd 2>/dev/null
  rm -rf "$C"
}

# ---- scenarios: the client runs one with the handler RT (hako|runc) ----

SCENARIOS=(run_exit_code exec_sync resource_limits oom_killed stop_remove_running)

if [ "${1:-}" = scenario ]; then
  set -x
  "$CLIENT" "$SOCK" "$RT" "$2"
  # The handler's own runtime root was used: the named runtime (its BinaryName) ran the pod.
  [ -d "$C/runtime-root/$RT/k8s.io" ] || fail "no state under $C/runtime-root/$RT: handler $RT not used"
  exit 0
fi

[ $# -eq 0 ] || SCENARIOS=("$@")
mkdir -p "$LOGS"
trap teardown EXIT
teardown
setup
run_scenarios cri "$0" cleanup_containers "${SCENARIOS[@]}"
