# The README's two commands:
#   make run    install dependencies, build (Release), run the main job
#   make test   install dependencies, build, run every test through ctest, then the same
#               suite under AddressSanitizer + UndefinedBehaviorSanitizer
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build run test test-release test-sanitize bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: train the CNN on Fashion-MNIST with loom train's defaults and print the
# test accuracy (about 2 minutes of training on 2 cores).
run: build
	@$(BUILD)/bin/loom info
	@$(BUILD)/bin/loom train --model cnn --dataset fashion-mnist

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLOOM_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

test: test-release test-sanitize

# Side-by-side benchmarks against OpenBLAS and oneDNN (a few minutes).
bench: build
	@$(BUILD)/bin/loom bench gemm --json $(BUILD)/bench-gemm.json
	@$(BUILD)/bin/loom bench conv --json $(BUILD)/bench-conv.json
	@$(BUILD)/bin/loom bench alloc

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
