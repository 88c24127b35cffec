"""Property tests: random shapes, values and ranges against the NumPy model
of TF's formulas (tests/model.py), on every available ISA path."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cfq
import model
from support import ISAS, assert_bits_equal

SPECIAL = [0.0, -0.0, 1e-40, -1e-40, 1.4e-45, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38]

floats32 = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from(SPECIAL),
    st.floats(-8, 8, width=32),
)
finite32 = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([0.0, -0.0, 1e-40, -1e-40, 3e38, -3e38]),
                     st.floats(width=32, allow_nan=False, allow_infinity=False))


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(ISAS))
def test_vars_grad_matches_model(case, isa):
    g, x, mn, mx, bits, narrow = case
    r = cfq.fake_quant_with_min_max_vars_gradient(g, x, mn, mx, bits, narrow, isa=isa)
    dx, dmin, dmax = model.vars_grad(g, x, mn, mx, bits, narrow)
    assert_bits_equal(r.backprops_wrt_input, dx, "dx")
    for got, want in ((r.backprop_wrt_min, dmin), (r.backprop_wrt_max, dmax)):
        if np.isnan(want):
            assert np.isnan(got)
        else:
            # Compensated sums are exact for these sizes short of a double
            # rounding at a float32 tie: allow one float32 ulp.
            assert got == want or abs(float(got) - float(want)) <= float(np.spacing(np.abs(want))), (got, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 2**32 - 1), st.floats(0.01, 20))
def test_every_isa_identical_bits(n, seed, spread):
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(np.float32)
    x = (rng.standard_normal(n) * spread).astype(np.float32)
    ref = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0, isa="scalar")
    for isa in ISAS:
        got = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0, isa=isa)
        for a, b in zip(got, ref):
            assert_bits_equal(a, b, isa)


@settings(max_examples=100, deadline=None)
@given(finite32, finite32, st.integers(2, 16), st.booleans())
def test_nudge_matches_model(mn, mx, bits, narrow):
    got = cfq.nudge(mn, mx, bits, narrow)
    want = model.nudge(mn, mx, bits, narrow)[:3]
    for a, b in zip(got, want):
        assert_bits_equal(a, b)
