# Thin wrapper over CMake/CTest. `make demo` and `make test` work on a fresh Debian machine:
# they install missing packages (scripts/setup), build, then run.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: all setup configure build tool test test-asan cuda-emulate demo claims real-demo bench fuzz clean

all: build

setup:
	@scripts/setup

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD)

# The command-line tool alone (what `make demo` needs): 3 min on 2 cores against 7 for `build`, which
# adds the tests and benchmarks.
tool: configure
	@cmake --build $(BUILD) --target upcycle

# -LE gpu: the GPU checks (label gpu, CUDA builds only) fail without a GPU; scripts/device-check runs them.
test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j2 -LE gpu

# The fast tier once more under AddressSanitizer + UndefinedBehaviorSanitizer. -O1 -g1 (line tables:
# reports still name file:line) compiles in 9.6 min instead of 16.7 for -O2 -g on CI's 2 cores, and
# runs the fast tier in 92 s instead of 78 (measured 2026-12-04, ccache off).
ASAN_CXX_FLAGS ?= -O1 -g1 -DNDEBUG
test-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$(ASAN_CXX_FLAGS)" -DUPCYCLE_SANITIZE=ON -DUPCYCLE_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir $(ASAN_BUILD) -L fast --output-on-failure -j2

# The cuda backend's kernels run on the CPU (scripts/cuda-emulate: blocks, warps and shared memory
# emulated, cuBLASLt and CUB written from their documentation) against the ref backend: the check a
# machine without a GPU can make. 1.7 min on the idle 2-core VM (5-10 under load): not in `make test`,
# which is at the edge of CI's time budget.
cuda-emulate:
	@scripts/cuda-emulate/run

demo: tool
	@scripts/setup demo
	@scripts/demo $(BUILD)

# The studies behind docs/results.md's claim sections (scripts/claims; hours on 2 cores, resumable):
# `make claims`, or one study: `scripts/claims build claims-experts`.
claims: tool
	@scripts/setup demo
	@scripts/claims $(BUILD)

# The walk-through on a real model, SmolLM2-135M-Instruct from the reference environment: import, eval
# against transformers, generate, convert --verify, train, export gguf, llama.cpp (docs/real-model.md).
real-demo: tool
	@scripts/setup demo
	@scripts/real-demo $(BUILD)

# `scripts/setup bench` adds linux-perf; PyTorch comes with the reference environment every setup builds.
bench: build
	@scripts/setup bench
	@scripts/bench $(BUILD)

# Every parser of user files has a target (tests/fuzz/fuzz_targets.h); each runs FUZZ_SECONDS from the
# checked-in seeds (tests/fuzz/corpus/<name>/, plus the mergekit examples and the shipped study specs),
# growing its own corpus in build-fuzz/corpus/<name>. CI replays seeds + mutations instead (fuzz_replay_tests).
fuzz:
	@scripts/setup fuzz
	@CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUPCYCLE_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) --target fuzzers
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
	  name=$$(basename $$f); name=$${name#fuzz_}; extra=; \
	  case $$name in mergekit_yaml|expert_prompts) extra=tests/data/mergekit;; study_spec) extra=experiments;; esac; \
	  echo "== $$f ($(FUZZ_SECONDS) s)"; mkdir -p $(FUZZ_BUILD)/corpus/$$name; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=2048 $(FUZZ_BUILD)/corpus/$$name tests/fuzz/corpus/$$name $$extra \
	    || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) out
