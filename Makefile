# berth: the two set-up commands are `make run` and `make test` (see README.md).

CARGO ?= cargo
export CARGO_BUILD_JOBS ?= 2
BERTHD_FLAGS ?=
CONFORMANCE_FLAGS ?=

.PHONY: run test lint build build-release bench conformance conformance-bench fuzz deb test-node

## Installs what is missing, builds release, runs berthd in the foreground with the embedded defaults.
run: build-release
	@echo "berthd on unix:///run/berth/berth.sock; try:"
	@echo "  crictl --runtime-endpoint unix:///run/berth/berth.sock version"
	./target/release/berthd $(BERTHD_FLAGS)

## Installs what the tests need and runs the whole suite, then the lints.
test:
	./scripts/install-deps.sh test
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	$(MAKE) lint

## berth against containerd on the same node, side by side (figures also in target/bench/).
bench:
	./scripts/install-deps.sh bench
	$(CARGO) build --release --workspace --bins
	./target/release/berth-bench $(BENCH_FLAGS)

## The CRI conformance suite (critest on PATH or at $$CRITEST) against berth, offline.
conformance:
	./scripts/install-deps.sh conformance
	$(CARGO) build --workspace --bins
	./target/debug/berth-conformance $(CONFORMANCE_FLAGS)

## berth's Debian package (target/deb/berth_<version>_<arch>.deb): the binaries, the systemd
## unit, a commented default config, an example CNI config, the man page. DEB_PROFILE=debug packs
## the test build.
DEB_PROFILE ?= release
deb:
	./scripts/install-deps.sh run
	$(CARGO) build $(if $(filter release,$(DEB_PROFILE)),--release) --workspace --bins
	./scripts/deb.sh $(DEB_PROFILE)

## The node suites in a guest with systemd as PID 1 and pure cgroup v2 (qemu, Debian's backports
## kernel): the package installed, the container, pod, stats, resources and restart tests, the
## service's restarts and upgrade, the conformance suite (critest from $$CRITEST, PATH or
## ../shared/bin).
test-node:
	./scripts/install-deps.sh node
	./scripts/node/test-node.sh

## critest's benchmark mode against berth and containerd, per-RPC medians side by side.
conformance-bench:
	./scripts/install-deps.sh bench
	$(CARGO) build --release --workspace --bins
	./target/release/berth-conformance bench $(CONFORMANCE_FLAGS)

FUZZ_INPUTS ?= 1000000
FUZZ_REQUESTS ?= 100000
## Long fuzzing runs (`make test` runs short ones): every parser of untrusted bytes with
## $(FUZZ_INPUTS) inputs, then $(FUZZ_REQUESTS) random CRI requests against a real node, with the
## answers counted per RPC and code. BERTH_FUZZ_SEED=<n> picks another seed.
fuzz:
	./scripts/install-deps.sh test
	$(CARGO) build --workspace --bins
	BERTH_FUZZ_ITERATIONS=$(FUZZ_INPUTS) $(CARGO) test --workspace --lib fuzz -- --nocapture
	BERTH_CRI_FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(CARGO) test -p berthd --test cri_fuzz -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	rustfmt --edition 2024 --check crates/berthd/env-exec/main.rs
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build-release:
	./scripts/install-deps.sh run
	$(CARGO) build --release --workspace --bins
