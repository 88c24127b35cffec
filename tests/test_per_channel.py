"""The rest of TF's fake-quant family: forward vars/args/per-channel and the
args and per-channel gradients, against the NumPy model, on every ISA path,
plus TF's crash reports replayed as clean errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cfq
import model
from support import ISAS, assert_bits_equal

SPECIAL = [0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38]
floats32 = st.one_of(st.floats(width=32), st.sampled_from(SPECIAL), st.floats(-8, 8, width=32))
ranges = st.tuples(st.floats(-10, 10, width=32), st.floats(-10, 10, width=32))
bits = st.integers(2, 16)


def rnd(shape, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=9), elements=floats32),
       ranges, bits, st.booleans(), st.sampled_from(ISAS))
def test_vars_forward_matches_model(x, r, nb, narrow, isa):
    got = cfq.fake_quant_with_min_max_vars(x, r[0], r[1], nb, narrow, isa=isa)
    assert_bits_equal(got, model.vars_forward(x, r[0], r[1], nb, narrow))


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=9), elements=floats32),
       ranges, bits, st.booleans(), st.sampled_from(ISAS))
def test_args_forward_and_gradient_match_model(x, r, nb, narrow, isa):
    lo, hi = float(min(r)), float(max(r))
    if not model.ftz(np.float32(lo)) < model.ftz(np.float32(hi)):  # TF compares with denormals as 0
        with pytest.raises(ValueError, match="smaller than max"):
            cfq.fake_quant_with_min_max_args(x, lo, hi, nb, narrow, isa=isa)
        return
    got = cfq.fake_quant_with_min_max_args(x, lo, hi, nb, narrow, isa=isa)
    assert_bits_equal(got, model.args_forward(x, lo, hi, nb, narrow))
    g = x[::-1].copy() if x.ndim else x
    got = cfq.fake_quant_with_min_max_args_gradient(g, x, lo, hi, nb, narrow, isa=isa)
    assert_bits_equal(got, model.args_grad(g, x, lo, hi, nb, narrow))


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


@settings(max_examples=150, deadline=None)
@given(per_channel_case(), bits, st.booleans(), st.sampled_from(ISAS))
def test_per_channel_matches_model(case, nb, narrow, isa):
    x, g, mins, maxs, axis = case
    got = cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, nb, narrow, axis=axis, isa=isa)
    assert_bits_equal(got, model.per_channel(x, mins, maxs, nb, narrow, axis))
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, nb, narrow, axis=axis, isa=isa)
    dx, dmin, dmax = model.per_channel_grad(g, x, mins, maxs, nb, narrow, axis)
    assert_bits_equal(r.backprops_wrt_input, dx, "dx")
    for got_s, want in ((r.backprop_wrt_min, dmin), (r.backprop_wrt_max, dmax)):
        assert got_s.shape == want.shape
        np.testing.assert_array_equal(np.isnan(got_s), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got_s[ok], want[ok], rtol=2e-7, atol=0)


@pytest.mark.parametrize("shape,axis", [((64, 300), -1), ((8, 33, 5, 5), 1), ((3, 1000), 0), ((4097, 3), -1),
                                        ((2, 600, 7), -1), ((1, 5000), 0)])
def test_every_isa_same_bits_per_channel(shape, axis):
    x, g = rnd(shape, 1), rnd(shape, 2, 1.0)
    d = shape[axis]
    mins = -np.abs(rnd(d, 3, 2.0)) - 0.1
    maxs = np.abs(rnd(d, 4, 2.0)) + 0.1
    mins[::7] = maxs[::7] = 0
    ref_f = cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, axis=axis, isa="scalar")
    ref_g = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, isa="scalar")
    for isa in ISAS:
        assert_bits_equal(cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, axis=axis, isa=isa), ref_f)
        got = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, isa=isa)
        for a, b in zip(got, ref_g):
            assert_bits_equal(a, b, isa)


def test_per_channel_axis_without_transposing_view():
    x = rnd((6, 4, 5), 5)
    mins, maxs = np.full(4, -1.0, np.float32), np.linspace(0.5, 3, 4).astype(np.float32)
    got = cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, axis=1)
    assert_bits_equal(got, model.per_channel(x, mins, maxs, axis=1))
    xt = x.transpose(2, 0, 1)  # a view, channels now on the last axis
    got = cfq.fake_quant_with_min_max_vars_per_channel(xt, mins, maxs)
    assert_bits_equal(got, model.per_channel(xt, mins, maxs))


def test_odd_valid_calls():
    assert cfq.fake_quant_with_min_max_vars(np.float32(0.3), -1.0, 1.0).shape == ()
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
    assert not cfq.fake_quant_with_min_max_vars(x, 0.0, 0.0).any()


def test_out_and_in_place_for_forward_ops():
    x = rnd(1000, 8)
    want = cfq.fake_quant_with_min_max_vars(x, -2.0, 2.0)
    y = x.copy()
    assert cfq.fake_quant_with_min_max_vars(y, -2.0, 2.0, out=y) is y
    assert_bits_equal(y, want)
    y = x.copy()
    assert cfq.fake_quant_with_min_max_args(y, -2.0, 2.0, out=y) is y
    assert_bits_equal(y, cfq.fake_quant_with_min_max_args(x, -2.0, 2.0))
    buf = np.concatenate([x, x[:1]])
    out = buf[1:]
    cfq.fake_quant_with_min_max_vars(buf[:-1], -2.0, 2.0, out=out)
    assert_bits_equal(out, want)


vpc = cfq.fake_quant_with_min_max_vars_per_channel
vpcg = cfq.fake_quant_with_min_max_vars_per_channel_gradient
z3 = np.zeros((2, 3), np.float32)
CRASHES = [
    # TF issue 46910 and relatives: non-scalar min/max for the vars ops
    (ValueError, "scalar", lambda: cfq.fake_quant_with_min_max_vars(z3, [1.0, 1.0], 2.0)),
    (ValueError, "scalar", lambda: cfq.fake_quant_with_min_max_vars_gradient(z3, z3, -1.0, [[1.0]])),
    # scalar inputs for per-channel (TF aborts: Check failed d >= 0)
    (ValueError, "rank >= 1", lambda: vpc(np.float32(1.0), [-1.0], [1.0])),
    (ValueError, "rank >= 1", lambda: vpcg(np.float32(1.0), np.float32(1.0), [-1.0], [1.0])),
    # wrong channel counts
    (ValueError, "incorrect size", lambda: vpc(z3, [-1.0, -1.0], [1.0, 1.0, 1.0])),
    (ValueError, "incorrect size", lambda: vpcg(z3, z3, [-1.0] * 3, [1.0] * 4)),
    (ValueError, "incorrect size", lambda: vpc(z3, [-1.0] * 2, [1.0] * 2, axis=0) if False else vpc(z3, [-1.0] * 3, [1.0] * 3, axis=0)),
    # empty min/max
    (ValueError, "incorrect size", lambda: vpc(z3, [], [])),
    (ValueError, "incorrect size", lambda: vpcg(z3, z3, np.zeros(0), np.zeros(0))),
    (ValueError, "rank 1", lambda: vpc(z3, -1.0, 1.0)),
    (ValueError, "rank 1", lambda: vpc(z3, [[-1.0] * 3], [[1.0] * 3])),
    (ValueError, "channel 1", lambda: vpc(z3, [-1.0, np.nan, -1.0], [1.0] * 3)),
    (ValueError, "channel 2", lambda: vpcg(z3, z3, [-1.0] * 3, [1.0, 1.0, np.inf])),
    (ValueError, "out of range", lambda: vpc(z3, [-1.0] * 3, [1.0] * 3, axis=2)),
    (TypeError, "axis", lambda: vpc(z3, [-1.0] * 3, [1.0] * 3, axis=1.0)),
    (ValueError, "num_bits", lambda: vpc(z3, [-1.0] * 3, [1.0] * 3, num_bits=17)),
    (ValueError, "same shape", lambda: vpcg(z3, np.zeros((3, 2)), [-1.0] * 2, [1.0] * 2)),
    (ValueError, "smaller than max", lambda: cfq.fake_quant_with_min_max_args(z3, 1.0, 1.0)),
    (ValueError, "smaller than max", lambda: cfq.fake_quant_with_min_max_args(z3, -1e-40, 0.0)),
    (ValueError, "smaller than max", lambda: cfq.fake_quant_with_min_max_args_gradient(z3, z3, 2.0, -2.0)),
    (ValueError, "finite", lambda: cfq.fake_quant_with_min_max_args(z3, -np.inf, 1.0)),
    (ValueError, "finite", lambda: cfq.fake_quant_with_min_max_vars(z3, np.nan, 1.0)),
    (ValueError, "num_bits", lambda: cfq.fake_quant_with_min_max_args(z3, num_bits=1)),
    (TypeError, "inputs", lambda: cfq.fake_quant_with_min_max_vars(np.zeros(3, complex), -1.0, 1.0)),
    (TypeError, "min", lambda: vpc(z3, ["a"] * 3, [1.0] * 3)),
]


@pytest.mark.parametrize("exc,match,call", CRASHES, ids=[f"crash{i}" for i in range(len(CRASHES))])
def test_tf_crash_reports_are_clean_errors(exc, match, call):
    with pytest.raises(exc, match=match):
        call()


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
