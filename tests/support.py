"""Helpers the test files share: exact (bit) comparisons, the ISA paths (all
four, with the reason a path cannot run here), data generators and
hypothesis strategies.  Imported by name from the test files (the tests
folder is on sys.path through conftest.py), never from conftest itself, and
no test file imports another."""
import math
import os
import platform

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

import cfq

# ---- ISA paths ---------------------------------------------------------------

# Every path cfq has, whether or not this machine runs it; the tests are
# parametrised over all four so a path that cannot run shows as SKIPPED with
# its reason instead of silently vanishing from the run.
ALL_ISAS = ("scalar", "avx2", "avx512", "neon")
# The paths this CPU, OS and build run, scalar first.
ISAS = cfq.available_isas()

_ARCH_OF = {"avx2": "x86", "avx512": "x86", "neon": "arm64"}
_FEATURE = {"avx2": "AVX2", "avx512": "AVX-512F", "neon": "NEON"}
MACHINE = platform.machine() or "unknown"
# platform.machine() spellings: Linux x86_64/aarch64, Windows AMD64/ARM64,
# macOS x86_64/arm64.
ARCH = {"x86_64": "x86", "amd64": "x86", "i386": "x86", "i686": "x86", "x86": "x86",
        "aarch64": "arm64", "arm64": "arm64"}.get(MACHINE.lower())


def isa_skip_reason(name):
    """Why this machine cannot run path `name`, or None if it can."""
    if name in ISAS or name == "scalar":  # scalar always runs: never skip it
        return None
    if _ARCH_OF[name] != ARCH:
        return f"{name}: not this machine's architecture ({MACHINE})"
    if name == "neon":  # baseline on AArch64: only a build without it lacks it
        return "neon: this build of cfq has no NEON path"
    return f"{name}: this CPU or OS does not run {_FEATURE[name]} (or this build of cfq has no {name} path)"


# conftest.py parametrises every test that takes an `isa` argument over these.
ISA_PARAMS = [pytest.param(name, id=name, marks=[pytest.mark.skip(reason=isa_skip_reason(name))]
                           if isa_skip_reason(name) else [])
              for name in ALL_ISAS]
MISSING_ISAS = [name for name in ALL_ISAS if name not in ISAS]


def shared_among_paths(factor=1):
    """Settings for a @given test parametrised over `isa` that used to draw
    the path as one more argument: `factor` times the profile's examples,
    shared among the paths this machine runs, so each path sees as many
    cases as before and the run takes as long (under any profile)."""
    return settings(max_examples=max(1, factor * settings().max_examples // len(ISAS)))

# The folder holding the cfq under test (a checkout or site-packages), for
# subprocesses that must import the same cfq.
CFQ_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cfq.__file__)))

# ---- exact comparisons ---------------------------------------------------------


def is_half(a):
    """Whether an array's dtype is float16 or ml_dtypes' bfloat16."""
    dt = np.asarray(a).dtype
    return dt.itemsize == 2 and (dt.kind == "f" or dt.name == "bfloat16")


def bits(a):
    """Values as their bit patterns, for exact comparisons: float16 and
    bfloat16 as uint16, everything else as float32's uint32."""
    if is_half(a):
        return np.ascontiguousarray(a).view(np.uint16)
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32)


def assert_bits_equal(got, want, what=""):
    """Equal bit for bit: 16-bit arrays of one dtype, or as float32."""
    got, want = np.asarray(got), np.asarray(want)
    if is_half(got) or is_half(want):
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    else:
        got, want = got.astype(np.float32), want.astype(np.float32)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    gb, wb = bits(got), bits(want)
    bad = np.flatnonzero(gb.ravel() != wb.ravel())
    assert bad.size == 0, (
        f"{what}: {bad.size} of {gb.size} elements differ; first at {bad[0]}: "
        f"got {gb.ravel()[bad[0]]:08x} want {wb.ravel()[bad[0]]:08x}")


def element_dtype(a):
    """The dtype cfq computes an array-like in and returns: float16 and
    bfloat16 as they are, every other real dtype as float32."""
    dt = np.asarray(a).dtype
    if is_half(a):
        return dt.newbyteorder("=")
    return np.dtype(np.float32)


def assert_sum_at_least_as_accurate(got, tf_value, exact, what):
    """cfq's min/max sum is at least as close to the exact sum as TF's
    float32 sum (cfq's compensated sums are the documented difference)."""
    got, tf_value, exact = np.float32(got), np.float32(tf_value), np.float32(exact)
    if np.isnan(tf_value) or np.isnan(exact):
        assert np.isnan(got), f"{what}: got {got}, TF {tf_value}, exact {exact}"
        return
    if np.isinf(exact):
        assert got == exact, f"{what}: got {got}, exact {exact}"
        return
    err_cfq = abs(float(got) - float(exact))
    err_tf = abs(float(tf_value) - float(exact)) if np.isfinite(tf_value) else np.inf
    assert err_cfq <= err_tf, f"{what}: cfq {got} (err {err_cfq}), TF {tf_value} (err {err_tf}), exact {exact}"

# ---- data ------------------------------------------------------------------------


def normal_data(n, seed=0, spread=3.0):
    """(gradients, inputs): standard normal gradients, inputs spread wide."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n).astype(np.float32)
    x = (rng.standard_normal(n) * spread).astype(np.float32)
    return g, x


def wide_data(n, seed):
    """(gradients, inputs): gradients over 60 decades, inputs in [-3, 3)."""
    rng = np.random.default_rng(seed)
    g = (rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-30, 30, n)).astype(np.float32)
    x = rng.uniform(-3, 3, n).astype(np.float32)
    return g, x


def rnd(shape, seed=0, scale=3.0):
    """Normal float32 values of this shape, times scale."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ---- 16-bit element types ----------------------------------------------------------

try:
    import ml_dtypes
    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes comes with jax
    BFLOAT16 = None

# The NumPy 16-bit dtypes as test parameters; bfloat16 skipped without ml_dtypes.
HALF_DTYPES = [pytest.param(np.dtype(np.float16), id="float16"),
               pytest.param(BFLOAT16, id="bfloat16",
                            marks=pytest.mark.skipif(BFLOAT16 is None, reason="bfloat16 needs ml_dtypes"))]
ALL_HALF_PATTERNS = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def half_patterns(dtype, seed=None):
    """Every 16-bit pattern as `dtype` (NaNs, +-Inf, -0.0, subnormals), in a
    shuffled order when seed is given."""
    p = ALL_HALF_PATTERNS
    if seed is not None:
        p = np.random.default_rng(seed).permutation(p)
    return p.view(dtype)


def upcast(a):
    """float32 values of 16-bit ones (exact; NaNs without a warning)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(a).astype(np.float32)


def downcast(a, dtype):
    """float32 values cast to `dtype` to nearest even, as NumPy and ml_dtypes do."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(a, np.float32).astype(dtype)

# ---- PyTorch ----------------------------------------------------------------------


def saved_bytes(fn):
    """(bytes autograd keeps for backward while fn() builds the graph, fn's
    result); needs torch, imported here so support itself does not."""
    import torch
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(total), out

# ---- hypothesis strategies ---------------------------------------------------------

# Elements for the forward, args and per-channel ops' inputs.
SPECIAL = [0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38]
floats32 = st.one_of(st.floats(width=32), st.sampled_from(SPECIAL), st.floats(-8, 8, width=32))
# (min, max) pairs in either order.
ranges = st.tuples(st.floats(-10, 10, width=32), st.floats(-10, 10, width=32))
bit_widths = st.integers(2, 16)
# Finite min/max values, zeros, denormals and giants included.
finite32 = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([0.0, -0.0, 1e-40, -1e-40, 3e38, -3e38]),
                     st.floats(width=32, allow_nan=False, allow_infinity=False))


# ---- Sums against the exact ones -------------------------------------------

CHUNK, BLOCK, LANES = 16384, 256, 8  # cfq_internal.h's chunk, sum block (CFQ_SUM_BLOCK) and lanes


def lane_blocks_exact(run_terms):
    """Whether every plain-double partial of cfq's order is exact for one run
    of terms (an array as one chunked kernel call sees it: element i in lane
    i % 8 of sum block i // 256 of chunk i // 16384).  Inexact only with
    terms far apart in magnitude in one lane and block: cfq's documented
    exception."""
    t = np.asarray(run_terms, np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)):
        return True
    pad = (-t.size) % BLOCK
    blocks = np.concatenate([t, np.zeros(pad)]).reshape(-1, BLOCK // LANES, LANES)  # [block, step, lane]
    partial = np.zeros(blocks.shape[::2])
    for step in range(blocks.shape[1]):  # the kernels' order: step by step
        partial += blocks[:, step, :]
    # exact iff the partial minus its terms is exactly 0 (fsum is exact here)
    return all(math.fsum(list(blocks[b, :, l]) + [-partial[b, l]]) == 0.0
               for b in range(blocks.shape[0]) for l in range(LANES))


ROW_STRETCH = 32  # cfq_internal.h's CFQ_ROW_STRETCH


def row_stretches_exact(channel_terms):
    """Whether every plain-double partial of a per-channel sum over the last
    axis is exact: a channel's terms in row order, rows [32k, 32k + 32)
    summed in order, one partial per stretch."""
    t = np.asarray(channel_terms, np.float64).ravel()
    if not np.all(np.isfinite(t)):
        return True
    for k in range(0, t.size, ROW_STRETCH):
        partial = 0.0
        for v in t[k:k + ROW_STRETCH]:
            partial += float(v)
        if math.fsum(list(t[k:k + ROW_STRETCH]) + [-partial]) != 0.0:
            return False
    return True


def assert_sum_as_documented(got, want, terms, runs=None, exact=None):
    """cfq's sum `got` against the float32 nearest the exact sum `want`:
    equal within one float32 ulp (a double rounding at a float32 tie), except
    where a lane's partial over a block was inexact (see lane_blocks_exact),
    where the README's bound holds: 2**-48 of the sum of the terms'
    magnitudes.  runs: the terms as the kernels saw them (default: one run);
    exact: whether the partials were exact, if known otherwise (the per-channel
    sums over the last axis, see row_stretches_exact)."""
    got, want = float(got), float(want)
    if np.isnan(want):
        assert np.isnan(got), (got, want)
        return
    with np.errstate(over="ignore"):
        want32 = float(np.float32(want))
    if math.isinf(want32):
        assert got == want32, (got, want)  # overflow: +-inf, exactly
        return
    # one float32 ulp at want (np.spacing "overflows" at float32's largest)
    tol = max(2.0 ** (math.frexp(want32)[1] - 24), 2.0 ** -149)
    if exact is None:
        exact = all(lane_blocks_exact(r) for r in (runs if runs is not None else [terms]))
    if not exact:
        tol += 2.0 ** -48 * float(np.sum(np.abs(np.asarray(terms, np.float64))))
    assert got == want or abs(got - want) <= tol, (got, want, tol)
