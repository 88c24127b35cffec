"""fake_quant_with_min_max_args and its gradient: against the NumPy model on
every ISA path, how min/max are converted, out= and in place."""
import numpy as np
import pytest
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
def test_args_forward_and_gradient_match_model(isa, x, r, nb, narrow):
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


def test_integer_min_max_converted_as_tf_does():
    # TF passes the args ops' min/max through float() (a double) and
    # converts Python ints the same way: integers beyond 2**53 round twice.
    v = 2 ** 60 + 2 ** 36 + 1
    x = np.linspace(-2.0, 2.0, 17, dtype=np.float32) * np.float32(v)
    want = cfq.fake_quant_with_min_max_args(x, float(-v), float(v))
    for lo, hi in ((-v, v), (np.int64(-v), np.int64(v)), (np.asarray(-v), np.asarray(v))):
        assert_bits_equal(cfq.fake_quant_with_min_max_args(x, lo, hi), want)
    assert cfq.nudge(-v, v) == cfq.nudge(np.float32(-v), np.float32(v))


def test_out_and_in_place():
    x = rnd(1000, 8)
    y = x.copy()
    assert cfq.fake_quant_with_min_max_args(y, -2.0, 2.0, out=y) is y
    assert_bits_equal(y, cfq.fake_quant_with_min_max_args(x, -2.0, 2.0))
