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


def test_one_add_for_the_zero_point_where_it_is_exact(isa):
    """The SIMD forward adds 0.5 - quant_zero once where that gives TF's
    bits (cfq_offset_exact), and keeps TF's two adds at quant_zero 1: on
    [-0.1, 25.4] (zero point 1), x = -0.05 gives t = 0.5 - 2^-25, where TF's
    floor(RN(t - 1) + 0.5) is 0 but one add would give -1.  The floats
    around the half steps below the zero point, for zero points 1, 2, 3 and
    128, against the model, on both axes, in vectors of every path."""
    x = np.full(64, -0.05000000447034836, np.float32)
    assert model._op(np.multiply, x + np.float32(0.1), np.float32(10)).view(np.uint32)[0] == 0x3EFFFFFF
    got = cfq.fake_quant_with_min_max_args(x, -0.1, 25.4, isa=isa)
    assert_bits_equal(got, model.args_forward(x, -0.1, 25.4))
    assert not got.any()
    got = cfq.fake_quant_with_min_max_vars_per_channel(x.reshape(4, 16), np.full(16, -0.1, np.float32),
                                                       np.full(16, 25.4, np.float32), isa=isa)
    assert not got.any()
    got = cfq.fake_quant_with_min_max_vars_per_channel(np.tile(x, (16, 1)), np.full(16, -0.1, np.float32),
                                                       np.full(16, 25.4, np.float32), axis=0, isa=isa)
    assert not got.any()
    for zero_point in (1, 2, 3, 128):
        s = np.float32(0.1)
        lo, hi = -zero_point * s, (255 - zero_point) * s
        nmin, _, scale, _ = model.nudge(lo, hi)
        centres = nmin + (np.arange(zero_point + 2, dtype=np.float32) + np.float32(0.5)) * scale  # t = k + 0.5
        steps = np.arange(-256, 256, dtype=np.int32)
        x = (centres.astype(np.float32).view(np.int32)[:, None] + steps).view(np.float32).ravel()
        assert_bits_equal(cfq.fake_quant_with_min_max_args(x, lo, hi, isa=isa), model.args_forward(x, lo, hi))
        assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, lo, hi, isa=isa), model.vars_forward(x, lo, hi))
        x2 = x[: x.size // 16 * 16].reshape(-1, 16)
        got = cfq.fake_quant_with_min_max_vars_per_channel(x2, np.full(16, lo, np.float32),
                                                           np.full(16, hi, np.float32), isa=isa)
        assert_bits_equal(got, model.args_forward(x2, lo, hi))
        x0 = np.ascontiguousarray(x2.T)  # channels first: a run each
        got = cfq.fake_quant_with_min_max_vars_per_channel(x0, np.full(16, lo, np.float32),
                                                           np.full(16, hi, np.float32), axis=0, isa=isa)
        assert_bits_equal(got, model.args_forward(x0, lo, hi))
