# hako: build, test, demo, bench. Every target that needs system packages installs them first
# (Debian, as root), so each works on a fresh machine.

CARGO ?= cargo
TMP := $(CURDIR)/.tmp
DEBIAN_PKGS := busybox-static runc crun hyperfine jq libseccomp-dev pkg-config time util-linux procps bc
# `make integration` also needs the real callers (ctr ships with containerd; script(1) is in bsdutils).
INTEGRATION_PKGS := podman conmon containerd bsdutils tar

.PHONY: all deps build release test unit integration-tests demo bench integration test-cgroupv2 lint clean

all: build

# Idempotent: apt-get only runs when a package is missing.
deps:
	@missing=""; for p in $(DEBIAN_PKGS) $(EXTRA_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p hako

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test -p hako-spec -p hako-runtime -p hako

# Real containers, as root, with the debug binary.
integration-tests: build
	HAKO_BIN=$(CURDIR)/target/debug/hako $(CARGO) test -p hako-tests -- --test-threads=2

test: deps lint unit integration-tests

demo: deps release
	@mkdir -p $(TMP)
	@HAKO_HOSTNAME=hako-demo scripts/mkbundle.sh $(TMP)/demo-bundle sh -c 'echo "hostname: $$(hostname)"; echo "pid: $$$$"; echo "uid: $$(id -u)"'
	@id=demo-$$$$; target/release/hako --root $(TMP)/demo-root run --bundle $(TMP)/demo-bundle $$id

bench: deps release
	scripts/bench.sh

# podman and containerd drive hako and runc through the same scenarios (docs/integration.md).
integration:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(INTEGRATION_PKGS)"
	$(CARGO) build --release -p hako
	integration/run.sh

test-cgroupv2:
	@echo "cgroup v2 tests run in ../shared/vm (see README); they arrive with the cgroups issue"

clean:
	$(CARGO) clean
	rm -rf $(TMP)
