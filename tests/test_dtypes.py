"""float16 and bfloat16 element arrays: every op, on every path, gives the
bits of the float32 op between the conversions,
downcast(op(upcast(inputs))), where upcast is exact and downcast rounds to nearest
even as NumPy (float16) and ml_dtypes (bfloat16) convert.  The min/max
sums are the float32 op's on the upcast gradients, bit for bit.  bfloat16
needs ml_dtypes; its tests skip without it."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cfq
from support import (BFLOAT16, HALF_DTYPES, assert_bits_equal, downcast, half_patterns, rnd,
                     shared_among_paths, upcast)



def half_data(dtype, shape, seed, scale=3.0):
    return downcast(rnd(shape, seed, scale), dtype)


def assert_gradient_as_float32(got, want32, dtype):
    assert_bits_equal(got[0], downcast(want32[0], dtype), "backprops_wrt_input")
    assert got[1].dtype == np.float32 and got[2].dtype == np.float32
    assert_bits_equal(got[1], want32[1], "backprop_wrt_min")
    assert_bits_equal(got[2], want32[2], "backprop_wrt_max")


# ---- every 16-bit pattern, every op ----------------------------------------------

RANGES = [(-3.0, 5.0, 8, False), (-0.75, 0.5, 4, True), (0.0, 0.0, 8, False), (1e-3, 7e4, 16, False)]


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("lo,hi,num_bits,narrow", RANGES)
def test_vars_ops_every_pattern(isa, dtype, lo, hi, num_bits, narrow):
    x = half_patterns(dtype)
    g = np.roll(x, 12345)  # every pattern as a gradient too, against other inputs
    kw = dict(num_bits=num_bits, narrow_range=narrow, isa=isa)
    assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, lo, hi, **kw),
                      downcast(cfq.fake_quant_with_min_max_vars(upcast(x), lo, hi, **kw), dtype), "vars")
    want = cfq.fake_quant_with_min_max_vars_gradient(upcast(g), upcast(x), lo, hi, **kw)
    assert_gradient_as_float32(cfq.fake_quant_with_min_max_vars_gradient(g, x, lo, hi, **kw), want, dtype)
    out, region = cfq.fake_quant_with_min_max_vars_and_region(x, lo, hi, **kw)
    out32, region32 = cfq.fake_quant_with_min_max_vars_and_region(upcast(x), lo, hi, **kw)
    assert_bits_equal(out, downcast(out32, dtype), "vars_and_region outputs")
    np.testing.assert_array_equal(region, region32)
    assert_gradient_as_float32(cfq.fake_quant_region_gradient(g, region, isa=isa), want, dtype)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("lo,hi,num_bits,narrow", [r for r in RANGES if r[0] < r[1]])
def test_args_ops_every_pattern(isa, dtype, lo, hi, num_bits, narrow):
    x = half_patterns(dtype)
    g = np.roll(x, -777)
    kw = dict(min=lo, max=hi, num_bits=num_bits, narrow_range=narrow, isa=isa)
    assert_bits_equal(cfq.fake_quant_with_min_max_args(x, **kw),
                      downcast(cfq.fake_quant_with_min_max_args(upcast(x), **kw), dtype), "args")
    assert_bits_equal(cfq.fake_quant_with_min_max_args_gradient(g, x, **kw),
                      downcast(cfq.fake_quant_with_min_max_args_gradient(upcast(g), upcast(x), **kw), dtype),
                      "args gradient")
    out, region = cfq.fake_quant_with_min_max_args_and_region(x, **kw)
    assert_bits_equal(out, downcast(cfq.fake_quant_with_min_max_args(upcast(x), **kw), dtype),
                      "args_and_region")
    np.testing.assert_array_equal(region, cfq.fake_quant_with_min_max_args_and_region(upcast(x), **kw)[1])
    assert_bits_equal(cfq.fake_quant_region_gradient(g, region, isa=isa)[0],
                      downcast(cfq.fake_quant_with_min_max_args_gradient(upcast(g), upcast(x), **kw), dtype),
                      "args gradient from region")


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_per_channel_ops_every_pattern(isa, dtype, axis):
    # 65536 patterns as [16, 64, 64]; channels along `axis`, one of them
    # min == max == 0 (pass-through), one with min > 0.
    x = half_patterns(dtype).reshape(16, 64, 64)
    g = np.roll(half_patterns(dtype), 4099).reshape(x.shape)
    c = x.shape[axis]
    rng = np.random.default_rng(axis + 5)
    lo = rng.uniform(-6, 0, c).astype(np.float32)
    hi = rng.uniform(0.1, 6, c).astype(np.float32)
    lo[1] = hi[1] = 0.0
    lo[2], hi[2] = 0.5, 2.0
    kw = dict(axis=axis, num_bits=6, isa=isa)
    want_out = downcast(cfq.fake_quant_with_min_max_vars_per_channel(upcast(x), lo, hi, **kw), dtype)
    assert_bits_equal(cfq.fake_quant_with_min_max_vars_per_channel(x, lo, hi, **kw), want_out, "per-channel")
    want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(upcast(g), upcast(x), lo, hi, **kw)
    assert_gradient_as_float32(cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, **kw),
                               want, dtype)
    out, region = cfq.fake_quant_with_min_max_vars_per_channel_and_region(x, lo, hi, **kw)
    assert_bits_equal(out, want_out, "per-channel and region outputs")
    _, region32 = cfq.fake_quant_with_min_max_vars_per_channel_and_region(upcast(x), lo, hi, **kw)
    np.testing.assert_array_equal(region, region32)
    assert_gradient_as_float32(cfq.fake_quant_per_channel_region_gradient(g, region, axis=axis, isa=isa),
                               want, dtype)


# ---- random data, all shapes and ranges --------------------------------------------

@pytest.mark.parametrize("dtype", HALF_DTYPES)
@shared_among_paths()
@given(n=st.integers(0, 300), lo=st.floats(-8, 0, width=32), width=st.floats(0, 12, width=32),
       num_bits=st.integers(2, 16), narrow=st.booleans(), seed=st.integers(0, 2**31))
def test_random_data_as_float32(isa, dtype, n, lo, width, num_bits, narrow, seed):
    hi = float(np.float32(lo) + np.float32(width))
    x = half_data(dtype, n, seed, scale=4.0)
    g = half_data(dtype, n, seed + 1, scale=2.0)
    kw = dict(num_bits=num_bits, narrow_range=narrow, isa=isa)
    assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, lo, hi, **kw),
                      downcast(cfq.fake_quant_with_min_max_vars(upcast(x), lo, hi, **kw), dtype))
    assert_gradient_as_float32(cfq.fake_quant_with_min_max_vars_gradient(g, x, lo, hi, **kw),
                               cfq.fake_quant_with_min_max_vars_gradient(upcast(g), upcast(x), lo, hi, **kw),
                               dtype)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_threads_do_not_change_bits(dtype):
    x = half_data(dtype, (700, 1000), 1)
    g = half_data(dtype, (700, 1000), 2)
    one = cfq.fake_quant_with_min_max_vars_gradient(g, x, -2.0, 2.5, threads=1)
    two = cfq.fake_quant_with_min_max_vars_gradient(g, x, -2.0, 2.5, threads=2)
    for a, b in zip(one, two):
        assert_bits_equal(a, b)
    lo, hi = np.full(1000, -1.5, np.float32), np.full(1000, 2.0, np.float32)
    one = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, threads=1)
    two = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, threads=2)
    for a, b in zip(one, two):
        assert_bits_equal(a, b)


# ---- the argument layer -------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_results_keep_the_dtype(dtype):
    x = half_data(dtype, (3, 4), 0)
    assert cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0).dtype == dtype
    assert cfq.fake_quant_with_min_max_args(x).dtype == dtype
    assert cfq.fake_quant_with_min_max_args_gradient(x, x).dtype == dtype
    assert cfq.fake_quant_with_min_max_vars_per_channel(x, [-1.0] * 4, [1.0] * 4).dtype == dtype
    r = cfq.fake_quant_with_min_max_vars_gradient(x, x, -1.0, 1.0)
    assert (r[0].dtype, r[1].dtype, r[1].shape) == (dtype, np.float32, ())
    out, region = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0)
    assert (out.dtype, region.dtype) == (dtype, np.uint8)
    assert cfq.fake_quant_region_gradient(x, region)[0].dtype == dtype


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_mixed_dtypes_are_a_type_error(dtype):
    x = half_data(dtype, 8, 0)
    with pytest.raises(TypeError, match="dtype"):
        cfq.fake_quant_with_min_max_vars_gradient(x, upcast(x), -1.0, 1.0)
    with pytest.raises(TypeError, match="dtype"):
        cfq.fake_quant_with_min_max_args_gradient(upcast(x), x)
    with pytest.raises(TypeError, match="dtype"):
        cfq.fake_quant_with_min_max_vars_per_channel_gradient(x, upcast(x), [-1.0] * 8, [1.0] * 8)
    other = np.dtype(np.float16) if dtype != np.float16 else BFLOAT16
    if other is not None:
        with pytest.raises(TypeError, match="dtype"):
            cfq.fake_quant_with_min_max_vars_gradient(x, x.astype(other), -1.0, 1.0)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_out_must_have_the_dtype(dtype):
    x = half_data(dtype, 8, 0)
    with pytest.raises(TypeError, match=f"out must have dtype {dtype}"):
        cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, out=np.empty(8, np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        cfq.fake_quant_with_min_max_vars(upcast(x), -1.0, 1.0, out=np.empty(8, dtype))


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_out_in_place_and_strided(dtype):
    g, x = half_data(dtype, 64, 1), half_data(dtype, 64, 2)
    want = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0)
    g2 = g.copy()
    r = cfq.fake_quant_with_min_max_vars_gradient(g2, x, -1.0, 1.0, out=g2)
    assert r[0] is g2
    assert_bits_equal(g2, want[0])
    big = np.zeros(128, dtype)
    r = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0, out=big[::2])
    assert_bits_equal(big[::2], want[0])
    assert not big[1::2].view(np.uint16).any()


def test_byteswapped_float16_is_converted_in_kind():
    x = half_data(np.float16, 40, 3)
    got = cfq.fake_quant_with_min_max_vars(x.astype(">f2"), -2.0, 2.0)
    assert got.dtype == np.float16
    assert_bits_equal(got, cfq.fake_quant_with_min_max_vars(x, -2.0, 2.0))


@pytest.mark.skipif(BFLOAT16 is None, reason="bfloat16 needs ml_dtypes")
def test_bfloat16_ranges_are_accepted():
    x = half_data(BFLOAT16, (5, 3), 4)
    lo = np.array([-1, -2, -3], BFLOAT16)
    hi = np.array([1, 2, 3], BFLOAT16)
    assert_bits_equal(cfq.fake_quant_with_min_max_vars_per_channel(x, lo, hi),
                      cfq.fake_quant_with_min_max_vars_per_channel(x, upcast(lo), upcast(hi)))
    assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, lo[0], hi[0]),
                      cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0))


# ---- subnormals of the narrow types ----------------------------------------------------
# float16's subnormals (2**-24 up to 2**-14) are normal float32 values: TF's
# flush of float32 denormals does not touch them, and a result in float16's
# subnormal range is rounded into it, not flushed.  bfloat16 shares float32's
# exponent: its subnormals are float32 denormals and flush to (signed) zero
# as TF flushes those.

def test_float16_subnormals_are_values():
    g = np.array([2.0 ** -20, -2.0 ** -24, 6e-5], np.float16)
    r = cfq.fake_quant_with_min_max_vars_gradient(g, np.zeros(3, np.float16), -1.0, 1.0)
    assert_bits_equal(r[0], g)
    # a 16-bit quantization of [-2**-14, 2**-14]: steps of 2**-29, results subnormal
    x = np.array([2.0 ** -20, -2.0 ** -24, 3 * 2.0 ** -24], np.float16)
    got = cfq.fake_quant_with_min_max_vars(x, -2.0 ** -14, 2.0 ** -14, num_bits=16)
    assert (got.view(np.uint16) & 0x7c00 == 0).all() and (got != 0).all()
    assert_bits_equal(got, downcast(cfq.fake_quant_with_min_max_vars(upcast(x), -2.0 ** -14, 2.0 ** -14,
                                                                 num_bits=16), np.float16))


@pytest.mark.skipif(BFLOAT16 is None, reason="bfloat16 needs ml_dtypes")
def test_bfloat16_subnormals_flush_as_float32_denormals():
    g = np.array([1e-39, -1e-39], np.float32).astype(BFLOAT16)
    assert (g.view(np.uint16) & 0x7f80 == 0).all() and (g.view(np.uint16) & 0x7f).all()
    r = cfq.fake_quant_with_min_max_vars_gradient(g, np.zeros(2, BFLOAT16), -1.0, 1.0)
    assert list(r[0].view(np.uint16)) == [0x0000, 0x8000]
    assert float(r[1]) == 0.0 and float(r[2]) == 0.0


# ---- in place over the gradients, with pass-through lanes ---------------------------
# Pass-through lanes get g's bits after dx is stored: in place (out=g) they
# must come from g as it was, not from the dx just written there.

DTYPES_ALL = [pytest.param(np.dtype(np.float32), id="float32")] + HALF_DTYPES


@pytest.mark.parametrize("dtype", DTYPES_ALL)
def test_in_place_pass_through_region_gradient(isa, dtype):
    x = half_data(dtype, 300, 21) if dtype != np.float32 else rnd(300, 21)
    g = half_data(dtype, 300, 22) if dtype != np.float32 else rnd(300, 22)
    _, region = cfq.fake_quant_with_min_max_vars_and_region(x, 0.0, 0.0)  # all codes 8
    region[::7] = 1  # mixed with other codes
    region[3::7] = 0
    want = cfq.fake_quant_region_gradient(g, region, isa="scalar")
    g2 = g.copy()
    got = cfq.fake_quant_region_gradient(g2, region, out=g2, isa=isa)
    assert got[0] is g2
    for a, b in zip(got, want):
        assert_bits_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES_ALL)
@pytest.mark.parametrize("axis", [-1, 0])
def test_in_place_pass_through_per_channel_gradient(isa, dtype, axis):
    shape = (40, 70) if axis == -1 else (70, 40)
    x = downcast(rnd(shape, 23), dtype)
    g = downcast(rnd(shape, 24, 1.0), dtype)
    lo, hi = np.full(70, -1.0, np.float32), np.full(70, 1.5, np.float32)
    lo[::3] = hi[::3] = 0.0  # pass-through channels
    want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, axis=axis, isa="scalar")
    g2 = g.copy()
    got = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g2, x, lo, hi, axis=axis, out=g2, isa=isa)
    for a, b in zip(got, want):
        assert_bits_equal(a, b)
    _, region = cfq.fake_quant_with_min_max_vars_per_channel_and_region(x, lo, hi, axis=axis)
    g3 = g.copy()
    got = cfq.fake_quant_per_channel_region_gradient(g3, region, axis=axis, out=g3, isa=isa)
    for a, b in zip(got, want):
        assert_bits_equal(a, b)
