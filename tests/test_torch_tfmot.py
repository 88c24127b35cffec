"""cfq.torch.FakeQuant against tfmot 0.8.1 on TF 2.21 (tests/golden/tfmot.npz,
made by tools/make_golden_tfmot.py): outputs, ranges after each step and
input gradients, bit for bit, step after step, in eager mode and (a few
sequences) under torch.compile(fullgraph=True)."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cfq.torch as cfqt  # noqa: E402
from golden_io import load_cases  # noqa: E402
from support import assert_bits_equal  # noqa: E402
from tfmot_model import LAST_VALUE, TRACKING_NAMES  # noqa: E402

CASES = load_cases("tfmot")


def _sequences():
    seqs = {}
    for c in CASES:
        if "error" not in c:
            seqs.setdefault(int(c["sequence"]), []).append(c)
    return seqs


SEQUENCES = _sequences()


def _name(seq):
    c = SEQUENCES[seq][0]
    parts = [f"seq{seq}", TRACKING_NAMES[int(c["tracking"])], "axis" if c["per_axis"] else "tensor"]
    parts += ["sym"] * bool(c["symmetric"]) + ["narrow"] * bool(c["narrow_range"]) + ["graph"] * bool(c["graph"])
    return "-".join(parts + [f"b{int(c['num_bits'])}", "x".join(map(str, c["inputs"].shape))])


def _quantizer(first):
    per_axis = bool(first["per_axis"])
    kw = dict(tracking=TRACKING_NAMES[int(first["tracking"])], symmetric=bool(first["symmetric"]),
              init_min=first["min_before"], init_max=first["max_before"], tf_graph=bool(first["graph"]))
    if int(first["tracking"]) != LAST_VALUE:
        kw["ema_decay"] = float(first["ema_decay"])
    if per_axis:
        kw.update(axis=-1, channels=first["inputs"].shape[-1])
    return cfqt.FakeQuant(int(first["num_bits"]), bool(first["narrow_range"]), **kw)


def _run(q, steps, seq, call=None):
    call = q if call is None else call
    for c in steps:
        what = f"{_name(seq)} step {int(c['step'])}"
        assert_bits_equal(q.min.numpy(), c["min_before"], what + " min_before")
        assert_bits_equal(q.max.numpy(), c["max_before"], what + " max_before")
        q.train(bool(c["training"]))
        x = torch.from_numpy(c["inputs"].copy()).requires_grad_()
        y = call(x)
        y.backward(torch.from_numpy(c["gradients"]))
        assert_bits_equal(q.min.numpy(), c["min"], what + " min")
        assert_bits_equal(q.max.numpy(), c["max"], what + " max")
        assert_bits_equal(y.detach().numpy(), c["out"], what + " out")
        assert_bits_equal(x.grad.numpy(), c["dx"], what + " dx")


def test_golden_is_there():
    assert len(SEQUENCES) >= 80


@pytest.mark.parametrize("seq", sorted(SEQUENCES), ids=_name)
def test_fake_quant_reproduces_tfmot_step_after_step(seq):
    steps = SEQUENCES[seq]
    q = _quantizer(steps[0])
    assert isinstance(q.min, torch.Tensor) and not isinstance(q.min, torch.nn.Parameter)
    _run(q, steps, seq)


def test_tf_graph_is_what_differs_in_a_tf_function():
    """The sequences recorded twice (eager, and inside a tf.function) differ
    somewhere, and each is reproduced only with its own tf_graph setting."""
    twins = {}
    for seq, steps in SEQUENCES.items():
        c = steps[0]
        key = (int(c["tracking"]), bool(c["per_axis"]), int(c["num_bits"]), c["inputs"].tobytes())
        twins.setdefault(key, {})[bool(c["graph"])] = seq
    pairs = [v for v in twins.values() if len(v) == 2]
    assert len(pairs) >= 5
    differing = 0
    for pair in pairs:
        eager, graph = SEQUENCES[pair[False]], SEQUENCES[pair[True]]
        same = all(np.array_equal(a["min"].view(np.uint32), b["min"].view(np.uint32))
                   for a, b in zip(eager, graph))
        if same:
            continue
        differing += 1
        q = _quantizer(eager[0])
        q.tf_graph = True  # the wrong setting for the eager data
        with pytest.raises(AssertionError):
            _run(q, eager, pair[False])
    assert differing >= 1


def _compile_picks():
    """A few sequences of different kinds (compiling is slow): last_value
    per axis symmetric, moving_average per tensor, per axis symmetric with
    the tf.function rewrite."""
    want = [(LAST_VALUE, True, True, False), (1, False, False, False), (1, True, True, True)]
    picks = []
    for w in want:
        for seq, steps in sorted(SEQUENCES.items()):
            c = steps[0]
            if (int(c["tracking"]), bool(c["per_axis"]), bool(c["symmetric"]), bool(c["graph"])) == w:
                picks.append(seq)
                break
    return picks


@pytest.mark.parametrize("seq", _compile_picks(), ids=_name)
def test_compiled_fake_quant_reproduces_tfmot(seq):
    steps = SEQUENCES[seq]
    q = _quantizer(steps[0])
    torch._dynamo.reset()
    _run(q, steps, seq, call=torch.compile(q, fullgraph=True))


def test_state_dict_round_trip_gives_identical_eval_outputs():
    seq = next(s for s, v in sorted(SEQUENCES.items()) if v[0]["per_axis"] and v[0]["tracking"] == 1)
    steps = SEQUENCES[seq]
    q = _quantizer(steps[0])
    for c in steps[:3]:
        q(torch.from_numpy(c["inputs"]))
    q2 = copy.deepcopy(_quantizer(steps[0]))
    q2.load_state_dict(q.state_dict())
    q.eval()
    q2.eval()
    x = torch.from_numpy(steps[-1]["inputs"])
    assert_bits_equal(q(x).numpy(), q2(x).numpy(), "eval after load_state_dict")
    assert set(q.state_dict()) == {"min", "max"}
