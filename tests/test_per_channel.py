"""fake_quant_with_min_max_vars_per_channel and its gradient, on any axis:
against the NumPy model, every ISA path against the scalar one, odd valid
calls, out= sharing min/max memory."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cfq
import model
from support import (assert_bits_equal, assert_sum_as_documented, bit_widths, floats32, rnd, row_stretches_exact,
                     shared_among_paths)

vpc = cfq.fake_quant_with_min_max_vars_per_channel
vpcg = cfq.fake_quant_with_min_max_vars_per_channel_gradient


@st.composite
def per_channel_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    d = shape[axis]
    x = draw(hnp.arrays(np.float32, shape, elements=floats32))
    g = draw(hnp.arrays(np.float32, shape, elements=floats32))
    mins = draw(hnp.arrays(np.float32, (d,), elements=st.floats(-5, 5, width=32)))
    maxs = draw(hnp.arrays(np.float32, (d,), elements=st.floats(-5, 5, width=32)))
    zero = draw(st.lists(st.booleans(), min_size=d, max_size=d))
    mins[np.array(zero, bool)] = 0
    maxs[np.array(zero, bool)] = 0
    return x, g, mins, maxs, axis


# The examples are shared among the paths (support.shared_among_paths).
@shared_among_paths()
@given(per_channel_case(), bit_widths, st.booleans())
def test_per_channel_matches_model(isa, case, nb, narrow):
    x, g, mins, maxs, axis = case
    got = cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, nb, narrow, axis=axis, isa=isa)
    assert_bits_equal(got, model.per_channel(x, mins, maxs, nb, narrow, axis))
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, nb, narrow, axis=axis, isa=isa)
    dx, dmin, dmax = model.per_channel_grad(g, x, mins, maxs, nb, narrow, axis)
    assert_bits_equal(r.backprops_wrt_input, dx, "dx")
    for got_s, want in ((r.backprop_wrt_min, dmin), (r.backprop_wrt_max, dmax)):
        assert got_s.shape == want.shape
        np.testing.assert_array_equal(np.isnan(got_s), np.isnan(want))
    # Each channel's sums as documented (cfq's lane-block partials run over
    # a channel's contiguous runs; over the last axis, stretches of 32 rows).
    shape = np.shape(x)
    ax = axis % len(shape)
    outer, inner = int(np.prod(shape[:ax])), int(np.prod(shape[ax + 1:]))
    for c in range(shape[ax]):
        _, below, above = model.vars_grad_terms(np.take(g, c, axis=ax), np.take(x, c, axis=ax),
                                                mins[c], maxs[c], nb, narrow)
        for got_s, want, terms in ((r.backprop_wrt_min, dmin, below), (r.backprop_wrt_max, dmax, above)):
            if shape[ax] > 1 and inner == 1:
                assert_sum_as_documented(got_s[c], want[c], terms, exact=row_stretches_exact(terms))
                continue
            runs = [terms] if shape[ax] == 1 else list(np.reshape(terms, (outer, inner)))
            assert_sum_as_documented(got_s[c], want[c], terms, runs)


def assert_per_channel_as_scalar(g, x, mins, maxs, axis, isa):
    """The per-channel forward and gradient on `isa` have the scalar path's
    bits; returns the scalar gradient."""
    ref_f = cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, axis=axis, isa="scalar")
    ref_g = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, isa="scalar")
    assert_bits_equal(cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, axis=axis, isa=isa), ref_f)
    got = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, isa=isa)
    for a, b in zip(got, ref_g):
        assert_bits_equal(a, b, isa)
    return ref_g


@pytest.mark.parametrize("shape,axis", [((64, 300), -1), ((8, 33, 5, 5), 1), ((3, 1000), 0), ((4097, 3), -1),
                                        ((2, 600, 7), -1), ((1, 5000), 0), ((3, 300, 2), 1), ((257, 9), 0)])
def test_every_isa_same_bits_per_channel(shape, axis, isa):
    x, g = rnd(shape, 1), rnd(shape, 2, 1.0)
    d = shape[axis]
    mins = -np.abs(rnd(d, 3, 2.0)) - 0.1
    maxs = np.abs(rnd(d, 4, 2.0)) + 0.1
    mins[::7] = maxs[::7] = 0
    assert_per_channel_as_scalar(g, x, mins, maxs, axis, isa)


def test_per_channel_axis_without_transposing_view():
    x = rnd((6, 4, 5), 5)
    mins, maxs = np.full(4, -1.0, np.float32), np.linspace(0.5, 3, 4).astype(np.float32)
    got = cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, axis=1)
    assert_bits_equal(got, model.per_channel(x, mins, maxs, axis=1))
    xt = x.transpose(2, 0, 1)  # a view, channels now on the last axis
    got = cfq.fake_quant_with_min_max_vars_per_channel(xt, mins, maxs)
    assert_bits_equal(got, model.per_channel(xt, mins, maxs))


def test_last_axis_sums_in_stretches_of_32_rows(isa):
    # Over the last axis a channel's terms add in plain double over rows
    # [32k, 32k + 32), each stretch then with TwoSum (README, sums): a 1
    # in another stretch than 3e38 and -3e38 survives; in the same stretch
    # as 3e38, cancelled in a later one, it is lost (the documented exception).
    rows, m = 101, 4
    x = np.full((rows, m), -5.0, np.float32)  # every input below the range: every g is a term of dmin
    g = np.zeros((rows, m), np.float32)
    g[[0, 40, 64], 0] = [3e38, 1.0, -3e38]  # three stretches
    g[[0, 1, 64], 1] = [3e38, 1.0, -3e38]  # the 1 shares row 0's stretch
    g[[31, 32, 64], 2] = [1.0, 3e38, -3e38]  # rows 31 and 32: two stretches
    g[[32, 63, 64], 3] = [3e38, 1.0, -3e38]  # rows 32 and 63: one stretch
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, [-1.0] * m, [1.0] * m, isa=isa)
    assert r.backprop_wrt_min.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert not r.backprop_wrt_max.any()


def test_odd_valid_calls():
    assert cfq.fake_quant_with_min_max_vars_per_channel(np.zeros((0, 3)), [-1] * 3, [1] * 3).shape == (0, 3)
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(np.zeros((0, 3)), np.zeros((0, 3)), [-1] * 3, [1] * 3)
    assert r[0].shape == (0, 3) and r[1].shape == (3,) and not r[1].any()
    out = cfq.fake_quant_with_min_max_vars_per_channel(np.zeros((2, 0)), [], [])
    assert out.shape == (2, 0)
    x = rnd((5, 3), 6)
    assert not cfq.fake_quant_with_min_max_vars_per_channel(x, [0] * 3, [0] * 3).any()
    g = rnd((5, 3), 7)
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, [0] * 3, [0] * 3)
    assert_bits_equal(r[0], g)


@pytest.mark.parametrize("which", ["min", "max"])
def test_per_channel_out_sharing_min_or_max_memory(which):
    # The kernels read min/max while writing out: an out over their memory
    # must still give the answer computed from the original values.
    x = rnd((4, 6), 21) * 3
    lo = np.linspace(-2.0, -0.5, 6).astype(np.float32)
    hi = np.linspace(0.5, 2.0, 6).astype(np.float32)
    for axis, shape in ((0, (6,)), (1, (4, 6))):
        # a buffer whose first channels are min (or max) and that also serves as out
        buf = np.zeros(24, np.float32)
        xs = rnd(shape, 23) * 3 if axis == 0 else x
        lo_ref, hi_ref = lo.copy(), hi.copy()
        view = buf[: xs.size].reshape(shape)
        vec = buf[:6]
        vec[:] = lo if which == "min" else hi
        args = (vec, hi) if which == "min" else (lo, vec)
        want = vpc(xs, lo_ref, hi_ref, axis=axis)
        got = vpc(xs, *args, axis=axis, out=view)
        assert got is view
        assert_bits_equal(got, want)
        vec[:] = lo if which == "min" else hi
        gs = rnd(shape, 24)
        want2 = vpcg(gs, xs, lo_ref, hi_ref, axis=axis)
        got2 = vpcg(gs, xs, *args, axis=axis, out=view)
        for a, b in zip(got2, want2):
            assert_bits_equal(a, b)


@pytest.mark.parametrize("axis", [-1, 0])
def test_big_per_channel_streams_same_bits(isa, axis):
    """Outputs past the caches (>= 4M elements) are stored non-temporally,
    except where pass-through channels are rewritten; same bits as scalar."""
    shape = (65600, 64) if axis == -1 else (64, 65600)
    x, g = rnd(shape, 11), rnd(shape, 12, 1.0)
    mins = np.full(64, -2.0, np.float32)
    maxs = np.full(64, 2.5, np.float32)
    mins[5] = maxs[5] = 0  # a pass-through channel
    ref_g = assert_per_channel_as_scalar(g, x, mins, maxs, axis, isa)
    _, region = cfq.fake_quant_with_min_max_vars_per_channel_and_region(x, mins, maxs, axis=axis, isa=isa)
    got = cfq.fake_quant_per_channel_region_gradient(g, region, axis=axis, isa=isa)
    for a, b in zip(got, ref_g):
        assert_bits_equal(a, b, isa)
