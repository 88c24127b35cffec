"""Golden data from TensorFlow 2.21 (tools/make_golden.py made the .npz files
in tests/golden/): cfq must give TF's bits, except where cfq deliberately
does better (documented in the README): more accurate sums, and ValueError
for a NaN or infinite min/max."""
import numpy as np
import pytest

import cfq
import model
from support import assert_bits_equal, assert_sum_at_least_as_accurate
from golden_io import load_cases as load_golden, load_meta


def load_cases(name):
    assert str(load_meta(name)["meta_tf_version"]).startswith("2.21")
    return load_golden(name)


VARS_GRAD = load_cases("vars_grad")


def finite_range(case):
    return np.isfinite(case["min"]) and np.isfinite(case["max"])


def test_corpus_is_large_and_varied():
    assert len(VARS_GRAD) >= 600
    assert {int(c["num_bits"]) for c in VARS_GRAD} >= set(range(2, 17))
    assert {c["inputs"].ndim for c in VARS_GRAD} >= {0, 1, 2, 3, 4}


def test_vars_grad_matches_tf(isa):
    checked = 0
    for case in VARS_GRAD:
        if "error" in case:
            continue
        args = (case["gradients"], case["inputs"], case["min"], case["max"],
                int(case["num_bits"]), bool(case["narrow_range"]))
        if not finite_range(case):
            with pytest.raises(ValueError, match="finite"):
                cfq.fake_quant_with_min_max_vars_gradient(*args, isa=isa)
            continue
        r = cfq.fake_quant_with_min_max_vars_gradient(*args, isa=isa)
        what = f"case {case['id']} ({isa})"
        assert_bits_equal(r.backprops_wrt_input, case["dx"], what + " backprops_wrt_input")
        _, below, above = model.vars_grad_terms(*args)
        assert_sum_at_least_as_accurate(r.backprop_wrt_min, case["dmin"], model.exact_sum(below), what + " min")
        assert_sum_at_least_as_accurate(r.backprop_wrt_max, case["dmax"], model.exact_sum(above), what + " max")
        checked += 1
    assert checked >= 500


def test_tf_errors_are_errors_here():
    errors = [c for c in VARS_GRAD if "error" in c]
    for case in errors:
        with pytest.raises((ValueError, TypeError)):
            cfq.fake_quant_with_min_max_vars_gradient(
                case["gradients"], case["inputs"], case["min"], case["max"],
                int(case["num_bits"]), bool(case["narrow_range"]))


def test_model_matches_tf():
    """The NumPy model used by the property tests reproduces TF's bits."""
    for case in VARS_GRAD:
        if "error" in case or not finite_range(case):
            continue
        args = (case["gradients"], case["inputs"], case["min"], case["max"],
                int(case["num_bits"]), bool(case["narrow_range"]))
        dx, _, _ = model.vars_grad_terms(*args)
        assert_bits_equal(dx, case["dx"], f"model, case {case['id']}")


VARS = load_cases("vars")
ARGS = load_cases("args")
PER_CHANNEL = load_cases("per_channel")


def bounds_finite(case):
    return bool(np.all(np.isfinite(case["min"])) and np.all(np.isfinite(case["max"])))


def test_vars_forward_matches_tf(isa):
    checked = 0
    for case in VARS:
        args = (case["inputs"], case["min"], case["max"], int(case["num_bits"]), bool(case["narrow_range"]))
        if "error" in case or not bounds_finite(case):
            with pytest.raises((ValueError, TypeError)):
                cfq.fake_quant_with_min_max_vars(*args, isa=isa)
            continue
        got = cfq.fake_quant_with_min_max_vars(*args, isa=isa)
        assert_bits_equal(got, case["out"], f"vars case {case['id']} ({isa})")
        checked += 1
    assert checked >= 500


def test_args_matches_tf(isa):
    checked = 0
    for case in ARGS:
        kw = dict(min=float(case["min"]), max=float(case["max"]), num_bits=int(case["num_bits"]),
                  narrow_range=bool(case["narrow_range"]), isa=isa)
        if "error" in case or not bounds_finite(case):
            with pytest.raises((ValueError, TypeError)):
                cfq.fake_quant_with_min_max_args(case["inputs"], **kw)
            with pytest.raises((ValueError, TypeError)):
                cfq.fake_quant_with_min_max_args_gradient(case["gradients"], case["inputs"], **kw)
            continue
        out = cfq.fake_quant_with_min_max_args(case["inputs"], **kw)
        assert_bits_equal(out, case["out"], f"args case {case['id']} ({isa})")
        dx = cfq.fake_quant_with_min_max_args_gradient(case["gradients"], case["inputs"], **kw)
        assert_bits_equal(dx, case["dx"], f"args gradient case {case['id']} ({isa})")
        checked += 1
    assert checked >= 100


def test_per_channel_matches_tf(isa):
    checked = 0
    for case in PER_CHANNEL:
        args = (case["min"], case["max"], int(case["num_bits"]), bool(case["narrow_range"]))
        if "error" in case or not bounds_finite(case):
            with pytest.raises((ValueError, TypeError)):
                cfq.fake_quant_with_min_max_vars_per_channel(case["inputs"], *args, isa=isa)
            continue
        out = cfq.fake_quant_with_min_max_vars_per_channel(case["inputs"], *args, isa=isa)
        assert_bits_equal(out, case["out"], f"per-channel case {case['id']} ({isa})")
        r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(case["gradients"], case["inputs"], *args, isa=isa)
        assert_bits_equal(r.backprops_wrt_input, case["dx"], f"per-channel dx case {case['id']} ({isa})")
        # Per-channel sums: within 1e-5 relative of TF (cfq's are the more accurate).
        for got, want in ((r.backprop_wrt_min, case["dmin"]), (r.backprop_wrt_max, case["dmax"])):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30, equal_nan=True)
        checked += 1
    assert checked >= 90


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_per_channel_any_axis_equals_moved_last_axis(axis):
    """cfq's any-axis per-channel op equals TF's last-axis op on moved axes."""
    for case in PER_CHANNEL:
        if "error" in case or not bounds_finite(case) or case["inputs"].ndim != 3:
            continue
        x = np.moveaxis(case["inputs"], -1, axis)
        g = np.moveaxis(case["gradients"], -1, axis)
        args = (case["min"], case["max"], int(case["num_bits"]), bool(case["narrow_range"]))
        out = cfq.fake_quant_with_min_max_vars_per_channel(x, *args, axis=axis)
        assert_bits_equal(np.moveaxis(out, axis, -1), case["out"], f"case {case['id']} axis {axis}")
        r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, *args, axis=axis)
        assert_bits_equal(np.moveaxis(r[0], axis, -1), case["dx"], f"case {case['id']} axis {axis}")
