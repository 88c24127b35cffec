"""The region-code path: fake_quant_with_min_max_vars_and_region (outputs
plus one uint8 code per element) and fake_quant_region_gradient, which must
give the vars gradient's bits from the codes."""
import numpy as np
import pytest

import cfq
from support import assert_bits_equal, wide_data

vg = cfq.fake_quant_with_min_max_vars_gradient


def special_data(n, seed):
    """wide_data with NaN inputs, infinite gradients and denormals of both."""
    g, x = wide_data(n, seed)
    x[::11] = np.nan
    g[::13] = np.inf
    g[1::17] = np.float32(1e-40)
    x[2::19] = np.float32(-1e-40)
    return g, x


@pytest.mark.parametrize("mn,mx", [(-1.0, 1.0), (0.0, 0.0), (1.0, -1.0), (0.5, 0.5), (-3e38, 3e38), (-0.3, 2.7)])
def test_region_gradient_equals_vars_gradient(mn, mx, isa):
    g, x = special_data(70001, 5)
    for bits_, narrow in ((8, False), (3, True), (16, False)):
        out, region = cfq.fake_quant_with_min_max_vars_and_region(x, mn, mx, bits_, narrow, isa=isa)
        assert region.dtype == np.uint8 and region.shape == x.shape
        assert_bits_equal(out, cfq.fake_quant_with_min_max_vars(x, mn, mx, bits_, narrow))
        want = vg(g, x, mn, mx, bits_, narrow)
        got = cfq.fake_quant_region_gradient(g, region, isa=isa)
        for a, b in zip(got, want):
            assert_bits_equal(a, b, f"region ({mn}, {mx}) {isa}")


@pytest.mark.parametrize("mn,mx", [(-1.0, 1.0), (-6.0, 6.0), (0.5, 0.6), (-3e38, 3e38), (-0.3, 2.7)])
def test_args_region_gradient_equals_args_gradient(mn, mx, isa):
    g, x = special_data(70001, 6)
    for bits_, narrow in ((8, False), (3, True), (16, False)):
        out, region = cfq.fake_quant_with_min_max_args_and_region(x, mn, mx, bits_, narrow, isa=isa)
        assert region.dtype == np.uint8 and region.shape == x.shape
        assert_bits_equal(out, cfq.fake_quant_with_min_max_args(x, mn, mx, bits_, narrow))
        got = cfq.fake_quant_region_gradient(g, region, isa=isa)[0]
        assert_bits_equal(got, cfq.fake_quant_with_min_max_args_gradient(g, x, mn, mx, bits_, narrow),
                          f"args region ({mn}, {mx}) {isa}")


def test_args_region_errors_are_the_args_ops():
    with pytest.raises(ValueError, match="was: 1.0 >= 1.0"):
        cfq.fake_quant_with_min_max_args_and_region(np.zeros(3, np.float32), 1.0, 1.0)
    out, region = cfq.fake_quant_with_min_max_args_and_region([-7.0, 0.0, 7.0])
    assert list(region) == [1, 0, 2] and out.dtype == np.float32


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
