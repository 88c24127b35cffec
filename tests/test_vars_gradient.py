"""fake_quant_with_min_max_vars_gradient: the Python API (shapes, dtypes,
strides, out=, errors), property tests against the NumPy model of TF's
formulas (tests/model.py), and every ISA path against the scalar one."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cfq
import model
from support import assert_bits_equal, assert_sum_as_documented, bits, finite32, normal_data, shared_among_paths

vg = cfq.fake_quant_with_min_max_vars_gradient


def check_against_model(g, x, mn, mx, num_bits=8, narrow=False, **kw):
    r = vg(g, x, mn, mx, num_bits, narrow, **kw)
    dx, dmin, dmax = model.vars_grad(g, x, mn, mx, num_bits, narrow)
    assert_bits_equal(r.backprops_wrt_input, dx, "backprops_wrt_input")
    assert_bits_equal(r.backprop_wrt_min, dmin, "backprop_wrt_min")
    assert_bits_equal(r.backprop_wrt_max, dmax, "backprop_wrt_max")
    return r


# ---- results and types -----------------------------------------------------

def test_namedtuple_and_types():
    g, x = normal_data(100)
    r = vg(g, x, -2.0, 2.0)
    assert type(r).__name__ == "FakeQuantWithMinMaxVarsGradient"
    assert r._fields == ("backprops_wrt_input", "backprop_wrt_min", "backprop_wrt_max")
    dx, dmin, dmax = r
    assert dx.dtype == np.float32 and dx.shape == (100,)
    for s in (dmin, dmax):
        assert isinstance(s, np.ndarray) and s.dtype == np.float32 and s.shape == ()


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (2, 3, 4), (2, 1, 3, 5), (0,), (2, 0, 3)])
def test_shapes(shape):
    rng = np.random.default_rng(1)
    g = rng.standard_normal(shape).astype(np.float32)
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    r = check_against_model(g, x, -1.5, 1.0)
    assert r.backprops_wrt_input.shape == shape


def test_matches_model_all_bit_widths(isa):
    g, x = normal_data(1000, seed=2)
    for num_bits in range(2, 17):
        for narrow in (False, True):
            check_against_model(g, x, -2.3, 1.7, num_bits, narrow, isa=isa)


def test_name_is_ignored():
    g, x = normal_data(10)
    a = vg(g, x, -1.0, 1.0, name="whatever")
    b = vg(g, x, -1.0, 1.0)
    assert_bits_equal(a[0], b[0])


# ---- inputs: dtypes, conversions, layouts ----------------------------------

def test_float32_used_without_copy_in_place():
    g, x = normal_data(64)
    r = vg(g, x, -1.0, 1.0, out=g)
    assert r.backprops_wrt_input is g


# float16 and bfloat16 are element dtypes of their own (tests/test_dtypes.py);
# every other real dtype converts to float32.
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.uint8, np.int8])
def test_other_real_dtypes_convert(dtype):
    rng = np.random.default_rng(3)
    g = (rng.standard_normal(50) * 4).astype(dtype)
    x = (rng.standard_normal(50) * 4).astype(dtype)
    r = vg(g, x, -3.0, 3.0)
    want = vg(g.astype(np.float32), x.astype(np.float32), -3.0, 3.0)
    assert_bits_equal(r[0], want[0])
    assert r[0].dtype == np.float32


def test_lists_and_scalars():
    r = vg([1.0, -2.0, 3.0], [0.0, 10.0, -10.0], -1.0, 1.0)
    assert_bits_equal(r[0], np.array([1.0, -0.0, 0.0], np.float32))
    assert float(r[1]) == 3.0 and float(r[2]) == -2.0
    r0 = vg(2.5, 0.25, -1.0, 1.0)
    assert r0[0].shape == () and float(r0[0]) == 2.5


def test_byteswapped_and_misaligned():
    g, x = normal_data(33, seed=4)
    want = vg(g, x, -1.0, 1.0)
    r = vg(g.astype(">f4"), x.astype(">f4"), -1.0, 1.0)
    assert_bits_equal(r[0], want[0])
    buf = np.zeros(33 * 4 + 1, np.uint8)
    mis = np.frombuffer(buf.data, dtype=np.float32, count=33, offset=1)
    assert not mis.flags.aligned
    mis_w = np.ndarray((33,), np.float32, buffer=buf, offset=1)
    mis_w[...] = x
    r = vg(g, mis_w, -1.0, 1.0)
    assert_bits_equal(r[0], want[0])


@pytest.mark.parametrize("view", ["reversed", "strided", "transposed", "offset"])
def test_non_contiguous_views(view):
    rng = np.random.default_rng(5)
    G = rng.standard_normal((20, 30)).astype(np.float32)
    X = (rng.standard_normal((20, 30)) * 2).astype(np.float32)
    pick = {
        "reversed": lambda a: a[::-1, ::-1],
        "strided": lambda a: a[::2, ::3],
        "transposed": lambda a: a.T,
        "offset": lambda a: a[3:, 5:],
    }[view]
    g, x = pick(G), pick(X)
    r = check_against_model(g, x, -1.0, 2.0)
    assert r[0].shape == g.shape


def test_conversion_ignores_callers_errstate():
    # float64 values beyond float32 become +-inf as in TF, even when the
    # caller asked NumPy to raise on overflow (cfq sets its own state).
    x = np.array([1e300, -1e300, 0.5])
    with np.errstate(all="raise"):
        r = vg(np.ones(3), x, -1.0, 1.0)
        f = cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0)
    assert_bits_equal(r[0], np.array([0.0, 0.0, 1.0], np.float32))
    assert f[0] > 0.99 and f[1] < -0.99


# ---- every path against the scalar one ---------------------------------------

def test_same_sums_any_isa(isa):
    g, x = normal_data(100003, seed=6, spread=10.0)
    g[::97] = np.float32(1e30)
    g[1::89] = np.float32(-1e-30)
    ref = vg(g, x, -4.0, 4.0, isa="scalar")
    got = vg(g, x, -4.0, 4.0, isa=isa)
    for a, b in zip(got, ref):
        assert_bits_equal(a, b, isa)


@given(st.integers(0, 5000), st.integers(0, 2**32 - 1), st.floats(0.01, 20))
def test_every_isa_identical_bits(isa, n, seed, spread):
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(np.float32)
    x = (rng.standard_normal(n) * spread).astype(np.float32)
    ref = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0, isa="scalar")
    got = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0, isa=isa)
    for a, b in zip(got, ref):
        assert_bits_equal(a, b, isa)


# ---- out= --------------------------------------------------------------------

def test_out_receives_result():
    g, x = normal_data(40)
    out = np.empty(40, np.float32)
    r = vg(g, x, -1.0, 1.0, out=out)
    assert r[0] is out
    assert_bits_equal(out, vg(g, x, -1.0, 1.0)[0])


@pytest.mark.parametrize("target", ["gradients", "inputs"])
def test_out_in_place(target):
    g, x = normal_data(1000, seed=7)
    want = vg(g, x, -1.0, 1.0)
    g2, x2 = g.copy(), x.copy()
    out = g2 if target == "gradients" else x2
    r = vg(g2, x2, -1.0, 1.0, out=out)
    assert r[0] is out
    for a, b in zip(r, want):
        assert_bits_equal(a, b)


@pytest.mark.parametrize("shift", [1, -1, 7])
def test_out_overlapping_shifted(shift):
    g, x = normal_data(200, seed=8)
    want = vg(g, x, -1.0, 1.0)[0]
    buf = np.zeros(400, np.float32)
    buf[100:300] = g
    gv = buf[100:300]
    out = buf[100 + shift:300 + shift]
    r = vg(gv, x, -1.0, 1.0, out=out)
    assert r[0] is out
    assert_bits_equal(out, want)


def test_out_non_contiguous():
    g, x = normal_data(50, seed=9)
    big = np.zeros(100, np.float32)
    out = big[::2]
    vg(g, x, -1.0, 1.0, out=out)
    assert_bits_equal(out, vg(g, x, -1.0, 1.0)[0])
    assert not big[1::2].any()


def test_out_errors():
    g, x = normal_data(10)
    with pytest.raises(TypeError, match="float32"):
        vg(g, x, -1.0, 1.0, out=np.empty(10, np.float64))
    with pytest.raises(ValueError, match="shape"):
        vg(g, x, -1.0, 1.0, out=np.empty(11, np.float32))
    ro = np.empty(10, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        vg(g, x, -1.0, 1.0, out=ro)
    with pytest.raises(TypeError, match="out"):
        vg(g, x, -1.0, 1.0, out=[0.0] * 10)


# ---- odd but valid -------------------------------------------------------------

def test_min_greater_than_max_follows_tf_arithmetic():
    g, x = normal_data(300, seed=10)
    check_against_model(g, x, 2.0, -2.0)


@pytest.mark.parametrize("v", [0.5, -0.5, 3.0])
def test_min_equals_max(v):
    g, x = normal_data(300, seed=11)
    check_against_model(g, x, v, v)


@pytest.mark.parametrize("mn,mx", [(0.0, 0.0), (-0.0, 0.0), (0.0, -0.0)])
def test_zero_range_passes_gradients_through(mn, mx):
    g, x = normal_data(100, seed=12)
    g[0] = np.float32(1e-40)  # copied untouched, as TF's assignment does
    r = vg(g, x, mn, mx)
    assert_bits_equal(r[0], g)
    assert float(r[1]) == 0.0 and float(r[2]) == 0.0


def test_empty():
    r = vg(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), -1.0, 1.0)
    assert r[0].shape == (0, 3)
    assert bits(r[1]) == 0 and bits(r[2]) == 0


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40, 0.5, 5.0, -5.0], np.float32)
    for gv in [np.nan, np.inf, -np.inf, -0.0, 1e-40, -1.0]:
        g = np.full(x.shape, gv, np.float32)
        check_against_model(g, x, -1.0, 1.0)


def test_nan_gradient_poisons_sums():
    r = vg([np.nan, 1.0], [0.0, 5.0], -1.0, 1.0)
    assert np.isnan(r[1]) and np.isnan(r[2])
    r = vg([np.inf, 1.0], [-5.0, 0.0], -1.0, 1.0)
    assert float(r[1]) == np.inf and np.isnan(r[2])


def test_sums_survive_cancelling_giants(isa):
    """Compensated sums: TF's float32 sum can get these right by luck of its
    order; cfq gets them right whenever no small term shares a giant's lane
    and 256-element sum block (each lane adds its 32 terms of a block in
    plain double, then the block partials with TwoSum)."""
    n = 600
    idx = np.arange(n)
    for apart in (1, 5, 64, 72, 256, 264):
        for at in range(0, 100, 3):
            g = np.ones(n, np.float32)
            for p in (at, at + apart):
                g[(idx % 8 == p % 8) & (idx // 256 == p // 256)] = 0
            ones = float(g.sum())
            g[at], g[at + apart] = np.float32(3.4028235e38), np.float32(-3.4028235e38)
            r = vg(g, np.full(n, 5.0, np.float32), -1.0, 1.0, isa=isa)
            assert float(r.backprop_wrt_max) == ones, (at, apart)
    g = np.array([3e38, -3e38, 1, 1], np.float32)
    assert float(vg(g, np.full(4, 5.0, np.float32), -1.0, 1.0, isa=isa).backprop_wrt_max) == 2.0


# ---- property tests: random shapes, values and ranges against the model ---------

SPECIAL = [0.0, -0.0, 1e-40, -1e-40, 1.4e-45, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38]


floats32 = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from(SPECIAL),
    st.floats(-8, 8, width=32),
)


@st.composite
def cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9))
    g = draw(hnp.arrays(np.float32, shape, elements=floats32))
    x = draw(hnp.arrays(np.float32, shape, elements=floats32))
    mn = draw(finite32)
    mx = draw(st.one_of(finite32, st.just(mn)))
    bits = draw(st.integers(2, 16))
    narrow = draw(st.booleans())
    return g, x, np.float32(mn), np.float32(mx), bits, narrow


# Twice the others' examples (the main op), shared among the paths
# (support.shared_among_paths).
@shared_among_paths(2)
@given(cases())
def test_vars_grad_matches_model(isa, case):
    g, x, mn, mx, bits, narrow = case
    r = cfq.fake_quant_with_min_max_vars_gradient(g, x, mn, mx, bits, narrow, isa=isa)
    dx, dmin, dmax = model.vars_grad(g, x, mn, mx, bits, narrow)
    _, below, above = model.vars_grad_terms(g, x, mn, mx, bits, narrow)
    assert_bits_equal(r.backprops_wrt_input, dx, "dx")
    for got, want, terms in ((r.backprop_wrt_min, dmin, below), (r.backprop_wrt_max, dmax, above)):
        assert_sum_as_documented(got, want, terms)


# ---- bad input ------------------------------------------------------------------

BAD_CALLS = [
    (ValueError, "same shape", lambda: vg(np.zeros(3), np.zeros(4), -1.0, 1.0)),
    (ValueError, "same shape", lambda: vg(np.zeros((2, 3)), np.zeros((3, 2)), -1.0, 1.0)),
    (ValueError, "scalar", lambda: vg(np.zeros(3), np.zeros(3), [1.0, 1.0], 1.0)),  # TF issue 46910
    (ValueError, "scalar", lambda: vg(np.zeros(3), np.zeros(3), -1.0, np.zeros((1,)))),
    (ValueError, "scalar", lambda: vg(np.zeros(3), np.zeros(3), np.zeros((0,)), 1.0)),
    (ValueError, "finite", lambda: vg(np.zeros(3), np.zeros(3), np.nan, 1.0)),
    (ValueError, "finite", lambda: vg(np.zeros(3), np.zeros(3), -1.0, np.inf)),
    (ValueError, "finite", lambda: vg(np.zeros(3), np.zeros(3), -np.inf, 1.0)),
    (ValueError, "finite", lambda: vg(np.zeros(3), np.zeros(3), -1e39, 1.0)),
    (ValueError, "finite", lambda: vg(np.zeros(3), np.zeros(3), -(10 ** 400), 1.0)),
    (ValueError, "num_bits", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, 1)),
    (ValueError, "num_bits", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, 17)),
    (ValueError, "num_bits", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, -3)),
    (TypeError, "num_bits", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, 8.0)),
    (TypeError, "num_bits", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, True)),
    (TypeError, "num_bits", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, "8")),
    (TypeError, "narrow_range", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, 8, 1)),
    (TypeError, "narrow_range", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, 8, "yes")),
    (TypeError, "gradients", lambda: vg(np.zeros(3, complex), np.zeros(3), -1.0, 1.0)),
    (TypeError, "inputs", lambda: vg(np.zeros(3), np.array(["a", "b", "c"]), -1.0, 1.0)),
    (TypeError, "inputs", lambda: vg(np.zeros(3), "abc", -1.0, 1.0)),
    (TypeError, "gradients", lambda: vg(np.array([1, None, 2], dtype=object), np.zeros(3), -1.0, 1.0)),
    (TypeError, "gradients", lambda: vg(np.zeros(3, bool), np.zeros(3), -1.0, 1.0)),
    (TypeError, "gradients", lambda: vg([[1.0], [1.0, 2.0]], [[0.0], [0.0, 0.0]], -1.0, 1.0)),
    (TypeError, "gradients", lambda: vg(None, np.zeros(3), -1.0, 1.0)),
    (TypeError, "min", lambda: vg(np.zeros(3), np.zeros(3), "a", 1.0)),
    (TypeError, "min", lambda: vg(np.zeros(3), np.zeros(3), None, 1.0)),
    (TypeError, "max", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1j)),
    (TypeError, "max", lambda: vg(np.zeros(3), np.zeros(3), -1.0, True)),
    (ValueError, "isa", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, isa="sse9")),
    (TypeError, "isa", lambda: vg(np.zeros(3), np.zeros(3), -1.0, 1.0, isa=2)),
]


@pytest.mark.parametrize("exc,match,call", BAD_CALLS, ids=[f"bad{i}" for i in range(len(BAD_CALLS))])
def test_bad_input_raises(exc, match, call):
    with pytest.raises(exc, match=match):
        call()
