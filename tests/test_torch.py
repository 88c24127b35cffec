"""cfq.torch: the ops and their autograd on cfq's golden TF data, bit for bit;
both call paths (the eager fast path and the registered torch.ops.cfq ops,
which torch.compile traces); dtypes, strides, devices, errors, threads,
bytes saved for backward, opcheck, torch.compile, FakeQuant basics.
Skipped when torch is not installed."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cfq  # noqa: E402
import cfq.torch as cfqt  # noqa: E402
from golden_io import load_cases  # noqa: E402
from support import assert_bits_equal, bits, saved_bytes  # noqa: E402

ops = torch.ops.cfq
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["fast", "ops"]


def T(a, grad=False):
    """A fresh tensor holding a copy of a NumPy array."""
    t = torch.from_numpy(np.array(a, dtype=np.float32, copy=True))
    return t.requires_grad_() if grad else t


def npy(t):
    return t.detach().float().numpy()


def vars_fq(path, x, mn, mx, nb=8, nr=False):
    if path == "fast":
        return cfqt.fake_quant_with_min_max_vars(x, mn, mx, nb, nr)
    return ops.fake_quant_with_min_max_vars(x, mn, mx, nb, nr)


def per_channel_fq(path, x, mn, mx, nb=8, nr=False, axis=-1):
    if path == "fast":
        return cfqt.fake_quant_with_min_max_vars_per_channel(x, mn, mx, nb, nr, axis=axis)
    return ops.fake_quant_with_min_max_vars_per_channel(x, mn, mx, nb, nr, axis)


def args_fq(path, x, mn, mx, nb=8, nr=False):
    if path == "fast":
        return cfqt.fake_quant_with_min_max_args(x, mn, mx, nb, nr)
    return ops.fake_quant_with_min_max_args(x, mn, mx, nb, nr)


def finite(case):
    return bool(np.all(np.isfinite(case["min"])) and np.all(np.isfinite(case["max"])))


def test_importing_cfq_does_not_import_torch():
    code = "import sys, cfq; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr

# ---------------------------------------------------------------------------
# Golden TF data through autograd


@pytest.mark.parametrize("path", PATHS)
def test_vars_autograd_on_golden_gradient_data(path):
    checked = 0
    for case in load_cases("vars_grad"):
        if "error" in case:
            continue
        nb, nr = int(case["num_bits"]), bool(case["narrow_range"])
        x, mn, mx = T(case["inputs"], True), T(case["min"], True), T(case["max"], True)
        if not finite(case):
            with pytest.raises(ValueError, match="finite"):
                vars_fq(path, x, mn, mx, nb, nr)
            continue
        y = vars_fq(path, x, mn, mx, nb, nr)
        y.backward(T(case["gradients"]))
        what = f"case {case['id']} ({path})"
        assert_bits_equal(npy(y), cfq.fake_quant_with_min_max_vars(case["inputs"], case["min"], case["max"], nb, nr),
                          what + " out")
        assert_bits_equal(npy(x.grad), case["dx"], what + " dx (TF)")
        want = cfq.fake_quant_with_min_max_vars_gradient(case["gradients"], case["inputs"], case["min"],
                                                         case["max"], nb, nr)
        assert x.grad.shape == x.shape and mn.grad.shape == () and mx.grad.shape == ()
        assert_bits_equal(npy(mn.grad), want.backprop_wrt_min, what + " dmin (cfq)")
        assert_bits_equal(npy(mx.grad), want.backprop_wrt_max, what + " dmax (cfq)")
        checked += 1
    assert checked >= 500


@pytest.mark.parametrize("path", PATHS)
def test_vars_gradient_function_on_golden_data(path):
    fn = (cfqt.fake_quant_with_min_max_vars_gradient if path == "fast"
          else lambda *a: cfq.FakeQuantWithMinMaxVarsGradient(*ops.fake_quant_with_min_max_vars_gradient(*a)))
    checked = 0
    for case in load_cases("vars_grad"):
        args = (T(case["gradients"]), T(case["inputs"]), T(case["min"]), T(case["max"]),
                int(case["num_bits"]), bool(case["narrow_range"]))
        if "error" in case or not finite(case):
            with pytest.raises((ValueError, TypeError)):
                fn(*args)
            continue
        r = fn(*args)
        assert isinstance(r, cfq.FakeQuantWithMinMaxVarsGradient)
        want = cfq.fake_quant_with_min_max_vars_gradient(*(a.numpy() if isinstance(a, torch.Tensor) else a
                                                           for a in args))
        assert_bits_equal(npy(r.backprops_wrt_input), case["dx"], f"case {case['id']}")
        for got, w in zip(r[1:], want[1:]):
            assert_bits_equal(npy(got), w, f"case {case['id']} sums")
        checked += 1
    assert checked >= 500


@pytest.mark.parametrize("path", PATHS)
def test_vars_forward_on_golden_data(path):
    checked = 0
    for case in load_cases("vars"):
        nb, nr = int(case["num_bits"]), bool(case["narrow_range"])
        x, mn, mx = T(case["inputs"]), T(case["min"]), T(case["max"])
        if "error" in case or not finite(case):
            with pytest.raises((ValueError, TypeError)):
                vars_fq(path, x, mn, mx, nb, nr)
            continue
        assert_bits_equal(npy(vars_fq(path, x, mn, mx, nb, nr)), case["out"], f"vars case {case['id']}")
        # min/max as Python numbers: the same bits
        if path == "fast":
            got = cfqt.fake_quant_with_min_max_vars(x, float(case["min"]), float(case["max"]), nb, nr)
            assert_bits_equal(npy(got), case["out"], f"vars case {case['id']} numbers")
        checked += 1
    assert checked >= 500


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_per_channel_autograd_on_golden_data(path, axis):
    """TF's last-axis op; axis 0 on the moved (non-contiguous) view."""
    checked = 0
    for case in load_cases("per_channel"):
        nb, nr = int(case["num_bits"]), bool(case["narrow_range"])
        x0 = T(case["inputs"])
        if x0.dim() == 0:
            continue
        x = x0.movedim(-1, axis).detach().requires_grad_()
        mn, mx = T(case["min"], True), T(case["max"], True)
        if "error" in case or not finite(case):
            with pytest.raises((ValueError, TypeError)):
                per_channel_fq(path, x, mn, mx, nb, nr, axis)
            continue
        g = T(case["gradients"]).movedim(-1, axis)
        y = per_channel_fq(path, x, mn, mx, nb, nr, axis)
        y.backward(g)
        what = f"per-channel case {case['id']} axis {axis} ({path})"
        assert_bits_equal(npy(y.movedim(axis, -1)), case["out"], what + " out")
        assert_bits_equal(npy(x.grad.movedim(axis, -1)), case["dx"], what + " dx")
        want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(
            case["gradients"], case["inputs"], case["min"], case["max"], nb, nr)
        assert mn.grad.shape == mn.shape
        assert_bits_equal(npy(mn.grad), want.backprop_wrt_min, what + " dmin")
        assert_bits_equal(npy(mx.grad), want.backprop_wrt_max, what + " dmax")
        r = cfqt.fake_quant_with_min_max_vars_per_channel_gradient(g, x.detach(), mn.detach(), mx.detach(), nb, nr,
                                                                  axis=axis)
        assert isinstance(r, cfq.FakeQuantWithMinMaxVarsPerChannelGradient)
        assert_bits_equal(npy(r[0].movedim(axis, -1)), case["dx"], what + " gradient function")
        assert_bits_equal(npy(r[1]), want.backprop_wrt_min, what + " gradient function dmin")
        checked += 1
    assert checked >= 80


@pytest.mark.parametrize("path", PATHS)
def test_args_autograd_on_golden_data(path):
    checked = 0
    for case in load_cases("args"):
        kw = (float(case["min"]), float(case["max"]), int(case["num_bits"]), bool(case["narrow_range"]))
        x = T(case["inputs"], True)
        if "error" in case or not finite(case):
            with pytest.raises((ValueError, TypeError)):
                args_fq(path, x, *kw)
            with pytest.raises((ValueError, TypeError)):
                cfqt.fake_quant_with_min_max_args_gradient(T(case["gradients"]), x.detach(), *kw)
            continue
        y = args_fq(path, x, *kw)
        y.backward(T(case["gradients"]))
        assert_bits_equal(npy(y), case["out"], f"args case {case['id']} out")
        assert_bits_equal(npy(x.grad), case["dx"], f"args case {case['id']} dx")
        dx = cfqt.fake_quant_with_min_max_args_gradient(T(case["gradients"]), x.detach(), *kw)
        assert_bits_equal(npy(dx), case["dx"], f"args case {case['id']} gradient function")
        checked += 1
    assert checked >= 100


def test_args_region_path_keeps_denormal_flushing_and_nan_rules():
    """The args backward runs from the args op's region codes: same bits as
    the args gradient with denormal, NaN and infinite gradients and inputs."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-4, 4, 5000).astype(np.float32)
    g = rng.standard_normal(5000).astype(np.float32)
    x[::7], x[1::11], g[::13], g[1::17], g[2::19] = np.nan, -1e-40, 1e-40, np.inf, -0.0
    for mn, mx, nb, nr in ((-1.0, 1.0, 8, False), (-0.3, 2.7, 3, True), (0.5, 0.7, 16, False)):
        t = T(x, True)
        cfqt.fake_quant_with_min_max_args(t, mn, mx, nb, nr).backward(T(g))
        assert_bits_equal(npy(t.grad), cfq.fake_quant_with_min_max_args_gradient(g, x, mn, mx, nb, nr))


@pytest.mark.parametrize("path", PATHS)
def test_region_pair(path):
    rng = np.random.default_rng(1)
    x, g = rng.uniform(-3, 3, (7, 9)).astype(np.float32), rng.standard_normal((7, 9)).astype(np.float32)
    if path == "fast":
        y, region = cfqt.fake_quant_with_min_max_vars_and_region(T(x), -1.0, 1.5)
        r = cfqt.fake_quant_region_gradient(T(g), region)
    else:
        y, region = ops.fake_quant_with_min_max_vars_and_region(T(x), T(-1.0), T(1.5))
        r = ops.fake_quant_region_gradient(T(g), region)
    want_y, want_region = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.5)
    assert region.dtype == torch.uint8 and np.array_equal(region.numpy(), want_region)
    assert_bits_equal(npy(y), want_y)
    for a, b in zip(r, cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.5)):
        assert_bits_equal(npy(a), b)
    # differentiable through the outputs
    t, mn = T(x, True), T(-1.0, True)
    y, _ = cfqt.fake_quant_with_min_max_vars_and_region(t, mn, 1.5)
    y.backward(T(g))
    want = cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.5)
    assert_bits_equal(npy(t.grad), want[0])
    assert_bits_equal(npy(mn.grad), want[1])

@pytest.mark.parametrize("path", PATHS)
def test_args_region_pair_is_one_pass_of_cfqs(path):
    rng = np.random.default_rng(4)
    x, g = rng.uniform(-3, 3, (7, 9)).astype(np.float32), rng.standard_normal((7, 9)).astype(np.float32)
    x[0, :4] = np.nan, np.inf, -1e-40, -0.0
    if path == "fast":
        y, region = cfqt.fake_quant_with_min_max_args_and_region(T(x), -1.0, 1.5, 5, True)
        dx = cfqt.fake_quant_region_gradient(T(g), region)[0]
    else:
        y, region = ops.fake_quant_with_min_max_args_and_region(T(x), -1.0, 1.5, 5, True)
        dx = ops.fake_quant_region_gradient(T(g), region)[0]
    want_y, want_region = cfq.fake_quant_with_min_max_args_and_region(x, -1.0, 1.5, 5, True)
    assert region.dtype == torch.uint8 and np.array_equal(region.numpy(), want_region)
    assert_bits_equal(npy(y), want_y)
    assert_bits_equal(npy(dx), cfq.fake_quant_with_min_max_args_gradient(g, x, -1.0, 1.5, 5, True))


def pc_and_region(path, x, mn, mx, nb=8, nr=False, axis=-1):
    if path == "fast":
        return cfqt.fake_quant_with_min_max_vars_per_channel_and_region(x, mn, mx, nb, nr, axis=axis)
    return ops.fake_quant_with_min_max_vars_per_channel_and_region(x, mn, mx, nb, nr, axis)


def pc_region_gradient(path, g, region, axis=-1):
    if path == "fast":
        return cfqt.fake_quant_per_channel_region_gradient(g, region, axis=axis)
    return ops.fake_quant_per_channel_region_gradient(g, region, axis)


def special_data(rng, shape):
    """Inputs in [-4, 4] and gradients with NaN, +-Inf, -0.0 and float32
    denormals among them."""
    x = rng.uniform(-4, 4, shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    xf, gf = x.reshape(-1), g.reshape(-1)
    xf[::23], xf[1::29], xf[2::31], xf[3::37], xf[4::41] = np.nan, np.inf, -np.inf, -1e-40, -0.0
    gf[5::43], gf[6::47], gf[7::53], gf[8::59] = 1e-40, -0.0, np.inf, np.nan
    return x, g


def channel_range(rng, c):
    """Per-channel min/max: ordinary ranges, plus channel 1 min == max == 0
    (TF's pass-through, region code 8) and channel 2 with min > max."""
    lo = rng.uniform(-3, -0.1, c).astype(np.float32)
    hi = rng.uniform(0.1, 3, c).astype(np.float32)
    lo[1] = hi[1] = 0.0
    lo[2], hi[2] = 1.0, -0.5
    return lo, hi


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_per_channel_region_pair_gives_the_input_based_gradient(path, axis):
    """cfq's per-channel region pair through torch: outputs and codes as
    cfq's, the gradient from the codes bit for bit the per-channel gradient
    on the inputs (last, first and a middle axis); autograd uses it."""
    rng = np.random.default_rng(13)
    shape = (5, 6, 7)
    x, g = special_data(rng, shape)
    lo, hi = channel_range(rng, shape[axis])
    for nb, nr in ((8, False), (3, True)):
        what = f"axis {axis} num_bits {nb} ({path})"
        y, region = pc_and_region(path, T(x), T(lo), T(hi), nb, nr, axis)
        want_y, want_region = cfq.fake_quant_with_min_max_vars_per_channel_and_region(x, lo, hi, nb, nr, axis=axis)
        assert region.dtype == torch.uint8 and np.array_equal(region.numpy(), want_region), what
        assert np.all(np.moveaxis(region.numpy(), axis, 0)[1] == 8), what + ": pass-through channel"
        assert_bits_equal(npy(y), want_y, what + " out")
        want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, nb, nr, axis=axis)
        r = pc_region_gradient(path, T(g), region, axis)
        assert isinstance(r, (tuple, cfq.FakeQuantWithMinMaxVarsPerChannelGradient))
        for got, exp, name in zip(r, want, ("dx", "dmin", "dmax")):
            assert_bits_equal(npy(got), exp, f"{what} {name} from the codes")
        xt, lt, ht = T(x, True), T(lo, True), T(hi, True)
        per_channel_fq(path, xt, lt, ht, nb, nr, axis).backward(T(g))
        for got, exp, name in zip((xt.grad, lt.grad, ht.grad), want, ("dx", "dmin", "dmax")):
            assert_bits_equal(npy(got), exp, f"{what} {name} by autograd")


def test_compiled_per_channel_on_a_middle_axis():
    rng = np.random.default_rng(17)
    x, g = special_data(rng, (4, 6, 5))
    lo, hi = channel_range(rng, 6)

    def run(fn):
        ts = [T(x, True), T(lo, True), T(hi, True)]
        y = fn(*ts)
        y.backward(T(g))
        return [npy(y)] + [npy(t.grad) for t in ts]

    def model(a, b, c):
        return cfqt.fake_quant_with_min_max_vars_per_channel(a, b, c, 6, True, axis=1)

    torch._dynamo.reset()
    for a, b in zip(run(model), run(torch.compile(model, fullgraph=True))):
        assert_bits_equal(b, a, "compiled vs eager")

# ---------------------------------------------------------------------------
# Arguments: requires_grad, dtypes, strides, devices, errors


@pytest.mark.parametrize("path", PATHS)
def test_requires_grad_is_honoured(path):
    x = torch.linspace(-3, 3, 101)
    g = torch.ones(101)
    mn, mx = T(-1.0, True), T(1.0)
    vars_fq(path, x, mn, mx).backward(g)
    assert mn.grad is not None and mx.grad is None
    assert float(mn.grad) == float((x < -1.0).sum())
    x2 = x.clone().requires_grad_()
    y = cfqt.fake_quant_with_min_max_vars(x2, -1.0, 1.0)
    y.backward(g)
    assert x2.grad is not None
    with torch.no_grad():
        assert not vars_fq(path, x2, mn, mx).requires_grad
    with torch.inference_mode():
        assert_bits_equal(npy(vars_fq(path, x2, mn, mx)), npy(y))


@pytest.mark.parametrize("path", PATHS)
def test_float64_is_computed_as_float32(path):
    """float64 tensors are rounded to float32 for cfq, results come back as
    float64 (float16 and bfloat16: tests/test_torch_dtypes.py)."""
    dtype = torch.float64
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-3, 3, (6, 40)).astype(np.float32)).to(dtype).requires_grad_()
    g = torch.from_numpy(rng.standard_normal((6, 40)).astype(np.float32)).to(dtype)
    mn = torch.tensor(-1.1, dtype=torch.float64, requires_grad=True)
    mx = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    y = vars_fq(path, x, mn, mx)
    assert y.dtype == dtype
    y.backward(g)
    x32, g32 = x.detach().float().numpy(), g.float().numpy()
    lo, hi = np.float32(-1.1), np.float32(1.3)
    want_y = torch.from_numpy(cfq.fake_quant_with_min_max_vars(x32, lo, hi)).to(dtype)
    want = cfq.fake_quant_with_min_max_vars_gradient(g32, x32, lo, hi)
    assert torch.equal(y.detach(), want_y)
    assert x.grad.dtype == dtype and torch.equal(x.grad, torch.from_numpy(want[0]).to(dtype))
    assert mn.grad.dtype == torch.float64 and float(mn.grad) == float(want[1])
    assert float(mx.grad) == float(want[2])
    # per channel and args likewise
    cmn = torch.full((40,), -1.1, dtype=dtype, requires_grad=True)
    cmx = torch.full((40,), 1.3, dtype=dtype, requires_grad=True)
    yp = per_channel_fq(path, x, cmn, cmx)
    assert yp.dtype == dtype
    yp.backward(g)
    assert cmn.grad.dtype == dtype and cmn.grad.shape == (40,)
    ya = args_fq(path, x.detach(), -1.0, 1.0)
    assert ya.dtype == dtype
    assert torch.equal(ya, torch.from_numpy(cfq.fake_quant_with_min_max_args(x32, -1.0, 1.0)).to(dtype))


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_tensors(path):
    rng = np.random.default_rng(2)
    base = torch.from_numpy(rng.uniform(-3, 3, (12, 10)).astype(np.float32))
    x = base.t()[::2]           # non-contiguous view
    assert not x.is_contiguous()
    xc = x.contiguous()
    a, b = x.clone().requires_grad_(), xc.clone().requires_grad_()
    ya, yb = vars_fq(path, x, T(-1.0), T(1.0)), vars_fq(path, xc, T(-1.0), T(1.0))
    assert_bits_equal(npy(ya), npy(yb))
    # an expanded (stride-0) upstream gradient, as from .sum().backward()
    for t in (a, b):
        vars_fq(path, t.t(), T(-1.0), T(1.0)).sum().backward()
    assert_bits_equal(npy(a.grad), npy(b.grad))
    cm = torch.full((x.shape[1],), -1.0)
    assert_bits_equal(npy(per_channel_fq(path, x, cm, -cm)), npy(per_channel_fq(path, xc, cm, -cm)))


class _OtherDevice(torch.Tensor):
    """A tensor that claims to live on a CUDA device (no data), to check the
    device error without a GPU."""

    @staticmethod
    def __new__(cls, shape):
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=torch.float32, device=torch.device("cuda", 0))

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"cfq.torch must not run {func} on a non-CPU tensor")


def test_other_devices_are_a_clear_error():
    dev = _OtherDevice((4,))
    with pytest.raises(ValueError, match="cuda:0.*CPU only"):
        cfqt.fake_quant_with_min_max_vars(dev, -1.0, 1.0)
    with pytest.raises(ValueError, match="max is on cuda"):
        cfqt.fake_quant_with_min_max_vars(torch.zeros(4), torch.tensor(-1.0), _OtherDevice(()))
    with pytest.raises(ValueError, match="gradients is on cuda"):
        cfqt.fake_quant_with_min_max_args_gradient(dev, torch.zeros(4))
    with pytest.raises(ValueError, match="min is on cuda"):
        cfqt.fake_quant_with_min_max_vars_per_channel(torch.zeros(4), _OtherDevice((4,)), torch.ones(4))


def test_meta_tensors_trace():
    x = torch.empty(3, 4, device="meta", requires_grad=True)
    y = cfqt.fake_quant_with_min_max_vars(x, -1.0, 1.0)
    assert y.device.type == "meta" and y.shape == (3, 4) and y.requires_grad
    y = cfqt.fake_quant_with_min_max_vars_per_channel(x, torch.zeros(4, device="meta"),
                                                      torch.ones(4, device="meta"))
    assert y.shape == (3, 4)
    y, r = cfqt.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0)
    assert r.dtype == torch.uint8 and r.device.type == "meta"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.complex64, torch.uint8])
def test_integer_bool_complex_inputs_are_type_errors(path, dtype):
    x = torch.zeros(5, dtype=dtype)
    with pytest.raises(TypeError, match="inputs must be a floating-point tensor"):
        vars_fq(path, x, T(-1.0), T(1.0))
    with pytest.raises(TypeError, match="floating-point"):
        per_channel_fq(path, x, torch.zeros(5), torch.ones(5))
    with pytest.raises(TypeError, match="floating-point"):
        args_fq(path, x, -1.0, 1.0)


def test_errors_are_cfqs():
    x = torch.zeros(6, 4)
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor"):
        cfqt.fake_quant_with_min_max_vars([1.0, 2.0], -1.0, 1.0)
    for path in PATHS:
        with pytest.raises(ValueError, match=r"min must be a scalar \(shape \(\)\), got shape \(1,\)"):
            vars_fq(path, x, torch.zeros(1), T(1.0))
        with pytest.raises(ValueError, match="max must be finite"):
            vars_fq(path, x, T(-1.0), T(np.inf))
        with pytest.raises(TypeError, match="min must be a real number"):
            vars_fq(path, x, torch.tensor(True), T(1.0))
        with pytest.raises(ValueError, match="num_bits must be between 2 and 16"):
            vars_fq(path, x, T(-1.0), T(1.0), nb=17)
        with pytest.raises(ValueError, match="min has incorrect size, expected 4 was 3"):
            per_channel_fq(path, x, torch.zeros(3), torch.ones(3))
        with pytest.raises(ValueError, match="axis 2 is out of range"):
            per_channel_fq(path, x, torch.zeros(4), torch.ones(4), axis=2)
        with pytest.raises(ValueError, match=r"max\[1\] must be finite"):
            per_channel_fq(path, x, torch.zeros(4), torch.tensor([1.0, np.nan, 1.0, 1.0]))
        with pytest.raises(ValueError, match="min must be a rank 1|rank 1"):
            per_channel_fq(path, x, torch.zeros(()), torch.ones(()))
        with pytest.raises(ValueError, match="was: 1.0 >= -1.0"):
            args_fq(path, x, 1.0, -1.0)
    with pytest.raises(TypeError, match="num_bits must be an int"):
        cfqt.fake_quant_with_min_max_vars(x, -1.0, 1.0, 2.5)
    with pytest.raises(TypeError, match="narrow_range must be a bool"):
        cfqt.fake_quant_with_min_max_vars(x, -1.0, 1.0, 8, "yes")
    with pytest.raises(TypeError, match="axis must be an int"):
        cfqt.fake_quant_with_min_max_vars_per_channel(x, torch.zeros(4), torch.ones(4), axis=1.0)
    with pytest.raises(TypeError, match="min must be a real number"):
        cfqt.fake_quant_with_min_max_vars(x, True, 1.0)
    with pytest.raises(ValueError, match="min must be finite in float32"):
        cfqt.fake_quant_with_min_max_vars(x, -1e39, 1.0)
    # The op path converts numbers itself, with the same errors.
    with pytest.raises(TypeError, match="min must be a real number"):
        cfqt._range_tensor(True, "min")
    with pytest.raises(TypeError, match="min must be a real number"):
        cfqt._range_tensor("1", "min")
    with pytest.raises(ValueError, match="min must be finite in float32"):
        cfqt._range_tensor(10 ** 400, "min")
    with pytest.raises(ValueError, match="gradients and inputs must have the same shape"):
        cfqt.fake_quant_with_min_max_vars_gradient(torch.zeros(3), torch.zeros(4), -1.0, 1.0)
    with pytest.raises(TypeError, match="region must be the uint8"):
        cfqt.fake_quant_region_gradient(torch.zeros(3), torch.zeros(3))
    with pytest.raises(TypeError, match="region must be the uint8"):
        cfqt.fake_quant_region_gradient(torch.zeros(3), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="region"):
        cfqt.fake_quant_region_gradient(torch.zeros(3), torch.full((3,), 77, dtype=torch.uint8))
    with pytest.raises(ValueError, match="gradients and region must have the same shape"):
        cfqt.fake_quant_region_gradient(torch.zeros(3), torch.zeros(4, dtype=torch.uint8))


def test_integer_min_max_tensors_are_numbers():
    x = torch.linspace(-3, 3, 50)
    got = cfqt.fake_quant_with_min_max_vars(x, torch.tensor(-1), torch.tensor(2))
    assert_bits_equal(npy(got), cfq.fake_quant_with_min_max_vars(x.numpy(), -1, 2))

# ---------------------------------------------------------------------------
# Threads, bytes saved, double backward


def test_threads_follow_torch_and_cfq_rule():
    before = torch.get_num_threads()
    try:
        assert cfqt._threads(1000) == 1
        torch.set_num_threads(1)
        assert cfqt._threads(1 << 22) == 1
        torch.set_num_threads(64)
        assert cfqt._threads(1 << 22) == min(64, cfqt._CPUS, (1 << 22) // (1 << 17))
        assert cfqt._threads((1 << 18) - 1) == 1
    finally:
        torch.set_num_threads(before)


def test_bits_identical_for_every_thread_count():
    rng = np.random.default_rng(5)
    n = 600_001
    x = rng.uniform(-3, 3, n).astype(np.float32)
    g = (rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-20, 20, n)).astype(np.float32)
    before = torch.get_num_threads()
    results = []
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            a, mn, mx = T(x, True), T(-1.0, True), T(1.0, True)
            y = cfqt.fake_quant_with_min_max_vars(a, mn, mx)
            y.backward(T(g))
            w = T(x.reshape(-1, 1)).expand(n, 3).contiguous().requires_grad_()
            cmn, cmx = torch.full((3,), -1.0, requires_grad=True), torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
            cfqt.fake_quant_with_min_max_vars_per_channel(w, cmn, cmx).backward(
                T(g.reshape(-1, 1)).expand(n, 3))
            results.append([npy(v) for v in (y, a.grad, mn.grad, mx.grad, w.grad, cmn.grad, cmx.grad)])
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for u, v in zip(results[0], other):
            assert_bits_equal(u, v, "thread counts")


@pytest.mark.parametrize("path", PATHS)
def test_backward_keeps_one_byte_per_element(path):
    n = 1 << 16
    x = torch.randn(n, requires_grad=True)
    mn, mx = T(-2.0, True), T(2.0, True)
    nbytes, y = saved_bytes(lambda: vars_fq(path, x, mn, mx))
    assert nbytes == n, "vars: the region codes, nothing else"
    nbytes, _ = saved_bytes(lambda: args_fq(path, x, -2.0, 2.0))
    assert nbytes == n, "args: the region codes, nothing else"
    w = torch.randn(256, 256, requires_grad=True)
    cm = torch.full((256,), 2.0, requires_grad=True)
    nbytes, _ = saved_bytes(lambda: per_channel_fq(path, w, -cm, cm))
    assert nbytes == w.numel(), "per channel: the region codes, nothing else"
    nbytes, _ = saved_bytes(lambda: per_channel_fq(path, w, -cm, cm, axis=0))
    assert nbytes == w.numel()


@pytest.mark.parametrize("path", PATHS)
def test_double_backward_is_a_clear_error(path):
    """TF defines no second derivative: differentiating the backward wrt an
    upstream gradient that requires grad is an error, not a silent 0."""
    x, mn, w = torch.randn(10, requires_grad=True), T(-1.0, True), torch.randn(10, requires_grad=True)
    y = vars_fq(path, x, mn, T(1.0))
    gx, gmn = torch.autograd.grad((y * w).sum(), (x, mn), create_graph=True)
    with pytest.raises(RuntimeError, match="not differentiable|twice"):
        (gx.sum() + gmn).backward()


def test_gradient_ops_are_not_differentiable():
    g, x = torch.randn(10, requires_grad=True), torch.randn(10)
    dx, dmin, dmax = cfqt.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0)
    with pytest.raises(RuntimeError, match="not differentiable"):
        (dx.sum() + dmin).backward()
    dx = cfqt.fake_quant_with_min_max_args_gradient(g, x, -1.0, 1.0)
    with pytest.raises(RuntimeError, match="not differentiable"):
        dx.sum().backward()

# ---------------------------------------------------------------------------
# opcheck and torch.compile


def _opcheck_cases():
    rng = np.random.default_rng(7)
    x = T(rng.uniform(-3, 3, (6, 5)))
    g = T(rng.standard_normal((6, 5)))
    lo, hi = T(-1.0), T(1.5)
    clo, chi = torch.full((5,), -1.0), torch.linspace(0.5, 2.0, 5)
    rlo, rhi = torch.full((6,), -1.0), torch.linspace(0.5, 2.0, 6)
    region = ops.fake_quant_with_min_max_vars_and_region(x, lo, hi)[1]
    pr = ops.fake_quant_with_min_max_vars_per_channel_and_region(x, clo, chi, 8, False, -1)[1]
    pr0 = ops.fake_quant_with_min_max_vars_per_channel_and_region(x, rlo, rhi, 4, True, 0)[1]

    def rg(*ts):
        return tuple(t.clone().requires_grad_() for t in ts)

    cases = [
        ("fake_quant_with_min_max_vars", (*rg(x, lo, hi), 8, False)),
        ("fake_quant_with_min_max_vars", (*rg(x, lo, hi), 3, True)),
        ("fake_quant_with_min_max_vars_and_region", (*rg(x, lo, hi), 8, False)),
        ("fake_quant_region_gradient", (g, region)),
        ("fake_quant_with_min_max_vars_gradient", (g, x, lo, hi, 8, False)),
        ("fake_quant_with_min_max_vars_per_channel", (*rg(x, clo, chi), 8, False, -1)),
        ("fake_quant_with_min_max_vars_per_channel", (*rg(x, rlo, rhi), 4, True, 0)),
        ("fake_quant_with_min_max_vars_per_channel_gradient", (g, x, clo, chi, 8, False, -1)),
        ("fake_quant_with_min_max_args", (*rg(x), -1.0, 1.5, 8, False)),
        ("_fake_quant_with_min_max_args_and_region", (*rg(x), -1.0, 1.5, 8, False)),
        ("fake_quant_with_min_max_args_and_region", (*rg(x), -1.0, 1.5, 8, False)),
        ("fake_quant_with_min_max_args_gradient", (g, x, -1.0, 1.5, 8, False)),
        ("fake_quant_with_min_max_vars_per_channel_and_region", (*rg(x, clo, chi), 8, False, -1)),
        ("fake_quant_with_min_max_vars_per_channel_and_region", (*rg(x, rlo, rhi), 4, True, 0)),
        ("fake_quant_per_channel_region_gradient", (g, pr, -1)),
        ("fake_quant_per_channel_region_gradient", (g, pr0, 0)),
    ]
    return cases


def test_opcheck_covers_every_op():
    names = {n for n, _ in _opcheck_cases()}
    registered = {name.split("::")[1] for name in torch._C._dispatch_get_all_op_names() if name.startswith("cfq::")}
    assert names == registered


@pytest.mark.parametrize("name,args", _opcheck_cases(), ids=[f"{n}-{i}" for i, (n, _) in enumerate(_opcheck_cases())])
def test_opcheck(name, args):
    torch.library.opcheck(getattr(ops, name).default, args)


def test_compile_fullgraph_gives_eager_bits_forward_and_backward():
    rng = np.random.default_rng(11)
    x0 = T(rng.uniform(-3, 3, (16, 8)))
    w0 = T(rng.standard_normal((8, 8)))
    g0 = T(rng.standard_normal((16, 8)))

    def model(x, w, lo, hi, clo, chi):
        wq = cfqt.fake_quant_with_min_max_vars_per_channel(w, clo, chi, 4, True, axis=0)
        h = cfqt.fake_quant_with_min_max_vars(x, lo, hi) @ wq
        return cfqt.fake_quant_with_min_max_args(h, -4.0, 4.0, 8, False) + cfqt.fake_quant_with_min_max_vars(h, -2.0, 2.5)

    def run(fn):
        ts = [x0.clone(), w0.clone(), T(-1.5), T(1.7), torch.full((8,), -1.0), torch.full((8,), 1.2)]
        ts = [t.requires_grad_() for t in ts]
        y = fn(*ts)
        y.backward(g0)
        return [npy(y)] + [npy(t.grad) for t in ts]

    torch._dynamo.reset()
    eager = run(model)
    compiled = run(torch.compile(model, fullgraph=True))
    for a, b in zip(eager, compiled):
        assert_bits_equal(b, a, "compiled vs eager")


def test_compiled_learned_fake_quant_module():
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), cfqt.FakeQuant(8, tracking="learned", init_min=-1.0,
                                                                    init_max=1.0))
    import copy
    net_c = copy.deepcopy(net)
    comp = torch.compile(net_c, fullgraph=True)
    x = torch.randn(4, 8)
    for fn, m in ((net, net), (comp, net_c)):
        fn(x).square().sum().backward()
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), net_c.named_parameters()):
        assert_bits_equal(npy(p2.grad), npy(p1.grad), n1)

# ---------------------------------------------------------------------------
# FakeQuant basics (tfmot's tracking: tests/test_torch_tfmot.py)


def test_fake_quant_parameters_and_buffers():
    q = cfqt.FakeQuant(8)
    assert isinstance(q.min, torch.nn.Parameter) and q.min.shape == () and q.min.dtype == torch.float32
    assert q.min.item() == -6.0 and q.max.item() == 6.0
    assert set(q.state_dict()) == {"min", "max"}
    q = cfqt.FakeQuant(4, True, tracking="moving_average", axis=0, channels=3, init_min=[-1, -2, -3], init_max=1)
    assert not isinstance(q.min, torch.nn.Parameter) and q.min.shape == (3,)
    assert q.min.tolist() == [-1, -2, -3] and q.max.tolist() == [1, 1, 1]
    assert set(q.state_dict()) == {"min", "max"} and not list(q.parameters())
    assert "moving_average" in repr(q) and "channels=3" in repr(q)


@pytest.mark.parametrize("tracking", ["learned", "moving_average"])
def test_fake_quant_range_stays_float32_under_module_conversions(tracking):
    q = cfqt.FakeQuant(8, tracking=tracking, init_min=-1.1, init_max=1.3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), q).half()
    assert net[0].weight.dtype == torch.float16
    assert q.min.dtype == torch.float32 and q.min.item() == np.float32(-1.1)
    assert isinstance(q.min, torch.nn.Parameter) == (tracking == "learned")
    y = net.eval()(torch.randn(3, 4, dtype=torch.float16))
    assert y.dtype == torch.float16
    net.to(torch.float64)
    assert q.max.dtype == torch.float32 and q.max.item() == np.float32(1.3)


def test_fake_quant_learned_trains_min_max_with_tfs_gradients():
    q = cfqt.FakeQuant(8, init_min=-1.0, init_max=1.0)
    x = torch.linspace(-3, 3, 61)
    q(x).backward(torch.ones(61))
    want = cfq.fake_quant_with_min_max_vars_gradient(np.ones(61, np.float32), x.numpy(), -1.0, 1.0)
    assert float(q.min.grad) == float(want[1]) and float(q.max.grad) == float(want[2])


def test_fake_quant_eval_updates_nothing_and_training_tracks():
    q = cfqt.FakeQuant(8, tracking="last_value")
    x = torch.tensor([0.5, 2.0, 3.0])
    q.eval()
    q(x)
    assert float(q.min) == -6.0 and float(q.max) == 6.0
    q.train()
    q(x)
    assert float(q.min) == 0.0 and float(q.max) == 3.0   # the range includes 0
    q = cfqt.FakeQuant(8, tracking="moving_average", ema_decay=0.5)
    q(x)
    assert float(q.min) == -3.0 and float(q.max) == 4.5


def test_fake_quant_pending_backward_survives_the_next_update():
    """A quantizer used twice before backward (shared module): the first
    call's backward is not disturbed by the second call's range update."""
    q = cfqt.FakeQuant(8, tracking="moving_average", axis=-1, channels=4)
    a, b = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    (q(a) + q(b)).sum().backward()
    assert a.grad is not None and b.grad is not None


def test_fake_quant_bad_arguments():
    with pytest.raises(ValueError, match="tracking must be one of"):
        cfqt.FakeQuant(tracking="ema")
    with pytest.raises(ValueError, match="num_bits must be between 2 and 16"):
        cfqt.FakeQuant(1)
    with pytest.raises(TypeError, match="narrow_range must be a bool"):
        cfqt.FakeQuant(8, "no")
    with pytest.raises(ValueError, match="channels is required"):
        cfqt.FakeQuant(axis=0)
    with pytest.raises(ValueError, match="set axis too"):
        cfqt.FakeQuant(channels=3)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        cfqt.FakeQuant(axis=0, channels=0)
    with pytest.raises(ValueError, match="symmetric=True applies"):
        cfqt.FakeQuant(symmetric=True)
    with pytest.raises(ValueError, match="does not fit"):
        cfqt.FakeQuant(axis=0, channels=3, init_min=[1.0, 2.0])
    with pytest.raises(TypeError, match="ema_decay must be a real number"):
        cfqt.FakeQuant(tracking="moving_average", ema_decay="0.9")
    q = cfqt.FakeQuant(8, tracking="last_value", axis=1, channels=3)
    with pytest.raises(ValueError, match="min has incorrect size, expected 4 was 3"):
        q(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="axis 1 is out of range"):
        q(torch.zeros(3))
    assert float(q.min[0]) == -6.0  # nothing tracked from a batch that does not fit
