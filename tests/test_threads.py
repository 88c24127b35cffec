"""threads= gives identical bits for every count; the region-code backward
path gives the vars gradient's bits."""
import numpy as np
import pytest

import cfq
from support import ISAS, assert_bits_equal

vg = cfq.fake_quant_with_min_max_vars_gradient


def wide(n, seed):
    rng = np.random.default_rng(seed)
    g = (rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-30, 30, n)).astype(np.float32)
    x = rng.uniform(-3, 3, n).astype(np.float32)
    return g, x


@pytest.mark.parametrize("n", [1_000_003, 4 << 20])
def test_identical_bits_for_every_thread_count(n):
    g, x = wide(n, n)
    ref = vg(g, x, -1.0, 1.0, threads=1)
    # 4M elements: SIMD paths write dx with non-temporal stores; scalar does not.
    for a, b in zip(vg(g, x, -1.0, 1.0, threads=1, isa="scalar"), ref):
        assert_bits_equal(a, b, "scalar")
    fwd = cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, threads=1)
    args = cfq.fake_quant_with_min_max_args(x, -1.0, 1.0, threads=1)
    out_r, region = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0, threads=1)
    for t in (2, 3, 7, None):
        for a, b in zip(vg(g, x, -1.0, 1.0, threads=t), ref):
            assert_bits_equal(a, b, f"threads={t}")
        assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, threads=t), fwd)
        assert_bits_equal(cfq.fake_quant_with_min_max_args(x, -1.0, 1.0, threads=t), args)
        o, r = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0, threads=t)
        assert_bits_equal(o, out_r)
        assert np.array_equal(r, region)
        for a, b in zip(cfq.fake_quant_region_gradient(g, region, threads=t), ref):
            assert_bits_equal(a, b, f"region threads={t}")


@pytest.mark.parametrize("shape,axis", [((200_001, 5), -1), ((5, 200_001), 0), ((1000, 600), -1)])
def test_per_channel_identical_bits_for_every_thread_count(shape, axis):
    g, x = wide(int(np.prod(shape)), 3)
    g, x = g.reshape(shape), x.reshape(shape)
    d = shape[axis]
    mins, maxs = np.full(d, -1.0, np.float32), np.linspace(0.1, 2.0, d).astype(np.float32)
    ref = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, threads=1)
    for t in (2, 3, 7):
        got = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, threads=t)
        for a, b in zip(got, ref):
            assert_bits_equal(a, b, f"threads={t}")


@pytest.mark.parametrize("mn,mx", [(-1.0, 1.0), (0.0, 0.0), (1.0, -1.0), (0.5, 0.5), (-3e38, 3e38), (-0.3, 2.7)])
def test_region_gradient_equals_vars_gradient(mn, mx, isa):
    g, x = wide(70001, 5)
    x[::11] = np.nan
    g[::13] = np.inf
    g[1::17] = np.float32(1e-40)
    x[2::19] = np.float32(-1e-40)
    for bits_, narrow in ((8, False), (3, True), (16, False)):
        out, region = cfq.fake_quant_with_min_max_vars_and_region(x, mn, mx, bits_, narrow, isa=isa)
        assert region.dtype == np.uint8 and region.shape == x.shape
        assert_bits_equal(out, cfq.fake_quant_with_min_max_vars(x, mn, mx, bits_, narrow))
        want = vg(g, x, mn, mx, bits_, narrow)
        got = cfq.fake_quant_region_gradient(g, region, isa=isa)
        for a, b in zip(got, want):
            assert_bits_equal(a, b, f"region ({mn}, {mx}) {isa}")


def test_region_shapes_and_in_place():
    x = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    g = np.ones_like(x)
    out, region = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0)
    assert out.shape == region.shape == (3, 4, 5)
    r = cfq.fake_quant_region_gradient(g, region, out=g)
    assert r[0] is g
    o0, r0 = cfq.fake_quant_with_min_max_vars_and_region(np.float32(5.0), -1.0, 1.0)
    assert o0.shape == () and int(r0) == 2


def test_region_errors():
    g = np.ones(10, np.float32)
    region = np.zeros(10, np.uint8)
    region[3] = 7
    with pytest.raises(ValueError, match="region code"):
        cfq.fake_quant_region_gradient(g, region)
    with pytest.raises(TypeError, match="uint8"):
        cfq.fake_quant_region_gradient(g, np.zeros(10, np.int32))
    with pytest.raises(TypeError, match="uint8"):
        cfq.fake_quant_region_gradient(g, [0] * 10)
    with pytest.raises(ValueError, match="same shape"):
        cfq.fake_quant_region_gradient(g, np.zeros(11, np.uint8))


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_threads_argument_checked(bad, exc):
    with pytest.raises(exc, match="threads"):
        vg(np.zeros(3), np.zeros(3), -1.0, 1.0, threads=bad)


def test_region_gradient_zero_d():
    out, region = cfq.fake_quant_with_min_max_vars_and_region(np.float32(0.25), -1.0, 1.0)
    r = cfq.fake_quant_region_gradient(np.float32(3.0), region)
    assert r.backprops_wrt_input.shape == () and float(r.backprops_wrt_input) == 3.0
    want = vg(np.float32(3.0), np.float32(0.25), -1.0, 1.0)
    for a, b in zip(r, want):
        assert_bits_equal(a, b)
    with pytest.raises(ValueError, match="same shape"):
        cfq.fake_quant_region_gradient(np.ones(1, np.float32), region)
    with pytest.raises(ValueError, match="same shape"):
        cfq.fake_quant_region_gradient(np.float32(1.0), np.zeros(1, np.uint8))


def test_wide_pool_does_not_slow_later_calls_results():
    # A wide call grows the pool; later narrow calls still agree bit for bit
    # (speed is the benchmark's business, not a test's).
    g = np.random.default_rng(5).standard_normal(1 << 18).astype(np.float32)
    x = np.random.default_rng(6).standard_normal(1 << 18).astype(np.float32)
    want = vg(g, x, -1.0, 1.0, threads=1)
    for t in (64, 2, 1, 3, 64, 2):
        for a, b in zip(vg(g, x, -1.0, 1.0, threads=t), want):
            assert_bits_equal(a, b)
