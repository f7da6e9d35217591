# tegami: the two commands a newcomer needs are `make run` and `make test`.
# Everything else is here for developers; see README.md.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
DATA       ?= var
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
PYTEST     = /usr/bin/python3 -m pytest

.PHONY: all build run test unit integration asan test-asan fuzz bench bench-relay bench-queue-load deps clean \
        install uninstall deb deb-test

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

# Unit tests (cmocka via ctest) of the plain build and of the build with
# AddressSanitizer + UndefinedBehaviorSanitizer, then the integration tests
# (pytest against a real tegamid on loopback) against both builds, the
# sanitized one in two halves, all side by side (scripts/integration.sh).
test:
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DTEGAMI_WERROR=ON -DTEGAMI_REQUIRE_TESTS=ON"
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory asan
	cd $(ASAN_BUILD) && ctest --output-on-failure --no-tests=error
	bash scripts/integration.sh $(BUILD) $(ASAN_BUILD)

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

# Relay throughput against Postfix, and start-up with 100,000 queued
# messages (issue #8; see bench/README.md). Optional, never part of `make test`.
bench-relay: build
	bash bench/relay_bench.sh $(BENCH_ARGS)

bench-queue-load: build
	bash bench/queue_load.sh $(BENCH_ARGS)

# Installs tegamid (sbin), tegami (bin), tegamid(8) and tegami(8), the docs
# and the systemd unit tegamid.service under $(DESTDIR)$(PREFIX), and nothing
# outside $(DESTDIR). The system user tegami and /var/lib/tegami are made by
# the Debian package (make deb), not here. `make uninstall` removes what the
# last install wrote (CMake's install_manifest.txt), under the same DESTDIR.
PREFIX  ?= /usr/local
DESTDIR ?=
install: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

uninstall:
	@test -f $(BUILD)/install_manifest.txt || { echo "make uninstall: nothing installed from $(BUILD)" >&2; exit 1; }
	sed 's|^|$(DESTDIR)|' $(BUILD)/install_manifest.txt | xargs -d '\n' rm -f --

# The Debian package $(DEB_BUILD)/tegami_VERSION_ARCH.deb, built by debhelper
# from debian/ in a copy of the tree (dpkg-buildpackage writes its results
# beside the source directory), then checked by lintian (errors fail).
DEB_BUILD   ?= build-deb
DEB_VERSION := $(shell sed -n 's/^project.tegami VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
deb:
	@bash scripts/deps.sh package
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(DEB_VERSION)" ] || \
	  { echo "make deb: debian/changelog is at $$v, CMakeLists.txt at $(DEB_VERSION)" >&2; exit 1; }
	@rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/tegami-$(DEB_VERSION)
	@tar --exclude-vcs --exclude=./build --exclude='./build-*' --exclude=./var \
	  --exclude=./fuzz/corpus-run --exclude=__pycache__ -cf - . | tar -xf - -C $(DEB_BUILD)/tegami-$(DEB_VERSION)
	cd $(DEB_BUILD)/tegami-$(DEB_VERSION) && \
	  DEB_BUILD_OPTIONS="parallel=$(JOBS) $(DEB_BUILD_OPTIONS)" dpkg-buildpackage -b --no-sign
	lintian --fail-on error $(DEB_BUILD)/tegami_$(DEB_VERSION)_*.changes
	@ls $(DEB_BUILD)/tegami_$(DEB_VERSION)_*.deb

# Installs the package into a brand-new minimal Debian, runs tegamid as the
# unit does, mails and reads back, purges (tests/package/deb_install.sh; as
# root, takes minutes, not part of `make test`). Commit first: the new
# machine gets the project's HEAD.
deb-test: deb
	bash tests/package/deb_install.sh $(DEB_BUILD)/tegami_$(DEB_VERSION)_$$(dpkg --print-architecture).deb

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(DEB_BUILD)
