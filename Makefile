# hako: build, test, demo, bench. Every target that needs system packages installs them first
# (Debian, as root), so each works on a fresh machine.

CARGO ?= cargo
TMP := $(CURDIR)/.tmp
# Debian packages every target may need, each with what needs it. A test whose host feature no
# package gives (a kernel option, a controller file) checks for it and prints `SKIP name: reason`.
DEBIAN_PKGS := gcc libc6-dev pkg-config libseccomp-dev   # the build (the seccomp crate links libseccomp); gcc -static probes in hardening.rs, seccomp.rs
DEBIAN_PKGS += busybox-static  # every test bundle's rootfs (tests/src/lib.rs, scripts/mkbundle.sh), the VM's
DEBIAN_PKGS += runc crun       # side-by-side runs: make bench, integration/, process.rs and seccomp.rs comparisons
DEBIAN_PKGS += hyperfine bc time  # make bench (timings, ratios, peak RSS with /usr/bin/time)
DEBIAN_PKGS += jq              # Makefile's test lists, scripts/mkbundle.sh, soak.sh, bench.sh
DEBIAN_PKGS += util-linux procps  # unshare/nsenter (rootless.rs, rootfs.rs), flock/setpriv (the test user), ps/pgrep (lifecycle.rs, soak.sh)
DEBIAN_PKGS += mount           # mount/umount: cgroups.rs (a second mount of a cgroup hierarchy)
DEBIAN_PKGS += uidmap passwd   # rootless.rs, systemd.rs: the test user (useradd) and its newuidmap/newgidmap
DEBIAN_PKGS += iptables        # checkpoint.rs, podman/containerd checkpoint: CRIU locks a dumped netns with ip(6)tables-restore
DEBIAN_PKGS += sshfs openssh-sftp-server  # fuse_binds.rs: FUSE (sshfs, served by sftp-server without sshd) sources of bind mounts
# `make integration` also needs the real callers (ctr ships with containerd; script(1) is in bsdutils;
# dockerd and docker in docker.io; protoc builds the CRI client's bindings).
INTEGRATION_PKGS := podman conmon containerd bsdutils tar docker.io protobuf-compiler
# `make test-systemd` also runs hako rootless against the test user's own systemd instance, whose
# user bus ($XDG_RUNTIME_DIR/bus) dbus-user-session provides.
SYSTEMD_PKGS := systemd dbus dbus-user-session

.PHONY: soak all deps build release test unit integration-tests demo bench bench-systemd integration test-cgroupv2 test-systemd vm-deps lint clean criu

all: build

# Idempotent: apt-get only runs when a package is missing. Package scripts may not start daemons
# (docker.io, containerd): the tests run private ones and must find no machine-wide daemon of theirs.
deps:
	@missing=""; for p in $(DEBIAN_PKGS) $(EXTRA_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		prc=; if [ ! -e /usr/sbin/policy-rc.d ]; then prc=1; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
		s=0; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || s=$$?; \
		[ -z "$$prc" ] || rm -f /usr/sbin/policy-rc.d; exit $$s; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

build:
	$(CARGO) build --workspace

# The release binary is a static PIE: no dynamic loader at exec (about half a millisecond of
# every command here), and ASLR kept. libseccomp (LGPL-2.1) is linked from the distribution's
# libseccomp.a; hako's whole source is here, so anyone can relink it against their own build of
# libseccomp: `make release LIBSECCOMP_LIB_PATH=<dir with libseccomp.a>` (docs/architecture.md).
# STATIC=0 builds the ordinary dynamically linked binary. Name lookups never go through glibc's
# NSS (which a static glibc would dlopen at run time): `list` reads /etc/passwd as runc does.
STATIC ?= 1
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
LIBSECCOMP_LIB_PATH ?= $(dir $(firstword $(wildcard /usr/lib/$(shell gcc -dumpmachine 2>/dev/null)/libseccomp.a /usr/lib/libseccomp.a)))
RUSTFLAGS_VAR := CARGO_TARGET_$(shell echo '$(HOST_TRIPLE)' | tr 'a-z-' 'A-Z_')_RUSTFLAGS

release:
ifeq ($(STATIC),1)
	@[ -n "$(LIBSECCOMP_LIB_PATH)" ] || { echo "libseccomp.a not found (libseccomp-dev), or STATIC=0" >&2; exit 1; }
	$(RUSTFLAGS_VAR)="-C target-feature=+crt-static" LIBSECCOMP_LINK_TYPE=static \
		LIBSECCOMP_LIB_PATH=$(LIBSECCOMP_LIB_PATH) \
		$(CARGO) build --release -p hako --target $(HOST_TRIPLE)
	@mkdir -p target/release && cp -f target/$(HOST_TRIPLE)/release/hako target/release/hako.tmp && \
		mv -f target/release/hako.tmp target/release/hako
else
	$(CARGO) build --release -p hako
endif

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test -p hako-spec -p hako-runtime -p hako

# Real containers, as root, with the debug binary.
# checkpoint.rs (and the podman/containerd checkpoint runs) need CRIU: v4.2 built once from
# ../shared/criu (Debian 12's criu 3.17 cannot dump on these kernels); the script prints its path.
CRIU_INSTALL := $(abspath $(CURDIR)/../shared/criu/install.sh)

criu:
	@$(CRIU_INSTALL) >/dev/null

integration-tests: build
	criu=$$($(CRIU_INSTALL)) && HAKO_CRIU=$$criu HAKO_BIN=$(CURDIR)/target/debug/hako \
		$(CARGO) test -p hako-tests --no-fail-fast -- --test-threads=2
	scripts/soak.sh 100

# N lifecycles (exec, pause/resume, kill, delete), half of them with the runtime SIGKILLed at a
# random moment of `run -d`, then a leak report (docs/reliability.md). RUNTIME=runc compares.
N ?= 1000
RUNTIME ?= $(CURDIR)/target/debug/hako
soak: deps build
	RUNTIME=$(RUNTIME) scripts/soak.sh $(N)

# test-cgroupv2 boots the VM once (about 3 minutes here), test-systemd boots it once with systemd
# (about 2 minutes of tests and up to 9 of podman/containerd scenarios, emulated, on a loaded
# machine) and integration drives hako with podman, containerd, docker and the CRI (about 5
# minutes with their install, plus the CRI client's first debug build: a few minutes on 2 cores).
test: deps lint unit integration-tests test-cgroupv2 test-systemd integration

demo: deps release
	@mkdir -p $(TMP)
	@HAKO_HOSTNAME=hako-demo scripts/mkbundle.sh $(TMP)/demo-bundle sh -c 'echo "hostname: $$(hostname)"; echo "pid: $$$$"; echo "uid: $$(id -u)"'
	@id=demo-$$$$; target/release/hako --root $(TMP)/demo-root run --bundle $(TMP)/demo-bundle $$id

bench: deps release
	scripts/bench.sh
	@if [ -d /run/systemd/system ]; then scripts/bench-systemd.sh; \
	else echo "no systemd on this host: run with/without --systemd-cgroup is measured by make bench-systemd (VM)"; fi

# `run` with and without --systemd-cgroup, hako and runc, in the v2 guest booted with systemd
# (emulated: only the rows' ratios mean something). Writes docs/benchmarks-systemd.md.
bench-systemd: deps vm-deps release
	VMRUN_INIT=systemd VMRUN_SYSTEMD_MASK="docker.service docker.socket" VMRUN_TIMEOUT=$(VM_TIMEOUT) \
		$(VM)/vm-run.sh -e HAKO=$(CURDIR)/target/release/hako \
		"$(CURDIR)" -- scripts/bench-systemd.sh

# podman, containerd (ctr), docker and containerd's CRI plugin (through integration/cri-client,
# built by cri.sh in the debug profile) drive hako and runc through the same scenarios
# (docs/integration.md).
integration:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(INTEGRATION_PKGS)"
	@$(MAKE) --no-print-directory release
	criu=$$($(CRIU_INSTALL)) && PATH=$$(dirname $$criu):$$PATH integration/run.sh

# The cgroup v2 test set in one boot of a pure-v2 QEMU guest (../shared/vm): tests/tests/cgroups.rs
# (it reads the layout from mountinfo and checks the v2 files), tests/tests/events.rs (stats and
# OOM from v2 files), the rootless cgroup tests of tests/tests/rootless.rs (a subtree delegated to
# the test user), the runtime's cgroups unit tests (the eBPF device program loaded into the
# kernel) and three checkpoint.rs cases (CRIU restores into v2 cgroups: limits, memory, tty; the
# whole file passes there too, but one run of failed_restore_leaves_nothing_behind hung in the VM
# under heavy host load, so it stays on the host only). Emulated, so 7-20x slower: HAKO_TEST_SLOW
# stretches the tests' waits. On a real v2 machine run `cargo test -p hako-tests --test cgroups`.
VM := $(abspath $(CURDIR)/../shared/vm)
VM_TIMEOUT ?= 1500

vm-deps:
	@if command -v qemu-system-x86_64 >/dev/null && ls /boot/vmlinuz-* >/dev/null 2>&1 && \
		dpkg -s busybox-static cpio python3 >/dev/null 2>&1; then exit 0; fi; \
	src=/etc/apt/sources.list.d/debian.sources; \
	if [ -f $$src ] && ! grep -rqs bookworm-backports /etc/apt/sources.list.d/; then \
		echo "adding bookworm-backports (the main Debian archive only) for qemu"; \
		awk 'BEGIN{RS="";ORS="\n\n"} /URIs: [^\n]*\/debian\n/' $$src | \
			sed -e 's/^Suites:.*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/bookworm-backports.sources; \
	fi; \
	$(VM)/install.sh

test-cgroupv2: deps vm-deps
	$(CARGO) build -p hako
	@mkdir -p $(TMP)
	$(CARGO) test -p hako-tests --test cgroups --no-run --message-format=json | \
		jq -r 'select(.profile.test == true) | .executable' > $(TMP)/cgv2-tests
	$(CARGO) test -p hako-runtime --lib --no-run --message-format=json | \
		jq -r 'select(.profile.test == true) | .executable' >> $(TMP)/cgv2-tests
	$(CARGO) test -p hako-tests --test events --no-run --message-format=json | \
		jq -r 'select(.profile.test == true) | .executable' >> $(TMP)/cgv2-tests
	$(CARGO) test -p hako-tests --test rootless --no-run --message-format=json | \
		jq -r 'select(.profile.test == true) | .executable' >> $(TMP)/cgv2-tests
	$(CARGO) test -p hako-tests --test checkpoint --no-run --message-format=json | \
		jq -r 'select(.profile.test == true) | .executable' >> $(TMP)/cgv2-tests
	criu=$$($(CRIU_INSTALL)) && \
	VMRUN_TIMEOUT=$(VM_TIMEOUT) $(VM)/vm-run.sh -e HAKO_TEST_SLOW=1 -e HAKO_BIN=$(CURDIR)/target/debug/hako \
		-e HAKO_CRIU=$$criu "$(CURDIR)" -- sh -c 'set -e; grep -q "cgroup2 cgroup2" /proc/self/mountinfo; \
		! grep -q " - cgroup cgroup" /proc/self/mountinfo; \
		it=$$(sed -n 1p $(TMP)/cgv2-tests); unit=$$(sed -n 2p $(TMP)/cgv2-tests); \
		ev=$$(sed -n 3p $(TMP)/cgv2-tests); rl=$$(sed -n 4p $(TMP)/cgv2-tests); \
		ck=$$(sed -n 5p $(TMP)/cgv2-tests); \
		$$unit cgroups:: --test-threads=1; $$it --test-threads=1; $$ev --test-threads=1; \
		$$rl delegated_cgroup without_a_writable --test-threads=1; \
		$$ck restore_same_id limits_hostname tty_container --test-threads=1'

# The systemd cgroup driver (--systemd-cgroup) under a real systemd, in one boot of the v2 guest
# with systemd 252 as PID 1 and D-Bus (VMRUN_INIT=systemd): tests/tests/systemd.rs (root, and
# rootless against the test user's own systemd instance, started by lingering), then
# integration/systemd.sh (podman with cgroup_manager=systemd and containerd with SystemdCgroup drive
# hako and runc) and integration/systemd-rootless.sh (rootless podman with cgroup_manager=systemd,
# the test user's own systemd instance: about 3 more minutes); results into docs/integration.md.
# On a real systemd + cgroup v2 machine: `cargo test -p hako-tests --test systemd --
# --test-threads=1`, `integration/systemd.sh` and `integration/systemd-rootless.sh`.
SD_INT := $(TMP)/integration-systemd
# docker.io's package enables docker.service and docker.socket: masked in the guest, whose systemd
# would otherwise start a machine-wide dockerd (docker.sh runs its own, on the host).
test-systemd: deps vm-deps
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(INTEGRATION_PKGS) $(SYSTEMD_PKGS)"
	$(CARGO) build -p hako
	@$(MAKE) --no-print-directory release
	@mkdir -p $(TMP)
	@rm -rf $(SD_INT)
	$(CARGO) test -p hako-tests --test systemd --no-run --message-format=json | \
		jq -r 'select(.profile.test == true) | .executable' > $(TMP)/systemd-tests
	VMRUN_INIT=systemd VMRUN_SYSTEMD_MASK="docker.service docker.socket" \
		VMRUN_TIMEOUT=$(VM_TIMEOUT) $(VM)/vm-run.sh -e HAKO_TEST_SLOW=1 \
		-e HAKO_BIN=$(CURDIR)/target/debug/hako -e HAKO=$(CURDIR)/target/release/hako \
		-e RESULTS=$(SD_INT)/results -e LOGS=$(SD_INT)/logs -e SCENARIO_TIMEOUT=600 \
		"$(CURDIR)" -- sh -c 'set -e; \
		test -d /run/systemd/system; grep -q "cgroup2 cgroup2" /proc/self/mountinfo; \
		$$(sed -n 1p $(TMP)/systemd-tests) --test-threads=1; \
		s=0; integration/systemd.sh || s=1; integration/systemd-rootless.sh || s=1; exit $$s'
	integration/report.sh $(SD_INT)/results docs/integration.md systemd-results

clean:
	$(CARGO) clean
	rm -rf $(TMP)
