#!/usr/bin/env bash
# run.sh: every suite against hako and runc, then the results table into docs/integration.md.
# `make integration` installs podman and containerd and builds release hako first.
# Exit status 1 when any scenario FAILs (XFAIL and SKIP do not count).
set -euo pipefail
cd "$(dirname "$0")/.."
source integration/lib.sh
rm -rf "$LOGS" "$RESULTS"
trap 'rm -f "$INT_WORK"/{busybox-oci,busybox-docker,pause-oci}.tar' EXIT
mkdir -p "$LOGS"
status=0
integration/podman.sh || status=1
integration/podman-rootless.sh || status=1
integration/containerd.sh || status=1
integration/docker.sh || status=1
integration/cri.sh || status=1
integration/report.sh "$RESULTS" docs/integration.md
echo "results: docs/integration.md; logs: $LOGS"
exit "$status"
