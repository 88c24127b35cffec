"""fake_quant_with_min_max_vars (the forward op): against the NumPy model on
every ISA path, odd valid calls, out= and in place."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cfq
import model
from support import assert_bits_equal, bit_widths, floats32, ranges, rnd, shared_among_paths


# The examples are shared among the paths (support.shared_among_paths).
@shared_among_paths()
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=9), elements=floats32),
       ranges, bit_widths, st.booleans())
def test_vars_forward_matches_model(isa, x, r, nb, narrow):
    got = cfq.fake_quant_with_min_max_vars(x, r[0], r[1], nb, narrow, isa=isa)
    assert_bits_equal(got, model.vars_forward(x, r[0], r[1], nb, narrow))


def test_odd_valid_calls():
    assert cfq.fake_quant_with_min_max_vars(np.float32(0.3), -1.0, 1.0).shape == ()
    x = rnd((5, 3), 6)
    assert not cfq.fake_quant_with_min_max_vars(x, 0.0, 0.0).any()


def test_out_and_in_place():
    x = rnd(1000, 8)
    want = cfq.fake_quant_with_min_max_vars(x, -2.0, 2.0)
    y = x.copy()
    assert cfq.fake_quant_with_min_max_vars(y, -2.0, 2.0, out=y) is y
    assert_bits_equal(y, want)
    buf = np.concatenate([x, x[:1]])
    out = buf[1:]
    cfq.fake_quant_with_min_max_vars(buf[:-1], -2.0, 2.0, out=out)
    assert_bits_equal(out, want)
