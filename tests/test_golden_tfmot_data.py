"""tests/golden/tfmot.npz (tfmot 0.8.1's range tracking, recorded by
tools/make_golden_tfmot.py) against the NumPy model in tfmot_model.py and
cfq's fake quant, bit for bit, step after step.  Needs neither TensorFlow
nor torch."""

import numpy as np
import pytest

import cfq
from golden_io import load_cases, load_meta
from support import assert_bits_equal
from tfmot_model import LAST_VALUE, MOVING_AVERAGE, TRACKING_NAMES, track_step

CASES = load_cases("tfmot")
META = load_meta("tfmot")


def _sequences():
    seqs = {}
    for c in CASES:
        seqs.setdefault(int(c["sequence"]), []).append(c)
    for s in seqs.values():
        assert [int(c["step"]) for c in s] == list(range(len(s)))
    return seqs


SEQUENCES = _sequences()
GOOD = {k: v for k, v in SEQUENCES.items() if "error" not in v[0]}


def _name(seq):
    c = SEQUENCES[seq][0]
    parts = [f"seq{seq}", TRACKING_NAMES[int(c["tracking"])]]
    if "ema_decay" in c:
        parts.append(f"d{float(c['ema_decay']):g}")
    parts.append("axis" if c["per_axis"] else "tensor")
    parts += ["sym"] * bool(c["symmetric"]) + ["narrow"] * bool(c["narrow_range"])
    parts.append(f"b{int(c['num_bits'])}")
    parts.append("x".join(map(str, c["inputs"].shape)))
    parts += ["graph"] * bool(c["graph"])
    return "-".join(parts)


def _config(c):
    return dict(per_axis=bool(c["per_axis"]), symmetric=bool(c["symmetric"]),
                narrow_range=bool(c["narrow_range"]),
                num_bits=int(c["num_bits"]))


def _fake_quant(c, mn, mx):
    """Output and input gradient of TF's op on the updated range, by cfq."""
    x, g = c["inputs"], c["gradients"]
    kw = dict(num_bits=int(c["num_bits"]), narrow_range=bool(c["narrow_range"]))
    if c["per_axis"]:
        out = cfq.fake_quant_with_min_max_vars_per_channel(x, mn, mx, axis=-1, **kw)
        dx = cfq.fake_quant_with_min_max_vars_per_channel_gradient(
            g, x, mn, mx, axis=-1, **kw).backprops_wrt_input
    else:
        out = cfq.fake_quant_with_min_max_vars(x, mn, mx, **kw)
        dx = cfq.fake_quant_with_min_max_vars_gradient(
            g, x, mn, mx, **kw).backprops_wrt_input
    return out, dx


@pytest.mark.parametrize("seq", sorted(GOOD), ids=_name)
def test_sequence_step_after_step(seq):
    """From the initial variables only: each step's range from the model,
    then out and dx from cfq, all equal to tfmot's bits."""
    steps = GOOD[seq]
    mn, mx = steps[0]["min_before"], steps[0]["max_before"]
    for c in steps:
        what = f"{_name(seq)} step {int(c['step'])}"
        assert_bits_equal(c["min_before"], mn, what + " min_before")
        assert_bits_equal(c["max_before"], mx, what + " max_before")
        mn, mx = track_step(int(c["tracking"]), mn, mx, c["inputs"],
                            bool(c["training"]),
                            ema_decay=float(c.get("ema_decay", 0.999)),
                            graph=bool(c["graph"]), **_config(c))
        assert mn.shape == c["min"].shape and mx.shape == c["max"].shape, what
        assert_bits_equal(mn, c["min"], what + " min")
        assert_bits_equal(mx, c["max"], what + " max")
        out, dx = _fake_quant(c, mn, mx)
        assert_bits_equal(out, c["out"], what + " out")
        assert_bits_equal(dx, c["dx"], what + " dx")


def test_coverage():
    """The data holds what the generator's docstring promises."""
    good = [c for c in CASES if "error" not in c]
    conf = {(int(c["tracking"]), bool(c["per_axis"]), bool(c["symmetric"]),
             bool(c["narrow_range"]), int(c["num_bits"])) for c in good}
    for tracking in (LAST_VALUE, MOVING_AVERAGE):
        for per_axis in (False, True):
            for sym in (False, True):
                for nr in (False, True):
                    assert (tracking, per_axis, sym, nr, 8) in conf
                    assert (tracking, per_axis, sym, nr, 4) in conf
    assert {int(c["num_bits"]) for c in good} == {2, 3, 4, 8}
    decays = {float(c["ema_decay"]) for c in good if "ema_decay" in c}
    assert decays == {0.999, 0.9}
    shapes = {(bool(c["per_axis"]), c["inputs"].shape) for c in good}
    assert {(False, (4, 8)), (False, (2, 3, 5)), (True, (2, 3, 5)),
            (True, (4, 5)), (True, (2, 2, 3, 5)), (True, (5,)),
            (True, (4, 12))} <= shapes
    train = [c for c in good if c["training"]]
    assert len(train) >= 400 and len(good) - len(train) >= 150
    assert any(c["graph"] for c in good)
    # include-0 rule and signed zeros exercised
    xs = [c["inputs"] for c in train if not c["per_axis"]]
    assert any(x.min() > 0 for x in xs) and any(x.max() < 0 for x in xs)
    assert any(x.max() == 0 and np.signbit(x.max()) for x in xs)
    assert any(np.signbit(c["min"]) and c["min"] == 0 for c in train
               if not c["per_axis"])
    assert META["meta_tfmot_version"] == "0.8.1"
    assert META["meta_tf_version"].startswith("2.21.")


def test_error_cases():
    """Configurations tfmot 0.8.1 itself refuses (see the generator)."""
    errs = {_name(k): str(v[0]["error"]) for k, v in SEQUENCES.items()
            if "error" in v[0]}
    got = sorted(errs.values())
    assert got == ["InvalidArgumentError", "UnboundLocalError"], errs
    for k, v in SEQUENCES.items():
        if "error" in v[0]:
            assert len(v) == 1 and "out" not in v[0] and "min" not in v[0]
