SHELL := /bin/bash
# Thin front door; the real build is CMakeLists.txt. `make run` and `make test` work on a fresh
# Debian 12 machine: both install what is missing first (make deps).

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CONFIG     ?= conf/wraith.toml
FUZZ_SECONDS ?= 30
PREFIX     ?= /usr/local
DEB_OUT    ?= build-deb
# Packages `make deb` needs besides DEPS (the Build-Depends are all in DEPS).
DEB_TOOLS  = dpkg-dev debhelper fakeroot lintian
# `make check-system` and `make image`: a Debian root booted by systemd, and OCI images.
SYSTEM_TOOLS = mmdebstrap systemd-container buildah podman runc uidmap
DEB_BASE_VERSION = $(shell dpkg-parsechangelog -l packaging/debian/changelog -S Version 2>/dev/null)
DEB_ARCH   = $(shell dpkg --print-architecture)
IMAGE      ?= wraith:$(DEB_BASE_VERSION)

# Debian 12 packages: DESIGN.md §4 and docs/decisions.md ("Dependencies").
DEPS = cmake g++ make pkg-config libev-dev libtomlplusplus-dev zlib1g-dev libbrotli-dev \
       libzstd-dev catch2 clang libclang-rt-14-dev python3 curl zstd brotli \
       libnghttp2-dev nghttp2-client nghttp2-server python3-h2 libssl-dev openssl testssl.sh \
       libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev ngtcp2-client \
       chromium libc-ares-dev ca-certificates nginx-light

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test unit fuzz run bench install format clean deb check-system image

all: build

deps:
	@missing=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(DEPS) 2>/dev/null \
	    | awk '$$1 == "ii" { print $$2 }' | sort > /tmp/.wraith-have.$$$$; \
	    for p in $(DEPS); do grep -qx "$$p" /tmp/.wraith-have.$$$$ || echo $$p; done; \
	    rm -f /tmp/.wraith-have.$$$$); \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	@[ -f $(BUILD)/certs/localhost.pem ] || $(BUILD)/wraith generate certs --self-signed \
	    --hosts localhost,127.0.0.1,::1 --dir $(BUILD)/certs >/dev/null

test: build
	cd $(BUILD) && ctest --output-on-failure -j2
	$(MAKE) --no-print-directory fuzz

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
# (tests/system/check_system.py), then the OCI image run under podman (check_image.sh).
check-system: build
	@$(MAKE) --no-print-directory deps DEPS="$(DEB_TOOLS) $(SYSTEM_TOOLS)"
	$(MAKE) --no-print-directory deb
	bash packaging/deb-rebuild.sh $(DEB_OUT) $(DEB_BASE_VERSION)+systest1
	python3 tests/system/check_system.py --deb $(DEB_OUT)/wraith_$(DEB_BASE_VERSION)_$(DEB_ARCH).deb \
	    --newer $(DEB_OUT)/wraith_$(DEB_BASE_VERSION)+systest1_$(DEB_ARCH).deb
	$(MAKE) --no-print-directory image
	bash tests/system/check_image.sh $(IMAGE)

# Minimal OCI image from Debian packages (packaging/image.sh): the binary, its shared-library
# closure, CA certificates, a non-root user and the default config.
image: build
	@$(MAKE) --no-print-directory deps DEPS="$(SYSTEM_TOOLS)"
	bash packaging/image.sh $(BUILD)/wraith $(IMAGE)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(DEB_OUT)
