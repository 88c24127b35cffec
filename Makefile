# cfq -- the two commands a fresh machine needs are `make bench` and `make test`;
# both create .venv and install what they need first.

PYTHON ?= python3
CC ?= cc
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-stamp
BUILD := build/c
ARCH := $(shell uname -m)

# The C core: strict, C99, no FMA contraction, never fast-math.
CORE_CFLAGS := -std=c99 -O3 -Wall -Wextra -Werror -ffp-contract=off -fno-fast-math -Isrc
CORE_SRC := $(wildcard src/*.c)
CORE_HDR := src/cfq.h src/cfq_internal.h
ifeq ($(ARCH),x86_64)
ISA_cfq_avx2 := -mavx2
ISA_cfq_avx512 := -mavx512f
endif
SIMDE_OK := $(shell test -f /usr/include/simde/x86/avx512.h && echo yes)

.PHONY: all build test ctest ctest-avx512-emu pytest bench clean \
        lib ctest-aarch64 ctest-sanitize ctest-tsan ctest-clang fuzz fuzz-short fuzz-build

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
	$(PY) -m pytest -q tests

bench: build
	$(PY) -m cfq.bench

# ---- C tests of the core, every ISA path this machine runs ------------------

$(BUILD)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(ISA_$*) -c $< -o $@

$(BUILD)/test_core: tests/c/test_core.c $(patsubst src/%.c,$(BUILD)/%.o,$(CORE_SRC))
	$(CC) $(CORE_CFLAGS) $^ -lm -pthread -o $@

ctest: $(BUILD)/test_core
	$(BUILD)/test_core
ifeq ($(ARCH)$(SIMDE_OK),x86_64yes)
	$(MAKE) --no-print-directory ctest-avx512-emu
endif

# The AVX-512 file's logic on a CPU without AVX-512, through SIMDe's portable
# AVX-512 (Debian: libsimde-dev).  Real AVX-512 hardware runs it natively.
EMU := build/c-avx512emu
$(EMU)/cfq_avx512.o: src/cfq_avx512.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -Wno-psabi -mavx2 -DCFQ_AVX512_EMULATED -c $< -o $@
$(EMU)/test_core: tests/c/test_core.c $(EMU)/cfq_avx512.o $(patsubst src/%.c,$(BUILD)/%.o,$(filter-out src/cfq_avx512.c,$(CORE_SRC)))
	$(CC) $(CORE_CFLAGS) -DCFQ_AVX512_EMULATED $^ -lm -pthread -o $@
ctest-avx512-emu: $(EMU)/test_core
	$(EMU)/test_core

# ---- The core as a static library ------------------------------------------
# For C users and other build systems: no Python needed.  Same per-file flags
# as the tests, plus -fPIC so the archive can go into a shared object too.
LIBOBJ := build/libcfq-obj
$(LIBOBJ)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -fPIC $(ISA_$*) -c $< -o $@
build/libcfq.a: $(patsubst src/%.c,$(LIBOBJ)/%.o,$(CORE_SRC))
	rm -f $@
	$(AR) rcs $@ $^
lib: build/libcfq.a

# ---- The C tests on AArch64 (NEON path), cross-compiled, run under QEMU -----
# Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user.  No ISA
# flags: NEON is baseline on AArch64 and the x86 files compile to empty tables.
AARCH64_CC ?= aarch64-linux-gnu-gcc
AARCH64_SYSROOT ?= /usr/aarch64-linux-gnu
QEMU_AARCH64 ?= qemu-aarch64
A64 := build/c-aarch64
AARCH64_PKGS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
$(A64)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(AARCH64_CC) $(CORE_CFLAGS) -c $< -o $@
$(A64)/test_core: tests/c/test_core.c $(patsubst src/%.c,$(A64)/%.o,$(CORE_SRC))
	$(AARCH64_CC) $(CORE_CFLAGS) $^ -lm -pthread -o $@
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
# The same with clang (macOS arm64 wheels are built with it; clang folds
# floating-point selects that gcc leaves alone), linked by the gcc driver.
A64C := build/c-aarch64-clang
$(A64C)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CLANG) --target=aarch64-linux-gnu $(CORE_CFLAGS) -c $< -o $@
$(A64C)/test_core.o: tests/c/test_core.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CLANG) --target=aarch64-linux-gnu $(CORE_CFLAGS) -c $< -o $@
$(A64C)/test_core: $(A64C)/test_core.o $(patsubst src/%.c,$(A64C)/%.o,$(CORE_SRC))
	$(AARCH64_CC) $^ -lm -pthread -o $@

# ---- The C tests under AddressSanitizer and UndefinedBehaviorSanitizer -------
# -O1 -g for usable reports; any finding aborts the run (no recovery).
SAN := build/c-sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1
SAN_CFLAGS := $(filter-out -O3,$(CORE_CFLAGS)) $(SAN_FLAGS)
$(SAN)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(SAN_CFLAGS) $(ISA_$*) -c $< -o $@
$(SAN)/test_core: tests/c/test_core.c $(patsubst src/%.c,$(SAN)/%.o,$(CORE_SRC))
	$(CC) $(SAN_CFLAGS) $^ -lm -pthread -o $@
# The SIMDe-emulated AVX-512 file, sanitized too (as ctest-avx512-emu).
SANEMU := build/c-sanitize-avx512emu
$(SANEMU)/cfq_avx512.o: src/cfq_avx512.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(SAN_CFLAGS) -Wno-psabi -mavx2 -DCFQ_AVX512_EMULATED -c $< -o $@
$(SANEMU)/test_core: tests/c/test_core.c $(SANEMU)/cfq_avx512.o $(patsubst src/%.c,$(SAN)/%.o,$(filter-out src/cfq_avx512.c,$(CORE_SRC)))
	$(CC) $(SAN_CFLAGS) -DCFQ_AVX512_EMULATED $^ -lm -pthread -o $@
ctest-sanitize: $(SAN)/test_core
	$(SAN)/test_core
ifeq ($(ARCH)$(SIMDE_OK),x86_64yes)
	@$(MAKE) --no-print-directory $(SANEMU)/test_core
	$(SANEMU)/test_core
endif

# ---- The C tests under ThreadSanitizer (the thread pool's locking) -----------
TSAN := build/c-tsan
TSAN_CFLAGS := $(filter-out -O3,$(CORE_CFLAGS)) -fsanitize=thread -g -O1
$(TSAN)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(TSAN_CFLAGS) $(ISA_$*) -c $< -o $@
$(TSAN)/test_core: tests/c/test_core.c $(patsubst src/%.c,$(TSAN)/%.o,$(CORE_SRC))
	$(CC) $(TSAN_CFLAGS) $^ -lm -pthread -o $@
ctest-tsan: $(TSAN)/test_core
	TSAN_OPTIONS=halt_on_error=1 $(TSAN)/test_core

# ---- The C tests built with clang --------------------------------------------
# A second compiler's warnings (-Werror) and code generation; the AVX-512 file
# gets -mavx512f as usual, so clang compiles its intrinsics even where the CPU
# cannot run them.  Skipped with a note when clang is not installed.
CLANG ?= clang
CLANGB := build/c-clang
$(CLANGB)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(CORE_CFLAGS) $(ISA_$*) -c $< -o $@
$(CLANGB)/test_core: tests/c/test_core.c $(patsubst src/%.c,$(CLANGB)/%.o,$(CORE_SRC))
	$(CLANG) $(CORE_CFLAGS) $^ -lm -pthread -o $@
# And the SIMDe-emulated AVX-512 file, as ctest-avx512-emu does with $(CC).
CLANGEMU := build/c-clang-avx512emu
$(CLANGEMU)/cfq_avx512.o: src/cfq_avx512.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(CORE_CFLAGS) -Wno-psabi -mavx2 -DCFQ_AVX512_EMULATED -c $< -o $@
$(CLANGEMU)/test_core: tests/c/test_core.c $(CLANGEMU)/cfq_avx512.o $(patsubst src/%.c,$(CLANGB)/%.o,$(filter-out src/cfq_avx512.c,$(CORE_SRC)))
	$(CLANG) $(CORE_CFLAGS) -DCFQ_AVX512_EMULATED $^ -lm -pthread -o $@
ifeq ($(ARCH)$(SIMDE_OK),x86_64yes)
CLANG_TESTS := $(CLANGB)/test_core $(CLANGEMU)/test_core
else
CLANG_TESTS := $(CLANGB)/test_core
endif
ctest-clang:
	@if ! command -v $(CLANG) >/dev/null 2>&1; then \
	    echo "ctest-clang: $(CLANG) not found, skipped (Debian package: clang)"; \
	else \
	    $(MAKE) --no-print-directory $(CLANG_TESTS) && \
	    for t in $(CLANG_TESTS); do echo $$t; $$t || exit 1; done; \
	fi

# ---- libFuzzer on every public entry point -------------------------------------
# tests/fuzz/fuzz_core.c: arbitrary sizes, min/max bits, num_bits, exec and
# aliasing; checks return codes, and that every available ISA path gives the
# scalar path's bits.  The core is instrumented for coverage and sanitized.
# libFuzzer exits non-zero on a finding and writes the input to $(FUZZB)/.
FUZZB := build/fuzz
FUZZ_CFLAGS := $(filter-out -O3,$(CORE_CFLAGS)) -O1 -g -fsanitize=address,undefined \
               -fno-sanitize-recover=all -fno-omit-frame-pointer
# -timeout: an input that runs for 20 s is a hang (a finding), not a slow case.
FUZZ_OPTS := -artifact_prefix=$(FUZZB)/ -print_final_stats=1 -timeout=20
$(FUZZB)/%.o: src/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(ISA_$*) -c $< -o $@
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
# By hand: ten minutes, same corpus.
# The long run: ten minutes of libFuzzer on the C entry points, then the
# hypothesis fuzzing of the Python API with 20000 examples per test.
fuzz: fuzz-build build
	$(FUZZB)/fuzz_core $(FUZZ_OPTS) -max_total_time=600 $(FUZZB)/corpus
	CFQ_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q tests/test_fuzz_api.py

clean:
	rm -rf build cfq/_core.c cfq/*.so cfq/*.pyd .pytest_cache
