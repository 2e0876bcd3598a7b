# lstm-nmt: every target installs what it needs first (idempotent, stamped).
SHELL := /bin/bash
CARGO ?= cargo
ADDR ?= 127.0.0.1:8080
MODEL ?= checkpoints/multi30k-de-en

.PHONY: help setup build release test serve bench train-multi30k docker-smoke fmt clippy clean

help:
	@echo "make test          install what is missing, build, run every test"
	@echo "make serve         serve $(MODEL) on $(ADDR) (MODEL=\"A B\": several)"
	@echo "make build         debug build of every binary"
	@echo "make release       optimised build (target/release)"
	@echo "make bench         run the benchmarks in bench/ (figures go to docs/BENCHMARKS.md)"
	@echo "make train-multi30k  train the multi30k-de-en preset into runs/multi30k-de-en"
	@echo "make docker-smoke  build the Docker image without a Docker engine, run it, translate through it"

setup:
	@scripts/setup-system.sh
	@scripts/setup-libtorch.sh

build: setup
	$(CARGO) build --workspace --all-targets

release: setup
	$(CARGO) build --workspace --release

# Tests that read the project's corpora are #[ignore = "needs ../shared/data ..."]: they run
# in a second pass when ../shared/data is there, and are counted in the last line when not.
CORPORA := $(abspath $(CURDIR)/../shared/data)
test: setup
	@status=0; \
	$(CARGO) test --workspace --no-fail-fast || status=1; \
	if [ -d "$(CORPORA)" ]; then \
	  echo "make test: $(CORPORA) is here: running the tests that need the corpora"; \
	  $(CARGO) test --workspace --no-fail-fast -- --ignored || status=1; \
	else \
	  n=$$($(CARGO) test --workspace -q -- --list --ignored 2>/dev/null | grep -c ': test$$'); \
	  echo "make test: $$n tests were NOT run: they need the project's corpora in $(CORPORA), which is absent"; \
	fi; \
	exit $$status

serve: setup
	@for m in $(MODEL); do \
	  if [ ! -f "$$m/config.json" ]; then \
	    echo "make serve: no model bundle in $$m; train one with 'make train-multi30k' (README: Training) or pass MODEL=DIR (several: MODEL=\"DIR DIR\")"; \
	    exit 1; \
	  fi; \
	done
	$(CARGO) build --release -p serving --bin nmt-serve
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} target/release/nmt-serve $(foreach m,$(MODEL),--model "$(m)") --addr "$(ADDR)"

bench: setup
	bench/eval/bench_eval.sh
	bench/corpus/run.sh
	bench/run_model_benchmarks.sh
	bench/serve/run.sh

train-multi30k: release
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} target/release/nmt-train --config configs/multi30k-de-en.toml --run-dir runs/multi30k-de-en

# Needs root and ../shared/tools/container-smoke (buildah); see scripts/docker-smoke.sh.
docker-smoke:
	scripts/docker-smoke.sh

fmt:
	$(CARGO) fmt --all

clippy: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
