# cpgd-bench: one entry point for set-up, data, tests and benchmarks.  `make help` lists the targets.
PYTHON    ?= python3
DATA_ROOT ?= data/raw
STORES    ?= data/stores
PROFILE   ?= default
DATASETS  ?=
JOBS      ?= 2

.PHONY: help install system-deps codec codec-reference codec-asan dataset test test-fast bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

system-deps:  ## apt packages: nasm for the codec build, chromium for the report rendering test (needs root)
	@command -v nasm >/dev/null || (apt-get update -qq && apt-get install -y -qq nasm)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

install: system-deps  ## install the package with its dev extras (torch/torchvision from PyPI, unpinned)
	$(PYTHON) -m pip install -q -e ".[dev]"

codec:  ## patched FFmpeg 7.1.5 VVC/HEVC/H.264 decoders + prior-dump, in $CPGD_BENCH_HOME (idempotent, ~1-2 min the first time)
	cpgd-bench codec build patched

codec-reference:  ## unpatched FFmpeg 7.1.5 build, for the pixel-identity tests
	cpgd-bench codec build reference

codec-asan:  ## AddressSanitizer build of the patched decoder and dump tool
	cpgd-bench codec build asan

dataset: codec  ## build the sample store (and real datasets found under DATA_ROOT; DATASETS=, PROFILE= select)
	cpgd-bench dataset build sample --out $(STORES)/sample.zarr --profile $(PROFILE) --jobs $(JOBS)
	cpgd-bench dataset build-all --data-root $(DATA_ROOT) --stores $(STORES) --profile $(PROFILE) --jobs $(JOBS) \
		--only "$(DATASETS)"

test: codec codec-reference codec-asan  ## the whole test suite (what CI runs)
	CPGD_REQUIRE_CODEC=1 $(PYTHON) -m pytest -q

test-fast:  ## unit tests that need no codec build
	$(PYTHON) -m pytest -q -m "not codec and not slow"

bench: codec  ## speed benchmarks (ratios measured in one run), written to bench-results/
	$(PYTHON) -m benchmarks

lint:  ## ruff
	ruff check cpgd_bench tests benchmarks

clean:  ## remove build outputs (keeps data/ and the codec build in $CPGD_BENCH_HOME)
	rm -rf build *.egg-info .pytest_cache .ruff_cache
