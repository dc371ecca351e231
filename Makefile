SHELL := /bin/bash
# Thin front door; the real build is CMakeLists.txt. `make run` and `make test` work on a fresh
# Debian 12 machine: both install what is missing first (make deps).

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
SAN_BUILD  ?= build-sanitize
JOBS       ?= $(shell nproc)
CONFIG     ?= conf/wraith.toml
FUZZ_SECONDS ?= 30
PREFIX     ?= /usr/local
DEB_OUT    ?= build-deb
# Packages `make deb` needs besides DEPS (the Build-Depends are all in DEPS).
DEB_TOOLS  = dpkg-dev debhelper fakeroot lintian
# `make check-system` and `make image`: a Debian root booted by systemd, and OCI images.
SYSTEM_TOOLS = mmdebstrap systemd-container buildah podman runc uidmap
# `make attack` (and check-system): the slow-HTTP attacks. wrk, python3-h2 and ngtcp2-client
# (gtlsclient, the Retry probe) are in DEPS and QUIC_DEPS already.
ATTACK_TOOLS = slowhttptest
ATTACK_SECONDS ?= 10
DEB_BASE_VERSION = $(shell dpkg-parsechangelog -l packaging/debian/changelog -S Version 2>/dev/null)
DEB_ARCH   = $(shell dpkg --print-architecture)
IMAGE      ?= wraith:$(DEB_BASE_VERSION)

# Debian packages: DESIGN.md §4 and docs/decisions.md ("Dependencies").
DEPS = cmake g++ make pkg-config libev-dev libtomlplusplus-dev zlib1g-dev libbrotli-dev \
       libzstd-dev catch2 clang libclang-rt-14-dev python3 curl zstd brotli \
       libnghttp2-dev nghttp2-client nghttp2-server python3-h2 libssl-dev openssl testssl.sh \
       libgnutls28-dev chromium libc-ares-dev ca-certificates nginx-light wrk libseccomp-dev \
       golang-go golang-github-lucas-clemente-quic-go-dev golang-github-miekg-dns-dev \
       libpcre2-dev libmaxminddb-dev libcrypt-dev libmaxmind-db-writer-perl apache2-utils \
       libnginx-mod-http-geoip2 caddy prometheus knot-dnsutils unbound \
       libmodsecurity-dev modsecurity-crs libnginx-mod-http-modsecurity
# The QUIC stack, as PACKAGE:MINIMUM-VERSION: ngtcp2 1.11 and nghttp3 1.8 (the code uses their
# 1.x API only). Debian 13 ships them; on Debian 12 they come from its official
# bookworm-backports suite (Debian 12's own 0.12 / 0.8 are too old), which `make deps` enables
# with a sources file of its own when no backports entry exists yet.
QUIC_DEPS = libngtcp2-dev:1.11 libngtcp2-crypto-gnutls-dev:1.11 libnghttp3-dev:1.8 \
            ngtcp2-client:1.11 ngtcp2-server:1.11
# DRY_RUN=1: print what `make deps` would write and run, change nothing. APT_ETC and OS_RELEASE
# let a dry run play another machine (a copy of /etc/apt without backports, Debian 13).
DRY_RUN ?=
APT_ETC ?= /etc/apt
OS_RELEASE ?= /etc/os-release
BACKPORTS_SOURCES = $(APT_ETC)/sources.list.d/wraith-bookworm-backports.sources

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test crowdsec-fixture unit fuzz sanitize sanitize-build check-system check-soak run bench install \
        format clean deb image attack

all: build

# Installs what is missing (or, for QUIC_DEPS, older than its minimum); does nothing when all
# is there, so `make build` and `make test` can depend on it.
deps:
	@set -e; \
	run() { if [ -n "$(DRY_RUN)" ]; then echo "make deps would run: $$*"; else "$$@"; fi; }; \
	. $(OS_RELEASE); \
	missing=""; \
	for p in $(DEPS); do \
	    dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null | grep -q '^ii' || \
	        missing="$$missing $$p"; \
	done; \
	quic=""; \
	for pv in $(QUIC_DEPS); do \
	    p=$${pv%%:*}; min=$${pv#*:}; \
	    have=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Version}' "$$p" 2>/dev/null | \
	            awk '$$1 == "ii" { print $$2 }'); \
	    if [ -z "$$have" ] || ! dpkg --compare-versions "$$have" ge "$$min"; then \
	        quic="$$quic $$p"; \
	    fi; \
	done; \
	[ -n "$$missing$$quic" ] || exit 0; \
	target=""; \
	if [ -n "$$quic" ] && [ "$$VERSION_CODENAME" = bookworm ]; then \
	    target="-t bookworm-backports"; \
	    if ! grep -qsE '^[^#]*bookworm-backports' $(APT_ETC)/sources.list \
	            $(APT_ETC)/sources.list.d/*.list $(APT_ETC)/sources.list.d/*.sources; then \
	        echo "make deps: enabling bookworm-backports ($(BACKPORTS_SOURCES))"; \
	        entry="Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"; \
	        if [ -n "$(DRY_RUN)" ]; then printf "$$entry" | sed 's/^/    /'; \
	        else printf "$$entry" | $(SUDO) tee $(BACKPORTS_SOURCES) >/dev/null; fi; \
	    fi; \
	fi; \
	echo "make deps: installing$$missing$$quic$${target:+ (QUIC from bookworm-backports)}"; \
	run $(SUDO) apt-get update -qq; \
	if [ -n "$$missing" ]; then \
	    run $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi; \
	if [ -n "$$quic" ]; then \
	    run $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$target $$quic; \
	fi; \
	[ -n "$(DRY_RUN)" ] || for pv in $(QUIC_DEPS); do \
	    have=$$(dpkg-query -W -f='$${Version}' "$${pv%%:*}"); \
	    dpkg --compare-versions "$$have" ge "$${pv#*:}" || { \
	        echo "make deps: $${pv%%:*} $$have is older than $${pv#*:}: Debian 12 with" \
	             "bookworm-backports, or Debian 13, has it"; exit 1; }; \
	done

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	@[ -f $(BUILD)/certs/localhost.pem ] || $(BUILD)/wraith generate certs --self-signed \
	    --hosts localhost,127.0.0.1,::1 --dir $(BUILD)/certs >/dev/null

test: build crowdsec-fixture
	cd $(BUILD) && ctest --output-on-failure -j2
	$(MAKE) --no-print-directory fuzz

# Debian's crowdsec package, downloaded and unpacked once under the build dir for
# tests/integration/test_crowdsec.py (its postinst cannot run offline, so it is not installed).
crowdsec-fixture:
	python3 tests/integration/crowdsec_fixture.py $(BUILD) >/dev/null

# The memory-safety gate: a second tree built by clang with ASan + UBSan (-fno-sanitize-recover),
# the unit tests and every integration suite run against it; a sanitizer report from any process
# (server, workers, CLI, h3get/h3load) fails the test that saw it. docs/decisions.md, "Sanitizers".
sanitize: sanitize-build
	cd $(SAN_BUILD) && ctest --output-on-failure -j2

sanitize-build: deps
	@[ -f $(SAN_BUILD)/CMakeCache.txt ] || CXX=clang++ cmake -S . -B $(SAN_BUILD) \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWRAITH_SANITIZE=ON >/dev/null
	cmake --build $(SAN_BUILD) -j$(JOBS)

# The leak soak (part of check-system): mixed HTTP/1.1, HTTP/2 and HTTP/3 load with reloads
# against the sanitizer build (SOAK_SECONDS, default 300); every process's exit-time leak
# check must stay silent.
check-soak: sanitize-build
	WRAITH_BIN=$(SAN_BUILD)/wraith WRAITH_SANITIZE=1 WRAITH_SOURCE_DIR=$(CURDIR) \
	    python3 tests/system/soak_sanitize.py

# The attack table (issue 15; docs/decisions.md, "Limits"): every attack of tests/attack/run.py
# against a real server with a legitimate client beside it, ATTACK_SECONDS per case (about
# 3 minutes in all); fails if a case misses >= 99% success and p99 < 50 ms. Not part of
# `make test`: it saturates the machine. ATTACK_CASES="rapid QPACK" runs the cases named so.
attack: build
	@$(MAKE) --no-print-directory deps DEPS="$(ATTACK_TOOLS)"
	WRAITH_BIN=$(BUILD)/wraith python3 tests/attack/run.py --seconds $(ATTACK_SECONDS) $(ATTACK_CASES)

unit: build
	$(BUILD)/wraith_unit

# libFuzzer targets (clang), each run for FUZZ_SECONDS over its committed corpus; new inputs
# go to a scratch folder, crashes fail the run.
fuzz: deps
	@[ -f $(FUZZ_BUILD)/CMakeCache.txt ] || CXX=clang++ cmake -S . -B $(FUZZ_BUILD) \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWRAITH_FUZZ=ON -DWRAITH_TESTS=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $$(cd tests/fuzz && ls fuzz_*.cc | sed 's/\.cc$$//')
	@set -e; for src in tests/fuzz/fuzz_*.cc; do \
	    name=$$(basename $$src .cc); corpus=tests/fuzz/corpus/$${name#fuzz_}; \
	    scratch=$$(mktemp -d); \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	    $(FUZZ_BUILD)/$$name -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$$scratch/ $$scratch $$corpus 2>&1 | tail -n 12; \
	    status=$${PIPESTATUS[0]}; rm -rf $$scratch; \
	    [ "$$status" = 0 ] || { echo "fuzz: $$name failed"; exit 1; }; \
	done

# `make build` also made the development CA and certificate for https://localhost:8443/.
run: build
	@mkdir -p $(BUILD)/run
	@echo "wraith: serving conf/www on http://localhost:8080/ and https://localhost:8443/ (Ctrl-C stops)"
	@echo "        trust $(BUILD)/certs/wraith-dev-ca.pem for HTTPS, e.g. curl --cacert $(BUILD)/certs/wraith-dev-ca.pem"
	@exec $(BUILD)/wraith serve -c $(CONFIG)

bench: build
	bash bench/run.sh
	bash bench/h3.sh
	bash bench/proxy.sh
	bash bench/reload.sh
	bash bench/routing.sh
	bash bench/limits.sh
	bash bench/metrics.sh

install: build
	install -D -m 0755 $(BUILD)/wraith $(DESTDIR)$(PREFIX)/sbin/wraith
	install -D -m 0644 man/wraith.8 $(DESTDIR)$(PREFIX)/share/man/man8/wraith.8
	install -D -m 0644 man/wraith.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/wraith.toml.5
	install -D -m 0644 conf/mime.types $(DESTDIR)/etc/wraith/mime.types
	mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' packaging/wraith.service \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/wraith.service
	# The packaged default runs workers as `wraith`, a user only the Debian package creates.
	[ -f $(DESTDIR)/etc/wraith/wraith.toml ] || { \
	    install -D -m 0644 packaging/wraith.toml $(DESTDIR)/etc/wraith/wraith.toml && \
	    sed -i 's/^user = "wraith"/user = "www-data"/' $(DESTDIR)/etc/wraith/wraith.toml; }
	[ -f $(DESTDIR)/etc/wraith/certs/localhost.pem ] || $(BUILD)/wraith generate certs \
	    --self-signed --dir $(DESTDIR)/etc/wraith/certs >/dev/null

# Debian package from a clean export of the tracked files (uncommitted edits included,
# untracked files and build directories never), with packaging/debian as debian/, then
# lintian: any error or warning fails (docs/decisions.md, "Debian package").
# DEB_VERSION=0.1.0+1 builds another version (a changelog entry is added to the export).
deb: deps
	@$(MAKE) --no-print-directory deps DEPS="$(DEB_TOOLS)"
	rm -rf $(DEB_OUT)
	mkdir -p $(DEB_OUT)/src
	git ls-files -z | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $(DEB_OUT)/src
	cp -r packaging/debian $(DEB_OUT)/src/debian
	@if [ -n "$(DEB_VERSION)" ]; then bash packaging/deb-version.sh $(DEB_OUT)/src "$(DEB_VERSION)"; fi
	cd $(DEB_OUT)/src && DEB_BUILD_OPTIONS="parallel=$(JOBS) nocheck" dpkg-buildpackage -b -us -uc
	lintian --fail-on error,warning --info $(DEB_OUT)/*.changes
	@ls -l $(DEB_OUT)/*.deb

# Heavy system tests, not part of `make test`: the package installed, reloaded, broken,
# upgraded (binary upgrade) and purged in a Debian 12 root booted by systemd-nspawn
# (tests/system/check_system.py), the OCI image run under podman (check_image.sh), the leak
# soak under the sanitizers (check-soak), then the attack table (attack).
check-system: build
	@$(MAKE) --no-print-directory deps DEPS="$(DEB_TOOLS) $(SYSTEM_TOOLS)"
	$(MAKE) --no-print-directory deb
	bash packaging/deb-rebuild.sh $(DEB_OUT) $(DEB_BASE_VERSION)+systest1
	python3 tests/system/check_system.py --deb $(DEB_OUT)/wraith_$(DEB_BASE_VERSION)_$(DEB_ARCH).deb \
	    --newer $(DEB_OUT)/wraith_$(DEB_BASE_VERSION)+systest1_$(DEB_ARCH).deb
	$(MAKE) --no-print-directory image
	bash tests/system/check_image.sh $(IMAGE)
	$(MAKE) --no-print-directory check-soak
	$(MAKE) --no-print-directory attack

# Minimal OCI image from Debian packages (packaging/image.sh): the binary, its shared-library
# closure, CA certificates, a non-root user and the default config.
image: build
	@$(MAKE) --no-print-directory deps DEPS="$(SYSTEM_TOOLS)"
	bash packaging/image.sh $(BUILD)/wraith $(IMAGE)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(SAN_BUILD) $(DEB_OUT)
