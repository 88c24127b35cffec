"""cfq.nudge: TF's Nudge() (nudged min, nudged max, scale), against the NumPy
model."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cfq
import model
from support import assert_bits_equal, bits, finite32


def test_nudge():
    lo, hi, scale = cfq.nudge(-6.0, 6.0)
    want = model.nudge(-6.0, 6.0)
    assert (bits(lo), bits(hi), bits(scale)) == (bits(want[0]), bits(want[1]), bits(want[2]))
    assert all(type(v) is np.float32 for v in (lo, hi, scale))
    with pytest.raises(ValueError):
        cfq.nudge(np.nan, 1.0)


@given(finite32, finite32, st.integers(2, 16), st.booleans())
def test_nudge_matches_model(mn, mx, bits, narrow):
    got = cfq.nudge(mn, mx, bits, narrow)
    want = model.nudge(mn, mx, bits, narrow)[:3]
    for a, b in zip(got, want):
        assert_bits_equal(a, b)
