# The two commands a fresh machine needs (both install what they use; run as root):
#   make lab    build the namespace lab (router, directors, proxies, client) and demo it
#   make test   run the whole test suite
.PHONY: lab lab-down test lint bench setup dpdk fuzz e2e-rows e2e-switch

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

# Issue 15's lab tests at full size: 1,000 long-lived connections through several proxies
# changing at once and through an alt_hash_fields migration, each with its control, and two
# of three proxies dead (CI runs them with GLB_E2E_CONNS=200). Holds the lab lock.
E2E_CONNS ?= 1000
e2e-rows: setup
	GLB_E2E_CONNS=$(E2E_CONNS) flock /tmp/glb-lab.lock $(PY) -m pytest -s -p no:cacheprovider \
		tests/e2e/test_dead_proxies.py tests/e2e/test_k_rows_churn.py tests/e2e/test_alt_hash_migration.py

# Issue 16's data-plane switch at full size: 1,000 long-lived connections and a new connection
# every 50 ms while d1 and then d2 switch XDP -> DPDK and back, drained (CI: 200 connections,
# d1 there and back). Holds the lab lock.
E2E_SWITCHES ?= d1:dpdk,d2:dpdk,d1:xdp,d2:xdp
e2e-switch: setup
	GLB_E2E_CONNS=$(E2E_CONNS) GLB_E2E_SWITCHES=$(E2E_SWITCHES) flock /tmp/glb-lab.lock \
		$(PY) -m pytest -s -p no:cacheprovider tests/e2e/test_dataplane_switch.py

lint: setup
	$(VENV)/bin/ruff check glb_agent tests bench

bench: setup
	for b in bench/bench_*.py; do m=$$(basename $$b .py); $(PY) -m bench.$$m || exit 1; done

# The DPDK director (dpdk/, meson + pkg-config libdpdk): build/dpdk/glb-director-dpdk.
DPDK_BUILD ?= build/dpdk
dpdk:
	test -f $(DPDK_BUILD)/build.ninja || meson setup $(DPDK_BUILD) dpdk
	ninja -C $(DPDK_BUILD)
