# tegami: the two commands a newcomer needs are `make run` and `make test`.
# Everything else is here for developers; see README.md.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
DATA       ?= var
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
PYTEST     = /usr/bin/python3 -m pytest

.PHONY: all build run test unit integration asan test-asan fuzz bench deps clean

all: build

deps:
	@bash scripts/deps.sh build

build: deps
	@bash scripts/checksrc.sh
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Starts tegamid in the foreground on the embedded default (data in ./var,
# SMTP on 127.0.0.1:2525). Ctrl-C stops it.
run: build
	./$(BUILD)/tegamid -D $(DATA)

# Unit tests (cmocka via ctest), then the integration tests (pytest against a
# real tegamid on loopback), then the integration tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
test:
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DTEGAMI_WERROR=ON -DTEGAMI_REQUIRE_TESTS=ON"
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory test-asan

unit:
	cd $(BUILD) && ctest --output-on-failure --no-tests=error

integration:
	TEGAMI_BUILD=$(abspath $(BUILD)) $(PYTEST) -q tests/integration

asan:
	@bash scripts/deps.sh test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTEGAMI_SANITIZE=ON -DTEGAMI_WERROR=ON -DTEGAMI_REQUIRE_TESTS=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-asan: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure --no-tests=error
	TEGAMI_BUILD=$(abspath $(ASAN_BUILD)) TEGAMI_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTEST) -q tests/integration

# libFuzzer targets, each run for FUZZ_SECONDS (not part of `make test`).
FUZZ_SECONDS ?= 60
fuzz:
	@bash scripts/deps.sh fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DTEGAMI_FUZZ=ON -DTEGAMI_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	bash fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Throughput and memory against Postfix, measured in one run (see bench/).
bench: build
	bash bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
