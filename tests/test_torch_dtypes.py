"""cfq.torch on float16 and bfloat16 tensors: every op, eager, through
torch.ops.cfq and compiled, gives cfq's bits, cast(float32 op(upcast(x))):
upcast exact, cast to nearest even as NumPy (float16) and ml_dtypes
(bfloat16) convert, on every 16-bit pattern (NaNs, +-Inf, -0.0,
subnormals); the min/max sums are the float32 op's.  Also: no float32 copy
on the way in, bfloat16 without ml_dtypes (same bits), mixed dtypes,
saved bytes, opcheck, FakeQuant in a half model.  Skipped without torch;
the bfloat16 cases without ml_dtypes."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cfq  # noqa: E402
import cfq.torch as cfqt  # noqa: E402
from support import (ALL_HALF_PATTERNS, BFLOAT16, CFQ_PARENT, assert_bits_equal, downcast,  # noqa: E402
                     saved_bytes, upcast)

ops = torch.ops.cfq
NEEDS_ML_DTYPES = pytest.mark.skipif(BFLOAT16 is None, reason="bfloat16 needs ml_dtypes")
# (torch dtype, without ml_dtypes?): bfloat16 also as cfq.torch computes it
# when ml_dtypes is missing (float32 between its own conversions).
KINDS = [pytest.param((torch.float16, False), id="float16"),
         pytest.param((torch.bfloat16, False), id="bfloat16", marks=NEEDS_ML_DTYPES),
         pytest.param((torch.bfloat16, True), id="bfloat16-without-ml_dtypes", marks=NEEDS_ML_DTYPES)]
HALF = [pytest.param(torch.float16, id="float16"),
        pytest.param(torch.bfloat16, id="bfloat16", marks=NEEDS_ML_DTYPES)]
# For tests that need no ml_dtypes of their own (without it, cfq.torch's
# bfloat16 fallback is what they test).
HALF_ANY = [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]
PATHS = ["fast", "ops"]


@pytest.fixture(params=KINDS)
def kind(request, monkeypatch):
    """The tensors' dtype; for the bfloat16-without-ml_dtypes kind, cfq.torch
    is made to see no ml_dtypes."""
    dtype, without = request.param
    if without:
        monkeypatch.setattr(cfqt, "_bf16_dtype", None)
    return dtype


def np_dtype(dtype):
    return np.dtype(np.float16) if dtype is torch.float16 else BFLOAT16


def th(bits16, dtype, grad=False):
    """A tensor of `dtype` holding these 16-bit patterns (a copy)."""
    t = torch.from_numpy(np.array(bits16, dtype=np.uint16).view(np.int16)).view(dtype).clone()
    return t.requires_grad_() if grad else t


def tbits(t):
    """A 16-bit tensor's bit patterns (uint16), or a float32 one's (uint32)."""
    t = t.detach()
    if t.element_size() == 2:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16)
    assert t.dtype == torch.float32, t.dtype
    return t.contiguous().numpy().view(np.uint32)


def up(bits16, dtype):
    """The float32 values of 16-bit patterns (exact)."""
    return upcast(np.asarray(bits16, np.uint16).view(np_dtype(dtype)))


def cast_bits(a, dtype):
    """float32 values cast to `dtype` as NumPy / ml_dtypes do, as bits."""
    return downcast(a, np_dtype(dtype)).view(np.uint16)


def assert_16(got, want32, dtype, what):
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}"
    assert_bits_equal(tbits(got), cast_bits(want32, dtype), what)


def assert_32(got, want32, what):
    assert got.dtype == torch.float32, f"{what}: dtype {got.dtype}"
    assert_bits_equal(tbits(got), np.asarray(want32, np.float32).view(np.uint32), what)


def data(shape=(-1,), step=1):
    """Every 16-bit pattern as inputs (or every step-th) and, rolled, as
    gradients against other inputs."""
    x = ALL_HALF_PATTERNS[::step]
    return x.reshape(shape), np.roll(x, 12345).reshape(shape)


RANGES = [(-3.0, 5.0, 8, False), (-0.75, 0.5, 4, True), (0.0, 0.0, 8, False), (1e-3, 7e4, 16, False)]
SIZES = [pytest.param(1, id="65536"), pytest.param(61, id="1075")]  # torch-allocated results, cfq-allocated


def channel_range(c, seed):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-6, 0, c).astype(np.float32)
    hi = rng.uniform(0.1, 6, c).astype(np.float32)
    lo[1] = hi[1] = 0.0         # TF's pass-through
    lo[2], hi[2] = 0.5, 2.0     # a range above zero
    return lo, hi

# ---------------------------------------------------------------------------
# Every pattern, every op, eager and torch.ops.cfq


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("step", SIZES)
@pytest.mark.parametrize("lo,hi,nb,nr", RANGES)
def test_vars_ops(kind, path, step, lo, hi, nb, nr):
    dtype = kind
    xb, gb = data(step=step)
    x32, g32 = up(xb, dtype), up(gb, dtype)
    want_y = cfq.fake_quant_with_min_max_vars(x32, lo, hi, nb, nr)
    want = cfq.fake_quant_with_min_max_vars_gradient(g32, x32, lo, hi, nb, nr)
    x, mn, mx = th(xb, dtype, True), torch.tensor(lo, requires_grad=True), torch.tensor(hi, requires_grad=True)
    fq = cfqt.fake_quant_with_min_max_vars if path == "fast" else ops.fake_quant_with_min_max_vars
    y = fq(x, mn, mx, nb, nr)
    y.backward(th(gb, dtype))
    assert_16(y, want_y, dtype, "outputs")
    assert_16(x.grad, want[0], dtype, "input gradient")
    assert_32(mn.grad, want[1], "min gradient")
    assert_32(mx.grad, want[2], "max gradient")
    gf = cfqt.fake_quant_with_min_max_vars_gradient if path == "fast" else ops.fake_quant_with_min_max_vars_gradient
    r = gf(th(gb, dtype), th(xb, dtype), torch.tensor(lo), torch.tensor(hi), nb, nr)
    assert_16(r[0], want[0], dtype, "gradient op dx")
    assert_32(r[1], want[1], "gradient op dmin")
    assert_32(r[2], want[2], "gradient op dmax")
    if path == "fast":
        y, region = cfqt.fake_quant_with_min_max_vars_and_region(th(xb, dtype), lo, hi, nb, nr)
        r = cfqt.fake_quant_region_gradient(th(gb, dtype), region)
    else:
        y, region = ops.fake_quant_with_min_max_vars_and_region(th(xb, dtype), torch.tensor(lo),
                                                                torch.tensor(hi), nb, nr)
        r = ops.fake_quant_region_gradient(th(gb, dtype), region)
    assert_16(y, want_y, dtype, "vars_and_region outputs")
    assert np.array_equal(region.numpy(), cfq.fake_quant_with_min_max_vars_and_region(x32, lo, hi, nb, nr)[1])
    assert_16(r[0], want[0], dtype, "region gradient dx")
    assert_32(r[1], want[1], "region gradient dmin")
    assert_32(r[2], want[2], "region gradient dmax")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("step", SIZES)
@pytest.mark.parametrize("lo,hi,nb,nr", [r for r in RANGES if r[0] < r[1]])
def test_args_ops(kind, path, step, lo, hi, nb, nr):
    dtype = kind
    xb, gb = data(step=step)
    x32, g32 = up(xb, dtype), up(gb, dtype)
    want_y = cfq.fake_quant_with_min_max_args(x32, lo, hi, nb, nr)
    want_dx = cfq.fake_quant_with_min_max_args_gradient(g32, x32, lo, hi, nb, nr)
    x = th(xb, dtype, True)
    fq = cfqt.fake_quant_with_min_max_args if path == "fast" else ops.fake_quant_with_min_max_args
    y = fq(x, lo, hi, nb, nr)
    y.backward(th(gb, dtype))
    assert_16(y, want_y, dtype, "outputs")
    assert_16(x.grad, want_dx, dtype, "input gradient")
    gf = (cfqt.fake_quant_with_min_max_args_gradient if path == "fast"
          else ops.fake_quant_with_min_max_args_gradient)
    assert_16(gf(th(gb, dtype), th(xb, dtype), lo, hi, nb, nr), want_dx, dtype, "gradient op")
    pair = (cfqt.fake_quant_with_min_max_args_and_region if path == "fast"
            else ops.fake_quant_with_min_max_args_and_region)
    y, region = pair(th(xb, dtype), lo, hi, nb, nr)
    assert_16(y, want_y, dtype, "args_and_region outputs")
    assert_16(cfqt.fake_quant_region_gradient(th(gb, dtype), region)[0], want_dx, dtype, "from the codes")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_per_channel_ops(kind, path, axis):
    dtype = kind
    xb, gb = data((16, 64, 64))
    x32, g32 = up(xb, dtype), up(gb, dtype)
    lo, hi = channel_range(xb.shape[axis], axis + 5)
    want_y = cfq.fake_quant_with_min_max_vars_per_channel(x32, lo, hi, 6, False, axis=axis)
    want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g32, x32, lo, hi, 6, False, axis=axis)
    x = th(xb, dtype, True)
    mn, mx = torch.from_numpy(lo).requires_grad_(), torch.from_numpy(hi).requires_grad_()
    if path == "fast":
        y = cfqt.fake_quant_with_min_max_vars_per_channel(x, mn, mx, 6, False, axis=axis)
    else:
        y = ops.fake_quant_with_min_max_vars_per_channel(x, mn, mx, 6, False, axis)
    y.backward(th(gb, dtype))
    assert_16(y, want_y, dtype, "outputs")
    assert_16(x.grad, want[0], dtype, "input gradient")
    assert_32(mn.grad, want[1], "min gradient")
    assert_32(mx.grad, want[2], "max gradient")
    lo_t, hi_t = torch.from_numpy(lo), torch.from_numpy(hi)
    if path == "fast":
        r = cfqt.fake_quant_with_min_max_vars_per_channel_gradient(th(gb, dtype), th(xb, dtype), lo_t, hi_t, 6,
                                                                   axis=axis)
        y, region = cfqt.fake_quant_with_min_max_vars_per_channel_and_region(th(xb, dtype), lo_t, hi_t, 6,
                                                                             axis=axis)
        rr = cfqt.fake_quant_per_channel_region_gradient(th(gb, dtype), region, axis=axis)
    else:
        r = ops.fake_quant_with_min_max_vars_per_channel_gradient(th(gb, dtype), th(xb, dtype), lo_t, hi_t, 6,
                                                                  False, axis)
        y, region = ops.fake_quant_with_min_max_vars_per_channel_and_region(th(xb, dtype), lo_t, hi_t, 6,
                                                                            False, axis)
        rr = ops.fake_quant_per_channel_region_gradient(th(gb, dtype), region, axis)
    assert_16(y, want_y, dtype, "per_channel_and_region outputs")
    for got, name in ((r, "gradient op"), (rr, "region gradient")):
        assert_16(got[0], want[0], dtype, name + " dx")
        assert_32(got[1], want[1], name + " dmin")
        assert_32(got[2], want[2], name + " dmax")


def test_specials_are_in_the_data():
    """What the every-pattern tests cover, spelled out: NaNs of both signs
    and many payloads, +-Inf, -0.0 and subnormals, in both dtypes."""
    for dtype, subnormals in ((torch.float16, 2 * 1023), (torch.bfloat16, 2 * 127)):
        t = th(ALL_HALF_PATTERNS, dtype).float()
        assert int(torch.isnan(t).sum()) == subnormals and int(torch.isinf(t).sum()) == 2
        assert int(((t == 0) & torch.signbit(t)).sum()) == 1
        assert int(((t != 0) & (t.abs() < torch.finfo(dtype).tiny)).sum()) == subnormals


@pytest.mark.parametrize("dtype", HALF)
def test_nan_encodings_are_cfqs_not_torchs_casts(dtype):
    """Where a NaN is cast, the bits are cfq's (NumPy's / ml_dtypes'), which
    torch's own .to() does not give: it makes every bfloat16 NaN 0xffff here
    and quiets float16's signalling NaNs."""
    xb = np.array([0x7F81, 0xFF81, 0x7FC1, 0x7C01, 0xFC01, 0x7E01, 0x0001, 0x8001, 0x3C00], np.uint16)
    ones = torch.ones(len(xb), dtype=dtype)
    assert_bits_equal(tbits(cfqt.fake_quant_with_min_max_vars(th(xb, dtype), 0.0, 0.0)),
                      np.zeros(len(xb), np.uint16), "pass-through forward: +0.0")
    # the gradient's pass-through (min == max == 0) copies g: cast(upcast(g))
    dx = cfqt.fake_quant_with_min_max_vars_gradient(th(xb, dtype), ones, 0.0, 0.0)[0]
    want = cast_bits(up(xb, dtype), dtype)
    assert_bits_equal(tbits(dx), want, "pass-through gradient")
    assert not np.array_equal(tbits(torch.from_numpy(up(xb, dtype)).to(dtype)), want)
    # inside the range: cast(g * 1.0f), the multiplication quiets NaNs
    dx = cfqt.fake_quant_with_min_max_vars_gradient(th(xb, dtype), ones, -1.0, 1.0)[0]
    want32 = cfq.fake_quant_with_min_max_vars_gradient(up(xb, dtype), np.ones(len(xb), np.float32), -1.0, 1.0)[0]
    assert_bits_equal(tbits(dx), cast_bits(want32, dtype), "gradient inside the range")

# ---------------------------------------------------------------------------
# torch.compile(fullgraph=True)


@pytest.mark.parametrize("dtype", HALF)
def test_compiled_ops_give_the_eager_bits(dtype):
    xb, gb = data((256, 256))
    lo, hi = channel_range(256, 3)

    def model(x1, mn, mx, x2, x3, cmn, cmx):
        return (cfqt.fake_quant_with_min_max_vars(x1, mn, mx, 5, True),
                cfqt.fake_quant_with_min_max_args(x2, -2.5, 3.0, 8, False),
                cfqt.fake_quant_with_min_max_vars_per_channel(x3, cmn, cmx, 7, False, axis=0))

    def run(fn):
        leaves = [th(xb, dtype, True), torch.tensor(-1.5, requires_grad=True), torch.tensor(2.0, requires_grad=True),
                  th(xb, dtype, True), th(xb, dtype, True), torch.from_numpy(lo).requires_grad_(),
                  torch.from_numpy(hi).requires_grad_()]
        ys = fn(*leaves)
        torch.autograd.backward(ys, [th(gb, dtype)] * 3)
        return [tbits(y) for y in ys] + [tbits(t.grad) for t in leaves]

    torch._dynamo.reset()
    eager = run(model)
    compiled = run(torch.compile(model, fullgraph=True))
    for k, (a, b) in enumerate(zip(eager, compiled)):
        assert a.dtype == b.dtype, k
        assert_bits_equal(b, a, f"compiled vs eager, result {k}")
    # and the eager bits are cfq's
    x32, g32 = up(xb, dtype), up(gb, dtype)
    assert_bits_equal(eager[0], cast_bits(cfq.fake_quant_with_min_max_vars(x32, -1.5, 2.0, 5, True), dtype))
    assert_bits_equal(eager[7], cast_bits(
        cfq.fake_quant_with_min_max_vars_per_channel_gradient(g32, x32, lo, hi, 7, axis=0)[0], dtype))


@pytest.mark.parametrize("dtype", HALF)
def test_compiled_gradient_and_region_ops(dtype):
    xb, gb = data((64, 1024))

    def fn(g, x):
        dx, dmin, dmax = cfqt.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 2.0)
        y, region = cfqt.fake_quant_with_min_max_args_and_region(x, -1.0, 2.0)
        return dx, dmin, dmax, y, cfqt.fake_quant_region_gradient(g, region)[0]

    torch._dynamo.reset()
    args = (th(gb, dtype), th(xb, dtype))
    eager, compiled = fn(*args), torch.compile(fn, fullgraph=True)(*args)
    for a, b in zip(eager, compiled):
        assert a.dtype == b.dtype
        assert_bits_equal(tbits(b), tbits(a))
    assert eager[0].dtype == dtype and eager[1].dtype == torch.float32

# ---------------------------------------------------------------------------
# The way in: no float32 copy; non-contiguous; bfloat16 without ml_dtypes


@pytest.mark.parametrize("dtype", HALF)
def test_half_tensors_reach_cfq_without_a_copy(dtype):
    t = torch.randn(3, 1000).to(dtype)
    a = cfqt._np(t)
    assert a.dtype == np_dtype(dtype) and a.ctypes.data == t.data_ptr()
    v = t.t()  # a strided view: still no copy (cfq makes it contiguous itself)
    assert cfqt._np(v).ctypes.data == t.data_ptr() and cfqt._np(v).shape == (1000, 3)
    y = cfqt.fake_quant_with_min_max_vars(v, -1.0, 1.0)
    assert_bits_equal(tbits(y), tbits(cfqt.fake_quant_with_min_max_vars(v.contiguous(), -1.0, 1.0)))


@NEEDS_ML_DTYPES
def test_bfloat16_without_ml_dtypes_in_a_fresh_interpreter():
    """With ml_dtypes not importable, cfq.torch computes bfloat16 as float32
    between the conversions (same bits as with it); importing cfq.torch
    never imports ml_dtypes."""
    xb, gb = data(step=3)
    code = f"""
import sys
sys.modules["ml_dtypes"] = None   # import ml_dtypes raises ImportError
sys.path.insert(0, {CFQ_PARENT!r})
import numpy as np, torch, cfq.torch as cfqt
bits = np.frombuffer(sys.stdin.buffer.read(), np.uint16)
xb, gb = bits[:len(bits) // 2], bits[len(bits) // 2:]
def th(b):
    return torch.from_numpy(b.view(np.int16).copy()).view(torch.bfloat16)
x = th(xb).requires_grad_()
lo = torch.tensor(-0.75, requires_grad=True)
y = cfqt.fake_quant_with_min_max_vars(x, lo, 0.5, 4, True)
y.backward(th(gb))
assert y.dtype == x.grad.dtype == torch.bfloat16 and cfqt._bf16_dtype is None
out = [y.detach().view(torch.int16).numpy(), x.grad.view(torch.int16).numpy(), lo.grad.reshape(1).numpy().view(np.int16)]
sys.stdout.buffer.write(b"".join(o.tobytes() for o in out))
"""
    r = subprocess.run([sys.executable, "-c", code], input=np.concatenate([xb, gb]).tobytes(),
                       capture_output=True, cwd=os.path.dirname(__file__))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    got = np.frombuffer(r.stdout, np.uint16)
    n = len(xb)
    x = th(xb, torch.bfloat16, True)
    lo = torch.tensor(-0.75, requires_grad=True)
    y = cfqt.fake_quant_with_min_max_vars(x, lo, 0.5, 4, True)
    y.backward(th(gb, torch.bfloat16))
    assert_bits_equal(got[:n], tbits(y), "outputs")
    assert_bits_equal(got[n:2 * n], tbits(x.grad), "input gradient")
    assert_bits_equal(got[2 * n:].view(np.uint32), tbits(lo.grad).reshape(1), "min gradient")


def test_importing_cfq_torch_does_not_import_ml_dtypes():
    code = ("import sys, cfq.torch; assert 'ml_dtypes' not in sys.modules, 'ml_dtypes imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": CFQ_PARENT})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


@NEEDS_ML_DTYPES
def test_bfloat16_rounding_without_ml_dtypes_is_ml_dtypes():
    """The fallback's float32 -> bfloat16 rounding, on every bfloat16 value
    with each kind of low half (ties, just above and below, NaN payloads)."""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    for low in (0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x4321):
        a = (hi | low).view(np.float32)
        with np.errstate(invalid="ignore"):
            want = a.astype(BFLOAT16).view(np.uint16)
        assert_bits_equal(cfqt._bfloat16_bits(a), want, f"low half {low:#x}")
    assert cfqt._bfloat16_bits(np.array(np.nan, np.float32)).shape == ()

# ---------------------------------------------------------------------------
# Mixed dtypes, min/max dtypes, saved bytes, opcheck


MIXED = [(torch.float32, torch.float16), (torch.float16, torch.float32), (torch.float16, torch.bfloat16),
         (torch.bfloat16, torch.float32), (torch.float64, torch.float16), (torch.bfloat16, torch.float64)]


@pytest.mark.parametrize("gdt,xdt", MIXED)
def test_mixed_dtypes_are_type_errors(gdt, xdt):
    g, x = torch.ones(6, 4, dtype=gdt), torch.zeros(6, 4, dtype=xdt)
    cm = torch.ones(4)
    msg = "gradients and inputs must have the same dtype when either is float16 or bfloat16"
    calls = [lambda: cfqt.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0),
             lambda: ops.fake_quant_with_min_max_vars_gradient(g, x, torch.tensor(-1.0), torch.tensor(1.0)),
             lambda: cfqt.fake_quant_with_min_max_vars_per_channel_gradient(g, x, -cm, cm),
             lambda: ops.fake_quant_with_min_max_vars_per_channel_gradient(g, x, -cm, cm),
             lambda: cfqt.fake_quant_with_min_max_args_gradient(g, x),
             lambda: ops.fake_quant_with_min_max_args_gradient(g, x)]
    for call in calls:
        with pytest.raises(TypeError, match=msg):
            call()
    # the fake kernels say the same, so tracing fails where running would
    gm, xm = g.to("meta"), x.to("meta")
    with pytest.raises(TypeError, match=msg):
        ops.fake_quant_with_min_max_vars_gradient(gm, xm, torch.tensor(-1.0, device="meta"),
                                                  torch.tensor(1.0, device="meta"))
    with pytest.raises(TypeError, match=msg):
        ops.fake_quant_with_min_max_args_gradient(gm, xm)
    with pytest.raises(Exception, match=msg):
        torch.compile(lambda a, b: cfqt.fake_quant_with_min_max_args_gradient(a, b), fullgraph=True)(g, x)


def test_float64_with_float32_still_pairs():
    """float64 is computed as float32, so it pairs with float32 (dx in the
    gradients' dtype), as before."""
    g, x = torch.linspace(-3, 3, 7, dtype=torch.float64), torch.linspace(-2, 2, 7)
    for gx, dtype in (((g, x), torch.float64), ((x, g), torch.float32)):
        dx = cfqt.fake_quant_with_min_max_args_gradient(*gx, -1.0, 1.0)
        want = cfq.fake_quant_with_min_max_args_gradient(gx[0].float().numpy(), gx[1].float().numpy(), -1.0, 1.0)
        assert dx.dtype == dtype and np.array_equal(dx.float().numpy(), want)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("path", PATHS)
def test_half_min_max_tensors(dtype, path):
    """min/max may be 16-bit tensors too: exact as float32 for cfq, and
    their gradients (cfq's float32 sums) come back in their dtype, cast by
    torch (finite data here: a NaN sum would take torch's NaN bits)."""
    rng = np.random.default_rng(8)
    x32 = rng.uniform(-6, 6, (256, 256)).astype(np.float32)
    xb = torch.from_numpy(x32).to(dtype).view(torch.int16).numpy().view(np.uint16)
    gb = torch.from_numpy(rng.standard_normal((256, 256)).astype(np.float32)).to(dtype).view(
        torch.int16).numpy().view(np.uint16)
    x32, g32 = up(xb, dtype), up(gb, dtype)
    lo, hi = channel_range(256, 9)
    lo16, hi16 = torch.from_numpy(lo).to(dtype), torch.from_numpy(hi).to(dtype)
    lo_up, hi_up = lo16.float().numpy(), hi16.float().numpy()
    mn, mx = lo16.clone().requires_grad_(), hi16.clone().requires_grad_()
    x = th(xb, dtype, True)
    if path == "fast":
        y = cfqt.fake_quant_with_min_max_vars_per_channel(x, mn, mx, axis=0)
    else:
        y = ops.fake_quant_with_min_max_vars_per_channel(x, mn, mx, 8, False, 0)
    y.backward(th(gb, dtype))
    want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g32, x32, lo_up, hi_up, axis=0)
    assert_16(y, cfq.fake_quant_with_min_max_vars_per_channel(x32, lo_up, hi_up, axis=0), dtype, "outputs")
    assert_16(x.grad, want[0], dtype, "dx")
    assert_16(mn.grad, want[1], dtype, "dmin")
    assert_16(mx.grad, want[2], dtype, "dmax")
    s_lo, s_hi = lo16[0].clone().requires_grad_(), hi16[0].clone().requires_grad_()
    x = th(xb, dtype, True)
    (cfqt.fake_quant_with_min_max_vars if path == "fast" else ops.fake_quant_with_min_max_vars)(
        x, s_lo, s_hi).backward(th(gb, dtype))
    want = cfq.fake_quant_with_min_max_vars_gradient(g32, x32, lo_up[0], hi_up[0])
    assert_16(s_lo.grad, want[1], dtype, "scalar dmin")


@pytest.mark.parametrize("dtype", HALF_ANY)
@pytest.mark.parametrize("path", PATHS)
def test_backward_keeps_one_byte_per_element(dtype, path):
    x = torch.randn(256, 256).to(dtype).requires_grad_()
    mn, mx = torch.tensor(-2.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    cm = torch.full((256,), 2.0, requires_grad=True)
    if path == "fast":
        calls = [lambda: cfqt.fake_quant_with_min_max_vars(x, mn, mx),
                 lambda: cfqt.fake_quant_with_min_max_args(x, -2.0, 2.0),
                 lambda: cfqt.fake_quant_with_min_max_vars_per_channel(x, -cm, cm, axis=0)]
    else:
        calls = [lambda: ops.fake_quant_with_min_max_vars(x, mn, mx),
                 lambda: ops.fake_quant_with_min_max_args(x, -2.0, 2.0),
                 lambda: ops.fake_quant_with_min_max_vars_per_channel(x, -cm, cm, 8, False, 0)]
    for call in calls:
        assert saved_bytes(call)[0] == x.numel()


def _opcheck_cases(dtype):
    xb, gb = data(step=2048)   # 32 patterns, specials among them
    x, g = th(xb.reshape(4, 8), dtype), th(gb.reshape(4, 8), dtype)
    lo, hi = torch.tensor(-1.0), torch.tensor(1.5)
    clo, chi = torch.full((8,), -1.0), torch.linspace(0.5, 2.0, 8)
    rlo, rhi = torch.full((4,), -1.0), torch.linspace(0.5, 2.0, 4)
    region = ops.fake_quant_with_min_max_vars_and_region(x, lo, hi)[1]
    pr = ops.fake_quant_with_min_max_vars_per_channel_and_region(x, rlo, rhi, 8, False, 0)[1]

    def rg(*ts):
        return tuple(t.clone().requires_grad_() for t in ts)

    return [
        ("fake_quant_with_min_max_vars", (*rg(x, lo, hi), 8, False)),
        ("fake_quant_with_min_max_vars_and_region", (*rg(x, lo, hi), 3, True)),
        ("fake_quant_region_gradient", (g, region)),
        ("fake_quant_with_min_max_vars_gradient", (g, x, lo, hi, 8, False)),
        ("fake_quant_with_min_max_vars_per_channel", (*rg(x, clo, chi), 8, False, -1)),
        ("fake_quant_with_min_max_vars_per_channel_and_region", (*rg(x, rlo, rhi), 4, True, 0)),
        ("fake_quant_per_channel_region_gradient", (g, pr, 0)),
        ("fake_quant_with_min_max_vars_per_channel_gradient", (g, x, clo, chi, 8, False, -1)),
        ("fake_quant_with_min_max_args", (*rg(x), -1.0, 1.5, 8, False)),
        ("_fake_quant_with_min_max_args_and_region", (*rg(x), -1.0, 1.5, 8, False)),
        ("fake_quant_with_min_max_args_and_region", (*rg(x), -1.0, 1.5, 8, False)),
        ("fake_quant_with_min_max_args_gradient", (g, x, -1.0, 1.5, 8, False)),
    ]


def test_opcheck_cases_cover_every_op():
    names = {n for n, _ in _opcheck_cases(torch.float16)}
    registered = {name.split("::")[1] for name in torch._C._dispatch_get_all_op_names() if name.startswith("cfq::")}
    assert names == registered


@pytest.mark.parametrize("dtype", HALF_ANY)
def test_opcheck(dtype):
    for name, args in _opcheck_cases(dtype):
        torch.library.opcheck(getattr(ops, name).default, args)

# ---------------------------------------------------------------------------
# FakeQuant in a half model


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("tracking", ["learned", "moving_average"])
def test_fake_quant_in_a_half_model(dtype, tracking):
    torch.manual_seed(0)
    act = cfqt.FakeQuant(8, tracking=tracking, init_min=-1.0, init_max=1.0)
    wq = cfqt.FakeQuant(4, True, tracking="last_value", symmetric=True, axis=0, channels=16)
    lin = torch.nn.Linear(8, 16)
    net = torch.nn.Sequential(lin, act).to(dtype)
    assert lin.weight.dtype == dtype and act.min.dtype == torch.float32
    x = torch.randn(32, 8).to(dtype)
    w = wq(lin.weight)
    assert w.dtype == dtype and wq.min.dtype == torch.float32
    h = torch.nn.functional.linear(x, w, lin.bias)
    lo, hi = (act.min, act.max) if tracking == "learned" else (None, None)
    y = net[1](h)
    assert y.dtype == dtype
    if tracking == "moving_average":
        lo, hi = act.min, act.max   # the range this batch updated, used for y
    want = cfq.fake_quant_with_min_max_vars(h.detach().float().numpy(), float(lo.detach()), float(hi.detach()))
    assert_16(y, want, dtype, "activations")
    y.float().square().sum().backward()
    assert lin.weight.grad.dtype == dtype
    if tracking == "learned":
        assert act.min.grad.dtype == torch.float32 and act.max.grad is not None
        g32 = (2 * y.detach().float()).to(dtype).float().numpy()
        want = cfq.fake_quant_with_min_max_vars_gradient(g32, h.detach().float().numpy(), -1.0, 1.0)
        assert_32(act.min.grad, want[1], "min gradient")
        assert_32(act.max.grad, want[2], "max gradient")
