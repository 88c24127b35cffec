"""Golden data from TensorFlow 2.21 (tools/make_golden.py made the .npz files
in tests/golden/): cfq must give TF's bits, except where cfq deliberately
does better (documented in the README): more accurate sums, and ValueError
for a NaN or infinite min/max."""
import numpy as np
import pytest

import cfq
import model
from conftest import ISAS, assert_bits_equal
from golden_io import load_cases as load_golden, load_meta


def load_cases(name):
    assert str(load_meta(name)["meta_tf_version"]).startswith("2.21")
    return load_golden(name)


VARS_GRAD = load_cases("vars_grad")


def finite_range(case):
    return np.isfinite(case["min"]) and np.isfinite(case["max"])


def assert_sum_at_least_as_accurate(got, tf_value, exact, what):
    got, tf_value, exact = np.float32(got), np.float32(tf_value), np.float32(exact)
    if np.isnan(tf_value) or np.isnan(exact):
        assert np.isnan(got), f"{what}: got {got}, TF {tf_value}, exact {exact}"
        return
    if np.isinf(exact):
        assert got == exact, f"{what}: got {got}, exact {exact}"
        return
    err_cfq = abs(float(got) - float(exact))
    err_tf = abs(float(tf_value) - float(exact)) if np.isfinite(tf_value) else np.inf
    assert err_cfq <= err_tf, f"{what}: cfq {got} (err {err_cfq}), TF {tf_value} (err {err_tf}), exact {exact}"


def test_corpus_is_large_and_varied():
    assert len(VARS_GRAD) >= 600
    assert {int(c["num_bits"]) for c in VARS_GRAD} >= set(range(2, 17))
    assert {c["inputs"].ndim for c in VARS_GRAD} >= {0, 1, 2, 3, 4}


@pytest.mark.parametrize("isa", ISAS)
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
