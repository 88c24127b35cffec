# cfq -- the two commands a fresh machine needs are `make bench` and `make test`;
# both create .venv and install what they need first.

PYTHON ?= python3
CC ?= cc
CLANG ?= clang
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-stamp
ARCH := $(shell uname -m)

# The core's sources, headers, flags (CORE_CFLAGS) and per-file ISA flags
# (ISA_<file>): written once, in tools/core_build.py, which setup.py uses too.
CORE_MK := build/core_flags.mk
$(CORE_MK): tools/core_build.py $(wildcard src/*.c src/*.h)
	@mkdir -p $(@D)
	$(PYTHON) tools/core_build.py make > $@
include $(CORE_MK)

ifeq ($(ARCH),x86_64)
ISA_FLAGS_ON := yes
endif
SIMDE_OK := $(shell test -f /usr/include/simde/x86/avx512.h && echo yes)
# The AVX-512 file on SIMDe's portable AVX-512 (Debian: libsimde-dev), so its
# logic runs on CPUs without AVX-512; real AVX-512 hardware runs it natively.
EMU_FLAGS := -Wno-psabi -mavx2 -mf16c -include tests/c/avx512_emulated.h
# The C test program: test_core.c's main and the files it calls.
TEST_SRC := tests/c/test_core.c tests/c/test_support.c tests/c/test_half.c
TEST_HDR := tests/c/test_support.h

.PHONY: all build test ctest pytest bench clean lib ctest-aarch64 ctest-sanitize ctest-tsan \
        ctest-clang fuzz fuzz-short fuzz-build

all: build

$(DEPS): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

build: $(DEPS)
	$(PY) setup.py -q build_ext --inplace

test: build ctest pytest

pytest: build
	$(PY) -m pytest -q -rs tests

bench: build
	$(PY) -m cfq.bench

# ---- Builds of the C core and its test program ------------------------------
# $(call core_build,DIR,COMPILE,LINK,FLAGS,ISA): the core's objects in DIR and
# DIR/test_core; ISA = yes puts each ISA file's flag on it.  COMPILE and LINK
# differ only for cross builds (clang compiles, the gcc driver links).
define core_build
$(1)/%.o: src/%.c $$(CORE_HDR) $$(CORE_MK)
	@mkdir -p $$(@D)
	$(2) $(4) $$(if $(5),$$(ISA_$$*)) -c $$< -o $$@
$(1)/tests/%.o: tests/c/%.c $$(CORE_HDR) $$(TEST_HDR)
	@mkdir -p $$(@D)
	$(2) $(4) -Itests/c -c $$< -o $$@
$(1)/test_core: $$(patsubst tests/c/%.c,$(1)/tests/%.o,$$(TEST_SRC)) $$(patsubst src/%.c,$(1)/%.o,$$(CORE_SRC))
	$(3) $(4) $$^ -lm -pthread -o $$@
endef
# $(call emulated_build,DIR,CC,FLAGS): DIR-avx512emu/test_core, the objects of
# DIR with the AVX-512 file on SIMDe.
define emulated_build
$(1)-avx512emu/cfq_avx512.o: src/cfq_avx512.c $$(CORE_HDR) tests/c/avx512_emulated.h
	@mkdir -p $$(@D)
	$(2) $(3) $$(EMU_FLAGS) -c $$< -o $$@
$(1)-avx512emu/tests/%.o: tests/c/%.c $$(CORE_HDR) $$(TEST_HDR)
	@mkdir -p $$(@D)
	$(2) $(3) -Itests/c -DCFQ_AVX512_EMULATED -c $$< -o $$@
$(1)-avx512emu/test_core: $$(patsubst tests/c/%.c,$(1)-avx512emu/tests/%.o,$$(TEST_SRC)) $(1)-avx512emu/cfq_avx512.o \
                          $$(patsubst src/%.c,$(1)/%.o,$$(filter-out src/cfq_avx512.c,$$(CORE_SRC)))
	$(2) $(3) $$^ -lm -pthread -o $$@
endef

# Sanitizer and fuzzer builds: -O1 -g for usable reports; any finding aborts
# the run (no recovery).
DEBUG_CFLAGS := $(filter-out -O3,$(CORE_CFLAGS)) -O1 -g -fno-omit-frame-pointer
SAN_CFLAGS := $(DEBUG_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=all
TSAN_CFLAGS := $(DEBUG_CFLAGS) -fsanitize=thread

NATIVE := build/c
SAN := build/c-sanitize
TSAN := build/c-tsan
CLANGB := build/c-clang
A64 := build/c-aarch64
A64C := build/c-aarch64-clang
AARCH64_CC ?= aarch64-linux-gnu-gcc
$(eval $(call core_build,$(NATIVE),$(CC),$(CC),$(CORE_CFLAGS),$(ISA_FLAGS_ON)))
$(eval $(call core_build,$(SAN),$(CC),$(CC),$(SAN_CFLAGS),$(ISA_FLAGS_ON)))
$(eval $(call core_build,$(TSAN),$(CC),$(CC),$(TSAN_CFLAGS),$(ISA_FLAGS_ON)))
$(eval $(call core_build,$(CLANGB),$(CLANG),$(CLANG),$(CORE_CFLAGS),$(ISA_FLAGS_ON)))
# AArch64: no ISA flags (NEON is baseline; the x86 files compile to empty tables).
$(eval $(call core_build,$(A64),$(AARCH64_CC),$(AARCH64_CC),$(CORE_CFLAGS),))
$(eval $(call core_build,$(A64C),$(CLANG) --target=aarch64-linux-gnu,$(AARCH64_CC),$(CORE_CFLAGS),))
$(eval $(call emulated_build,$(NATIVE),$(CC),$(CORE_CFLAGS)))
# SIMDe's intrinsics out of line here: inlined, every one of them instrumented
# in every kernel took this one compile to 23 GB and 35 minutes (out of line,
# measured at this change: 2.7 GB and 6 minutes).
$(eval $(call emulated_build,$(SAN),$(CC),$(SAN_CFLAGS) -DSIMDE_NO_INLINE))
$(eval $(call emulated_build,$(CLANGB),$(CLANG),$(CORE_CFLAGS)))

# Each test program of a build, and its SIMDe twin where SIMDe is installed.
ifeq ($(ARCH)$(SIMDE_OK),x86_64yes)
with_emulated = $(1)/test_core $(1)-avx512emu/test_core
else
with_emulated = $(1)/test_core
endif

# ---- The C tests: every ISA path this machine runs ---------------------------
ctest: $(call with_emulated,$(NATIVE))
	@for t in $^; do echo $$t; $$t || exit 1; done

# Under AddressSanitizer and UndefinedBehaviorSanitizer.
ctest-sanitize: $(call with_emulated,$(SAN))
	@for t in $^; do echo $$t; $$t || exit 1; done

# Under ThreadSanitizer (the thread pool's locking).
ctest-tsan: $(TSAN)/test_core
	TSAN_OPTIONS=halt_on_error=1 $<

# A second compiler's warnings (-Werror) and code generation.  Skipped with a
# note when clang is not installed.
ctest-clang:
	@if ! command -v $(CLANG) >/dev/null 2>&1; then \
	    echo "ctest-clang: $(CLANG) not found, skipped (Debian package: clang)"; \
	else \
	    $(MAKE) --no-print-directory $(call with_emulated,$(CLANGB)) && \
	    for t in $(call with_emulated,$(CLANGB)); do echo $$t; $$t || exit 1; done; \
	fi

# The NEON path, cross-compiled with gcc and with clang (macOS arm64 wheels are
# built with clang, which folds floating-point selects gcc leaves alone), run
# under QEMU.  Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user.
AARCH64_SYSROOT ?= /usr/aarch64-linux-gnu
QEMU_AARCH64 ?= qemu-aarch64
AARCH64_PKGS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
# The tool check runs first, so a machine without them gets a message naming
# the packages instead of "command not found" from the middle of a build.
ctest-aarch64:
	@command -v $(AARCH64_CC) >/dev/null 2>&1 && command -v $(QEMU_AARCH64) >/dev/null 2>&1 \
	  && test -e $(AARCH64_SYSROOT)/lib/ld-linux-aarch64.so.1 \
	  || { echo "ctest-aarch64: needs $(AARCH64_CC), $(QEMU_AARCH64) and the AArch64 libc in $(AARCH64_SYSROOT);" \
	       "install the Debian packages: $(AARCH64_PKGS)" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(A64)/test_core
	$(QEMU_AARCH64) -L $(AARCH64_SYSROOT) $(A64)/test_core
	@if command -v $(CLANG) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(A64C)/test_core && $(QEMU_AARCH64) -L $(AARCH64_SYSROOT) $(A64C)/test_core; \
	else echo "ctest-aarch64: no $(CLANG): the clang build of the NEON path is skipped"; fi

# ---- The core as a static library ------------------------------------------
# For C users and other build systems: no Python needed.  The same per-file
# flags, plus -fPIC so the archive can go into a shared object too.
LIBOBJ := build/libcfq-obj
$(LIBOBJ)/%.o: src/%.c $(CORE_HDR) $(CORE_MK)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -fPIC $(if $(ISA_FLAGS_ON),$(ISA_$*)) -c $< -o $@
build/libcfq.a: $(patsubst src/%.c,$(LIBOBJ)/%.o,$(CORE_SRC))
	rm -f $@
	$(AR) rcs $@ $^
lib: build/libcfq.a

# ---- libFuzzer on every public entry point -------------------------------------
# tests/fuzz/fuzz_core.c: arbitrary sizes, min/max bits, num_bits, exec and
# aliasing; checks return codes, and that every available ISA path gives the
# scalar path's bits.  The core is instrumented for coverage and sanitized.
# libFuzzer exits non-zero on a finding and writes the input to $(FUZZB)/.
FUZZB := build/fuzz
FUZZ_CFLAGS := $(SAN_CFLAGS)
# -timeout: an input that runs for 20 s is a hang (a finding), not a slow case.
FUZZ_OPTS := -artifact_prefix=$(FUZZB)/ -print_final_stats=1 -timeout=20
$(FUZZB)/%.o: src/%.c $(CORE_HDR) $(CORE_MK)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(if $(ISA_FLAGS_ON),$(ISA_$*)) -c $< -o $@
$(FUZZB)/fuzz_core: tests/fuzz/fuzz_core.c $(patsubst src/%.c,$(FUZZB)/%.o,$(CORE_SRC))
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -lm -pthread -o $@
# The probe links a do-nothing fuzzer: clang alone is not enough, libFuzzer
# comes with the compiler-rt package (only a Recommends of clang on Debian).
fuzz-build:
	@echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)(n & 0); }' \
	  | $(CLANG) -x c -fsanitize=fuzzer - -o /dev/null >/dev/null 2>&1 \
	  || { echo "fuzz: needs $(CLANG) with libFuzzer (Debian packages: clang libclang-rt-dev)" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZB)/fuzz_core
	@mkdir -p $(FUZZB)/corpus
# CI: about a minute.
fuzz-short: fuzz-build
	$(FUZZB)/fuzz_core $(FUZZ_OPTS) -max_total_time=60 $(FUZZB)/corpus
# By hand: ten minutes of libFuzzer on the C entry points, then the
# hypothesis fuzzing of the Python API with 20000 examples per test.
fuzz: fuzz-build build
	$(FUZZB)/fuzz_core $(FUZZ_OPTS) -max_total_time=600 $(FUZZB)/corpus
	$(PY) -m pytest -q tests/test_hardening.py --hypothesis-profile=fuzz

clean:
	rm -rf build cfq/_core.c cfq/*.so cfq/*.pyd .pytest_cache
