# The two commands a fresh machine needs (both install what they use; run as root):
#   make lab    build the namespace lab (router, directors, proxies, client) and demo it
#   make test   run the whole test suite
.PHONY: lab lab-down test lint bench setup dpdk fuzz

VENV ?= .venv
PY := $(VENV)/bin/python

setup:
	bash scripts/setup.sh

lab: setup
	$(VENV)/bin/glb-agent lab up
	$(VENV)/bin/glb-agent lab demo

lab-down: setup
	$(VENV)/bin/glb-agent lab down

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Differential packet fuzzer (docs/fuzzing.md): the real director and proxy programs against
# their reference models. FUZZ_SEED, FUZZ_COUNT (per program), FUZZ_TARGETS (space-separated).
FUZZ_SEED ?= 1
FUZZ_COUNT ?= 1000000
FUZZ_TARGETS ?=
fuzz: setup
	nice -n 10 $(PY) -m tests.fuzz run --seed $(FUZZ_SEED) --count $(FUZZ_COUNT) $(FUZZ_TARGETS)

lint: setup
	$(VENV)/bin/ruff check glb_agent tests bench

bench: setup
	for b in bench/bench_*.py; do m=$$(basename $$b .py); $(PY) -m bench.$$m || exit 1; done

# The DPDK director (dpdk/, meson + pkg-config libdpdk): build/dpdk/glb-director-dpdk.
DPDK_BUILD ?= build/dpdk
dpdk:
	test -f $(DPDK_BUILD)/build.ninja || meson setup $(DPDK_BUILD) dpdk
	ninja -C $(DPDK_BUILD)
