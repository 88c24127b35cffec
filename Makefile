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

.PHONY: all build test ctest ctest-avx512-emu pytest bench clean

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

clean:
	rm -rf build cfq/_core.c cfq/*.so cfq/*.pyd .pytest_cache
