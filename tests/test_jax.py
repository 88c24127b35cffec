"""cfq.jax: cfq's kernels as XLA custom calls, under jit, vjp, grad and vmap.

On cfq's golden TF 2.21 data, under jit(vjp): element outputs and input
gradients are TF's bits, min/max sums are cfq's NumPy API's bits.  jit(grad)
lowers to custom calls into cfq and no Python callback; vmap equals the loop
over examples bit for bit.  float16 and bfloat16 arrays reach the kernels as
they are (no convert in the program) and give, on every 16-bit pattern, the
float32 op's bits between the conversions.  Skipped without jax."""
import functools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import cfq  # noqa: E402
from cfq import jax as cj  # noqa: E402
from golden_io import load_cases  # noqa: E402
from support import HALF_DTYPES, assert_bits_equal, bits, downcast, half_patterns, upcast  # noqa: E402

VARS_GRAD = load_cases("vars_grad")
VARS = load_cases("vars")
ARGS = load_cases("args")
PER_CHANNEL = load_cases("per_channel")


def finite(case):
    return bool(np.all(np.isfinite(case["min"])) and np.all(np.isfinite(case["max"])))


def quant(case):
    return int(case["num_bits"]), bool(case["narrow_range"])


# ---------------------------------------------------------------------------
# jit(vjp) on the golden data


@functools.partial(jax.jit, static_argnums=(4, 5))
def vars_vjp(x, lo, hi, g, num_bits, narrow_range):
    y, back = jax.vjp(lambda x, lo, hi: cj.fake_quant_with_min_max_vars(x, lo, hi, num_bits, narrow_range),
                      x, lo, hi)
    return (y,) + back(g)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def per_channel_vjp(x, lo, hi, g, num_bits, narrow_range, axis):
    y, back = jax.vjp(lambda x, lo, hi: cj.fake_quant_with_min_max_vars_per_channel(
        x, lo, hi, num_bits, narrow_range, axis=axis), x, lo, hi)
    return (y,) + back(g)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def args_vjp(x, lo, hi, num_bits, narrow_range, g):
    y, back = jax.vjp(lambda x: cj.fake_quant_with_min_max_args(x, lo, hi, num_bits, narrow_range), x)
    return (y,) + back(g)


def test_vars_gradient_golden_under_jit_vjp():
    checked = 0
    for case in VARS_GRAD:
        if "error" in case or not finite(case):
            continue
        g, x, lo, hi = case["gradients"], case["inputs"], case["min"], case["max"]
        y, dx, dmin, dmax = vars_vjp(x, lo, hi, g, *quant(case))
        what = f"vars_grad case {case['id']}"
        want = cfq.fake_quant_with_min_max_vars_gradient(g, x, lo, hi, *quant(case))
        assert_bits_equal(dx, case["dx"], what + " dx (TF)")
        assert_bits_equal(dmin, want.backprop_wrt_min, what + " dmin (cfq)")
        assert_bits_equal(dmax, want.backprop_wrt_max, what + " dmax (cfq)")
        assert_bits_equal(y, cfq.fake_quant_with_min_max_vars(x, lo, hi, *quant(case)), what + " y")
        checked += 1
    assert checked >= 500


def test_vars_forward_golden_under_jit():
    fwd = jax.jit(cj.fake_quant_with_min_max_vars, static_argnums=(3, 4))
    checked = 0
    for case in VARS:
        if "error" in case or not finite(case):
            continue
        got = fwd(case["inputs"], case["min"], case["max"], *quant(case))
        assert_bits_equal(got, case["out"], f"vars case {case['id']}")
        checked += 1
    assert checked >= 500


def test_args_golden_under_jit_vjp():
    checked = 0
    for case in ARGS:
        kw = dict(min=float(case["min"]), max=float(case["max"]), num_bits=int(case["num_bits"]),
                  narrow_range=bool(case["narrow_range"]))
        if "error" in case or not finite(case):
            with pytest.raises((ValueError, TypeError)):
                cj.fake_quant_with_min_max_args(case["inputs"], **kw)
            with pytest.raises((ValueError, TypeError)):
                cj.fake_quant_with_min_max_args_gradient(case["gradients"], case["inputs"], **kw)
            continue
        y, dx = args_vjp(case["inputs"], kw["min"], kw["max"], kw["num_bits"], kw["narrow_range"],
                         case["gradients"])
        assert_bits_equal(y, case["out"], f"args case {case['id']}")
        assert_bits_equal(dx, case["dx"], f"args gradient case {case['id']}")
        direct = cj.fake_quant_with_min_max_args_gradient(case["gradients"], case["inputs"], **kw)
        assert_bits_equal(direct, case["dx"], f"args gradient function case {case['id']}")
        checked += 1
    assert checked >= 100


@pytest.mark.parametrize("axis", ["last", 0])
def test_per_channel_golden_under_jit_vjp(axis):
    checked = 0
    for case in PER_CHANNEL:
        if "error" in case or not finite(case):
            continue
        g, x, lo, hi = case["gradients"], case["inputs"], case["min"], case["max"]
        want_y, want_dx = case["out"], case["dx"]
        ax = -1
        if axis == 0:  # the same data with the channel axis moved to the front
            g, x, want_y, want_dx = (np.ascontiguousarray(np.moveaxis(a, -1, 0))
                                     for a in (g, x, want_y, want_dx))
            ax = 0
        y, dx, dmin, dmax = per_channel_vjp(x, lo, hi, g, *quant(case), ax)
        what = f"per-channel case {case['id']} axis {axis}"
        assert_bits_equal(y, want_y, what + " y (TF)")
        assert_bits_equal(dx, want_dx, what + " dx (TF)")
        want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, *quant(case), axis=ax)
        assert_bits_equal(dmin, want.backprop_wrt_min, what + " dmin (cfq)")
        assert_bits_equal(dmax, want.backprop_wrt_max, what + " dmax (cfq)")
        checked += 1
    assert checked >= 90


def test_gradient_functions_match_numpy_api():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(7, 33)).astype(np.float32)
    x = (rng.normal(size=(7, 33)) * 3).astype(np.float32)
    got = jax.jit(cj.fake_quant_with_min_max_vars_gradient, static_argnums=(4, 5))(g, x, -2.0, 2.5, 6, True)
    want = cfq.fake_quant_with_min_max_vars_gradient(g, x, -2.0, 2.5, 6, True)
    assert type(got).__name__ == "FakeQuantWithMinMaxVarsGradient"
    for a, b in zip(got, want):
        assert_bits_equal(a, b)
    lo, hi = np.linspace(-3, -1, 7).astype(np.float32), np.linspace(1, 3, 7).astype(np.float32)
    got = cj.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, axis=0)
    want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, lo, hi, axis=0)
    for a, b in zip(got, want):
        assert_bits_equal(a, b)


def test_grad_of_a_loss_is_tf_gradient():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(4096,)) * 3).astype(np.float32)
    w = rng.normal(size=(4096,)).astype(np.float32)

    def loss(x, lo, hi):
        return jnp.sum(cj.fake_quant_with_min_max_vars(x, lo, hi) * w)

    dx, dlo, dhi = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, -2.0, 2.5)
    want = cfq.fake_quant_with_min_max_vars_gradient(w, x, -2.0, 2.5)
    assert_bits_equal(dx, want.backprops_wrt_input)
    assert_bits_equal(dlo, want.backprop_wrt_min)
    assert_bits_equal(dhi, want.backprop_wrt_max)


# ---------------------------------------------------------------------------
# The lowering: custom calls into cfq, no Python callback


def test_jit_grad_lowers_to_cfq_custom_calls_without_callbacks():
    x = np.linspace(-4, 4, 1000, dtype=np.float32)
    c = np.linspace(-1, 1, 64, dtype=np.float32)
    w = np.ones((10, 64), np.float32)
    losses = {
        "cfq_fq_vars_grad": (lambda x, lo, hi: jnp.sum(cj.fake_quant_with_min_max_vars(x, lo, hi) ** 2),
                             (x, -2.0, 2.0)),
        "cfq_fq_per_channel_grad": (lambda w, lo, hi: jnp.sum(
            cj.fake_quant_with_min_max_vars_per_channel(w, lo, hi) ** 2), (w, c - 2, c + 2)),
        "cfq_fq_args_grad": (lambda x: jnp.sum(cj.fake_quant_with_min_max_args(x) ** 2), (x,)),
    }
    for target, (loss, args) in losses.items():
        argnums = tuple(range(len(args)))
        text = jax.jit(jax.grad(loss, argnums=argnums)).lower(*args).as_text()
        assert f"custom_call @{target}(" in text, text
        forward = target[:-len("_grad")]
        assert f"custom_call @{forward}(" in text, text  # the squared loss needs the forward
        assert "callback" not in " ".join(line for line in text.splitlines() if "custom_call" in line)
        assert all(name.startswith("@cfq_") for name in
                   (line.split("custom_call ")[1].split("(")[0] for line in text.splitlines()
                    if "custom_call @" in line)), text
        # And compiled: the executable still calls cfq, and no host callback.
        hlo = jax.jit(jax.grad(loss, argnums=argnums)).lower(*args).compile().as_text()
        targets = {line.split('custom_call_target="')[1].split('"')[0]
                   for line in hlo.splitlines() if 'custom_call_target="' in line}
        assert target in targets and all(t.startswith("cfq_fq_") for t in targets), targets


# ---------------------------------------------------------------------------
# vmap: equal to the loop over examples, bit for bit


def vars_vjp_one(x, g, lo, hi):
    y, back = jax.vjp(lambda x, lo, hi: cj.fake_quant_with_min_max_vars(x, lo, hi, 5, False), x, lo, hi)
    return (y,) + back(g)


def per_channel_vjp_one(x, g, lo, hi, axis):
    y, back = jax.vjp(lambda x, lo, hi: cj.fake_quant_with_min_max_vars_per_channel(
        x, lo, hi, 7, True, axis=axis), x, lo, hi)
    return (y,) + back(g)


def loop_vars(xs, gs, los, his):
    out = [[], [], [], []]
    for i in range(xs.shape[0]):
        lo = los if np.ndim(los) == 0 else los[i]
        hi = his if np.ndim(his) == 0 else his[i]
        x = xs[i]
        r = cfq.fake_quant_with_min_max_vars_gradient(gs[i], x, lo, hi, 5, False)
        out[0].append(cfq.fake_quant_with_min_max_vars(x, lo, hi, 5, False))
        for k in range(3):
            out[k + 1].append(r[k])
    return [np.stack(o) for o in out]


@pytest.mark.parametrize("size", [1, 7, 300, 20000])
@pytest.mark.parametrize("per_example", [False, True])
def test_vmap_vars_equals_loop(size, per_example):
    rng = np.random.default_rng(size)
    B = 6
    xs = (rng.normal(size=(B, size)) * 3).astype(np.float32)
    gs = rng.normal(size=(B, size)).astype(np.float32)
    gs[0, 0] = -0.0
    if per_example:
        los, his = np.linspace(-3, -0.5, B).astype(np.float32), np.linspace(0.5, 3, B).astype(np.float32)
        los[2], his[2] = 0.0, 0.0  # a pass-through example in the batch
        in_axes = (0, 0, 0, 0)
    else:
        los, his = np.float32(-2.0), np.float32(2.5)
        in_axes = (0, 0, None, None)
    fn = jax.jit(jax.vmap(vars_vjp_one, in_axes))
    got = fn(xs, gs, los, his)
    want = loop_vars(xs, gs, los, his)
    for k, name in enumerate(("y", "dx", "dmin", "dmax")):
        assert_bits_equal(got[k], want[k], f"{name} size {size} per_example {per_example}")
    # One custom call per direction: vmap did not become a loop in the program.
    text = fn.lower(xs, gs, los, his).as_text()
    assert text.count("custom_call @cfq_fq_vars(") == 1
    assert text.count("custom_call @cfq_fq_vars_grad(") == 1
    assert "while" not in text


def test_vmap_mixed_batching_equals_loop():
    rng = np.random.default_rng(5)
    xs = (rng.normal(size=(3, 4, 50)) * 3).astype(np.float32)
    gs = rng.normal(size=(3, 4, 50)).astype(np.float32)
    los = np.linspace(-3, -1, 3).astype(np.float32)
    # Outer vmap: per-example min; inner vmap: shared min, batched x.
    got = jax.jit(jax.vmap(jax.vmap(vars_vjp_one, (0, 0, None, None)), (0, 0, 0, None)))(xs, gs, los, 2.0)
    for i in range(3):
        for j in range(4):
            r = cfq.fake_quant_with_min_max_vars_gradient(gs[i, j], xs[i, j], los[i], 2.0, 5, False)
            y = cfq.fake_quant_with_min_max_vars(xs[i, j], los[i], 2.0, 5, False)
            for k, want in enumerate((y,) + tuple(r)):
                assert_bits_equal(got[k][i, j], want, f"[{i},{j}] output {k}")
    # Shared inputs, per-example range (a range sweep).
    his = np.linspace(1, 3, 3).astype(np.float32)
    got = jax.jit(jax.vmap(vars_vjp_one, (None, 0, 0, 0)))(xs[0, 0], gs[:, 0], los, his)
    for i in range(3):
        r = cfq.fake_quant_with_min_max_vars_gradient(gs[i, 0], xs[0, 0], los[i], his[i], 5, False)
        for k in range(3):
            assert_bits_equal(got[k + 1][i], r[k])
    # Shared gradients (unbatched cotangent), batched inputs.
    got = jax.jit(jax.vmap(vars_vjp_one, (0, None, None, None)))(xs[0], gs[0, 0], -1.0, 1.0)
    for i in range(4):
        r = cfq.fake_quant_with_min_max_vars_gradient(gs[0, 0], xs[0, i], -1.0, 1.0, 5, False)
        for k in range(3):
            assert_bits_equal(got[k + 1][i], r[k])


def test_grad_of_vmapped_loss_sums_per_example_gradients():
    rng = np.random.default_rng(6)
    xs = (rng.normal(size=(5, 40)) * 3).astype(np.float32)
    gs = rng.normal(size=(5, 40)).astype(np.float32)

    def loss(lo):
        return jnp.sum(jax.vmap(lambda x: cj.fake_quant_with_min_max_vars(x, lo, 2.5))(xs) * gs)

    got = jax.jit(jax.grad(loss))(-2.0)
    per_example = [cfq.fake_quant_with_min_max_vars_gradient(gs[i], xs[i], -2.0, 2.5).backprop_wrt_min
                   for i in range(5)]
    np.testing.assert_allclose(got, np.sum(per_example), rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("per_example", [False, True])
def test_vmap_per_channel_equals_loop(axis, per_example):
    rng = np.random.default_rng(7)
    B, shape = 4, (3, 5, 6)
    C = shape[axis]
    xs = (rng.normal(size=(B,) + shape) * 2).astype(np.float32)
    gs = rng.normal(size=(B,) + shape).astype(np.float32)
    if per_example:
        los = -rng.uniform(0.5, 3, size=(B, C)).astype(np.float32)
        his = rng.uniform(0.5, 3, size=(B, C)).astype(np.float32)
        in_axes = (0, 0, 0, 0)
    else:
        los = -rng.uniform(0.5, 3, size=C).astype(np.float32)
        his = rng.uniform(0.5, 3, size=C).astype(np.float32)
        in_axes = (0, 0, None, None)
    fn = jax.jit(jax.vmap(functools.partial(per_channel_vjp_one, axis=axis), in_axes))
    got = fn(xs, gs, los, his)
    for i in range(B):
        lo, hi = (los[i], his[i]) if per_example else (los, his)
        y = cfq.fake_quant_with_min_max_vars_per_channel(xs[i], lo, hi, 7, True, axis=axis)
        r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(gs[i], xs[i], lo, hi, 7, True, axis=axis)
        for k, want in enumerate((y,) + tuple(r)):
            assert_bits_equal(got[k][i], want, f"example {i} output {k}")
    assert "while" not in fn.lower(xs, gs, los, his).as_text()


def test_vmap_args_equals_loop():
    rng = np.random.default_rng(8)
    xs = (rng.normal(size=(4, 100)) * 5).astype(np.float32)
    gs = rng.normal(size=(4, 100)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda x, g: jax.vjp(lambda x: cj.fake_quant_with_min_max_args(x, -3.0, 4.0, 4),
                                              x)[1](g)[0], (0, None)))
    got = f(xs, gs[0])
    for i in range(4):
        assert_bits_equal(got[i], cfq.fake_quant_with_min_max_args_gradient(gs[0], xs[i], -3.0, 4.0, 4))


# ---------------------------------------------------------------------------
# dtypes


# float16 and bfloat16 go to cfq's kernels as they are.  What they must give:
# every element result downcast(float32 op(upcast(x)), dtype) (upcast exact;
# cast to nearest even as NumPy / ml_dtypes convert), the sums the float32
# op's on the upcast values, bit for bit.  The inputs are every 16-bit
# pattern (NaNs, +-Inf, -0.0, the subnormals), the gradients every pattern
# in another order.

# A wide range, and a tiny one whose outputs are float16 subnormals.
RANGES = [pytest.param((-2.0, 2.5, 8, False), id="wide"),
          pytest.param((-3e-5, 5e-5, 8, True), id="tiny")]


def want_vars(g, x, lo, hi, num_bits, narrow_range):
    """(y, dx, dmin, dmax) of the float32 ops between the conversions."""
    dt = x.dtype
    y = cfq.fake_quant_with_min_max_vars(upcast(x), lo, hi, num_bits, narrow_range)
    r = cfq.fake_quant_with_min_max_vars_gradient(upcast(g), upcast(x), lo, hi, num_bits, narrow_range)
    return downcast(y, dt), downcast(r[0], dt), r[1], r[2]


def want_per_channel(g, x, lo, hi, num_bits, narrow_range, axis):
    dt = x.dtype
    y = cfq.fake_quant_with_min_max_vars_per_channel(upcast(x), lo, hi, num_bits, narrow_range, axis=axis)
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(upcast(g), upcast(x), lo, hi, num_bits,
                                                              narrow_range, axis=axis)
    return downcast(y, dt), downcast(r[0], dt), r[1], r[2]


def want_args(g, x, lo, hi, num_bits, narrow_range):
    dt = x.dtype
    return (downcast(cfq.fake_quant_with_min_max_args(upcast(x), lo, hi, num_bits, narrow_range), dt),
            downcast(cfq.fake_quant_with_min_max_args_gradient(upcast(g), upcast(x), lo, hi, num_bits,
                                                           narrow_range), dt))


def assert_all_bits(got, want, what):
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        assert_bits_equal(np.asarray(a), np.asarray(b), f"{what} result {k}")


def channel_range(C, q):
    """Per-channel min/max around the range q, one pass-through channel."""
    lo = np.linspace(1.5, 0.5, C).astype(np.float32) * np.float32(q[0])
    hi = np.linspace(0.5, 1.5, C).astype(np.float32) * np.float32(q[1])
    lo[C // 3], hi[C // 3] = 0.0, 0.0
    return lo, hi


@pytest.mark.parametrize("q", RANGES)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_vars_every_pattern_under_jit_vjp(dtype, q):
    x, g = half_patterns(dtype), half_patterns(dtype, seed=1)
    lo, hi, num_bits, narrow_range = q
    got = vars_vjp(x, np.float32(lo), np.float32(hi), g, num_bits, narrow_range)
    assert [a.dtype for a in got] == [dtype, dtype, np.float32, np.float32]
    assert_all_bits(got, want_vars(g, x, lo, hi, num_bits, narrow_range), "vars")
    # The gradient function, under jit.
    fn = jax.jit(cj.fake_quant_with_min_max_vars_gradient, static_argnums=(4, 5))
    assert_all_bits(fn(g, x, lo, hi, num_bits, narrow_range),
                    want_vars(g, x, lo, hi, num_bits, narrow_range)[1:], "vars gradient function")


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("q", RANGES)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_per_channel_every_pattern_under_jit_vjp(dtype, q, axis):
    x, g = half_patterns(dtype).reshape(512, 128), half_patterns(dtype, seed=2).reshape(512, 128)
    lo, hi = channel_range(x.shape[axis], q)
    num_bits, narrow_range = q[2], q[3]
    got = per_channel_vjp(x, lo, hi, g, num_bits, narrow_range, axis)
    assert [a.dtype for a in got] == [dtype, dtype, np.float32, np.float32]
    want = want_per_channel(g, x, lo, hi, num_bits, narrow_range, axis)
    assert_all_bits(got, want, f"per channel axis {axis}")
    fn = jax.jit(functools.partial(cj.fake_quant_with_min_max_vars_per_channel_gradient, axis=axis),
                 static_argnums=(4, 5))
    assert_all_bits(fn(g, x, lo, hi, num_bits, narrow_range), want[1:], "per-channel gradient function")


@pytest.mark.parametrize("q", RANGES)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_args_every_pattern_under_jit_vjp(dtype, q):
    x, g = half_patterns(dtype), half_patterns(dtype, seed=3)
    lo, hi, num_bits, narrow_range = q
    got = args_vjp(x, lo, hi, num_bits, narrow_range, g)
    assert [a.dtype for a in got] == [dtype, dtype]
    want = want_args(g, x, lo, hi, num_bits, narrow_range)
    assert_all_bits(got, want, "args")
    fn = jax.jit(cj.fake_quant_with_min_max_args_gradient, static_argnums=(2, 3, 4, 5))
    assert_bits_equal(fn(g, x, lo, hi, num_bits, narrow_range), want[1], "args gradient function")


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_grad_of_a_loss(dtype):
    """jax.grad with respect to half inputs and float32 min/max: dx in the
    inputs' dtype, the min/max cotangents float32 (the primals' dtype)."""
    x = half_patterns(dtype)
    w = half_patterns(dtype, seed=4)
    # w reaches the op as its cotangent through the loss's casts and XLA's
    # arithmetic, which keep normal numbers but not always NaN payloads,
    # -0.0 or float32 denormals (bfloat16's subnormals): with jax 0.5 they
    # arrive as +0.0.  Those patterns are the vjp tests' job.
    w = np.where(np.isnan(upcast(w)) | (np.abs(upcast(w)) < np.finfo(np.float32).tiny),
                 np.zeros((), dtype), w)
    w32 = upcast(w)
    lo, hi = np.float32(-2.0), np.float32(2.5)
    c = np.linspace(-1, 1, 128, dtype=np.float32)
    losses = {
        "vars": (lambda x, lo, hi: jnp.vdot(cj.fake_quant_with_min_max_vars(x, lo, hi).astype(jnp.float32),
                                            w32), (x, lo, hi)),
        "per_channel": (lambda x, lo, hi: jnp.vdot(cj.fake_quant_with_min_max_vars_per_channel(
            x.reshape(512, 128), lo, hi).astype(jnp.float32).ravel(), w32), (x, c - 2, c + 2)),
        "args": (lambda x: jnp.vdot(cj.fake_quant_with_min_max_args(x, -2.0, 2.5).astype(jnp.float32),
                                    w32), (x,)),
    }
    for name, (loss, args) in losses.items():
        got = jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))(*args)
        if name == "vars":
            want = want_vars(w, x, lo, hi, 8, False)[1:]
        elif name == "per_channel":
            want = want_per_channel(w.reshape(512, 128), x.reshape(512, 128), c - 2, c + 2, 8, False, -1)
            want = (want[1].ravel(),) + want[2:]
        else:
            want = want_args(w, x, -2.0, 2.5, 8, False)[1:]
        assert got[0].dtype == dtype and all(d.dtype == np.float32 for d in got[1:]), name
        assert_all_bits(got, want, name + " grad")


@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_vmap_equals_loop(dtype, per_example):
    B = 16
    xs, gs = half_patterns(dtype).reshape(B, -1), half_patterns(dtype, seed=5).reshape(B, -1)
    if per_example:
        los = np.linspace(-3, -1e-4, B).astype(np.float32)
        his = np.linspace(1e-4, 3, B).astype(np.float32)
        los[3], his[3] = 0.0, 0.0  # a pass-through example
        axes = (0, 0, 0, 0)
    else:
        los, his = np.float32(-2.0), np.float32(2.5)
        axes = (0, 0, None, None)
    lo_i = (lambda i: los[i]) if per_example else (lambda i: los)
    hi_i = (lambda i: his[i]) if per_example else (lambda i: his)
    got = jax.jit(jax.vmap(vars_vjp_one, axes))(xs, gs, los, his)
    for i in range(B):
        want = want_vars(gs[i], xs[i], lo_i(i), hi_i(i), 5, False)
        assert_all_bits([a[i] for a in got], want, f"vars example {i}")
    # Per channel, channels on axis 0 of each (64, 64) example.
    xc, gc = xs.reshape(B, 64, 64), gs.reshape(B, 64, 64)
    if per_example:
        lc = np.stack([channel_range(64, (-1 - i / 8, 1 + i / 8))[0] for i in range(B)])
        hc = np.stack([channel_range(64, (-1 - i / 8, 1 + i / 8))[1] for i in range(B)])
    else:
        lc, hc = channel_range(64, (-2.0, 2.5))
    got = jax.jit(jax.vmap(functools.partial(per_channel_vjp_one, axis=0), axes))(xc, gc, lc, hc)
    for i in range(B):
        lo, hi = (lc[i], hc[i]) if per_example else (lc, hc)
        want = want_per_channel(gc[i], xc[i], lo, hi, 7, True, 0)
        assert_all_bits([a[i] for a in got], want, f"per-channel example {i}")
    # Args: batched inputs, one shared cotangent.
    f = jax.jit(jax.vmap(lambda x, g: jax.vjp(lambda x: cj.fake_quant_with_min_max_args(x, -3.0, 4.0, 4),
                                              x)[1](g)[0], (0, None)))
    got = f(xs, gs[0])
    for i in range(B):
        assert_bits_equal(got[i], want_args(gs[0], xs[i], -3.0, 4.0, 4, False)[1], f"args example {i}")


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_lowering_has_the_custom_calls_on_half_buffers_and_no_convert(dtype):
    x, g = half_patterns(dtype)[:1024], half_patterns(dtype, seed=6)[:1024]
    lo, hi = np.float32(-1.0), np.float32(1.0)
    w, c = x.reshape(8, 128), np.linspace(-2, -1, 128, dtype=np.float32)
    name = {np.dtype(jnp.float16): "f16", np.dtype(jnp.bfloat16): "bf16"}[dtype]
    programs = {
        "cfq_fq_vars": (lambda x, lo, hi, g: vars_vjp(x, lo, hi, g, 8, False), (x, lo, hi, g)),
        "cfq_fq_per_channel": (lambda w, lo, hi, g: per_channel_vjp(w, lo, hi, g, 8, False, 1),
                               (w, c, c + 3, g.reshape(8, 128))),
        "cfq_fq_args": (lambda x, g: args_vjp(x, -1.0, 1.0, 8, False, g), (x, g)),
    }
    for target, (fn, args) in programs.items():
        lowered = jax.jit(fn).lower(*args)
        text = lowered.as_text()
        calls = [line for line in text.splitlines() if "custom_call @" in line]
        for t in (target, target + "_grad"):
            line = [c for c in calls if f"custom_call @{t}(" in c]
            assert len(line) == 1, text
            operand_types = line[0].rsplit(" : (", 1)[1].split(") -> ")[0].split(", ")
            # the element operands half, min/max float32 (scalars or vectors)
            half = [o for o in operand_types if o.endswith(f"x{name}>")]
            assert len(half) == (2 if t.endswith("_grad") else 1), line[0]
            assert all(o in half or o == "tensor<f32>" or o == "tensor<128xf32>"
                       for o in operand_types), line[0]
        assert "stablehlo.convert" not in text, text
        hlo = lowered.compile().as_text()
        assert not [line for line in hlo.splitlines() if " convert(" in line], hlo
        assert f'custom_call_target="{target}"' in hlo and f"{name}[" in hlo


def test_half_mixed_with_other_dtypes_is_cfq_type_error():
    h, b, f = jnp.zeros(4, jnp.float16), jnp.zeros(4, jnp.bfloat16), jnp.zeros(4, jnp.float32)
    for g, x in ((h, b), (b, h), (h, f), (f, b)):
        with pytest.raises(TypeError, match="gradients and inputs must have the same dtype"):
            cj.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0)
        with pytest.raises(TypeError, match="gradients and inputs must have the same dtype"):
            cj.fake_quant_with_min_max_vars_per_channel_gradient(g, x, jnp.zeros(4), jnp.ones(4))
        with pytest.raises(TypeError, match="gradients and inputs must have the same dtype"):
            cj.fake_quant_with_min_max_args_gradient(g, x)


def test_float64_under_x64_is_computed_in_float32():
    import jax.experimental
    # jax 0.10: jax.enable_x64; jax 0.5: jax.experimental.enable_x64
    enable_x64 = getattr(jax.experimental, "enable_x64", None)
    if enable_x64 is None:
        enable_x64 = jax.enable_x64
    x = np.linspace(-4, 4, 1001)
    g = np.cos(x)
    with enable_x64(True):
        y, back = jax.vjp(lambda x, lo, hi: cj.fake_quant_with_min_max_vars(x, lo, hi), x,
                          np.float32(-2.0), np.float32(2.5))
        dx, dmin, dmax = back(g)
        assert y.dtype == np.float64 and dx.dtype == np.float64 and dmin.dtype == np.float32
        want = cfq.fake_quant_with_min_max_vars_gradient(g.astype(np.float32), x.astype(np.float32),
                                                         -2.0, 2.5)
        assert_bits_equal(y, cfq.fake_quant_with_min_max_vars(x.astype(np.float32), -2.0, 2.5))
        assert np.array_equal(np.asarray(y), cfq.fake_quant_with_min_max_vars(
            x.astype(np.float32), -2.0, 2.5).astype(np.float64))
        assert np.array_equal(np.asarray(dx), want[0].astype(np.float64))
        assert_bits_equal(dmin, want[1])
        assert_bits_equal(dmax, want[2])


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
def test_non_float_inputs_are_type_errors(dtype):
    x = jnp.zeros(4, dtype)
    with pytest.raises(TypeError, match="inputs must have a floating-point dtype"):
        cj.fake_quant_with_min_max_vars(x, -1.0, 1.0)
    with pytest.raises(TypeError, match="inputs must have a floating-point dtype"):
        cj.fake_quant_with_min_max_args(x)
    with pytest.raises(TypeError, match="inputs must have a floating-point dtype"):
        cj.fake_quant_with_min_max_vars_per_channel(x, jnp.zeros(4), jnp.ones(4))
    with pytest.raises(TypeError, match="gradients must have a floating-point dtype"):
        cj.fake_quant_with_min_max_vars_gradient(x, jnp.zeros(4), -1.0, 1.0)


# ---------------------------------------------------------------------------
# Bad input: clear errors at trace time, with cfq's messages


def test_bad_arguments_raise_cfq_errors():
    x = jnp.zeros((4, 3), jnp.float32)
    with pytest.raises(ValueError, match=r"min must be a scalar \(shape \(\)\), got shape \(2,\)"):
        cj.fake_quant_with_min_max_vars(x, jnp.zeros(2), 1.0)
    with pytest.raises(ValueError, match="num_bits must be between 2 and 16"):
        cj.fake_quant_with_min_max_vars(x, -1.0, 1.0, num_bits=17)
    with pytest.raises(TypeError, match="num_bits must be an int"):
        cj.fake_quant_with_min_max_vars(x, -1.0, 1.0, num_bits=8.0)
    with pytest.raises(TypeError, match="narrow_range must be a bool"):
        cj.fake_quant_with_min_max_vars(x, -1.0, 1.0, narrow_range=1)
    with pytest.raises(ValueError, match="min must be finite"):
        cj.fake_quant_with_min_max_vars(x, np.nan, 1.0)
    with pytest.raises(ValueError, match="max must be finite"):
        cj.fake_quant_with_min_max_vars_gradient(x, x, -1.0, np.inf)
    with pytest.raises(TypeError, match="min must hold real numbers"):
        cj.fake_quant_with_min_max_vars(x, jnp.zeros((), jnp.complex64), 1.0)
    with pytest.raises(ValueError, match="gradients and inputs must have the same shape"):
        cj.fake_quant_with_min_max_vars_gradient(jnp.zeros(3), x, -1.0, 1.0)
    with pytest.raises(ValueError, match="gradients and inputs must have the same shape"):
        cj.fake_quant_with_min_max_args_gradient(jnp.zeros(3), x)
    # per channel: rank, axis, channel counts
    with pytest.raises(ValueError, match="axis 2 is out of range for inputs of rank 2"):
        cj.fake_quant_with_min_max_vars_per_channel(x, jnp.zeros(3), jnp.ones(3), axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        cj.fake_quant_with_min_max_vars_per_channel(x, jnp.zeros(3), jnp.ones(3), axis=1.0)
    with pytest.raises(ValueError, match="min has incorrect size, expected 4 was 3"):
        cj.fake_quant_with_min_max_vars_per_channel(x, jnp.zeros(3), jnp.ones(3), axis=0)
    with pytest.raises(ValueError, match=r"max must be rank 1"):
        cj.fake_quant_with_min_max_vars_per_channel(x, jnp.zeros(3), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="inputs must have rank >= 1"):
        cj.fake_quant_with_min_max_vars_per_channel(jnp.float32(1), jnp.zeros(1), jnp.ones(1))
    with pytest.raises(ValueError, match=r"min\[1\] must be finite"):
        cj.fake_quant_with_min_max_vars_per_channel(x, np.array([0, np.nan, 0], np.float32), jnp.ones(3))
    # args: min < max, attributes not traced
    with pytest.raises(ValueError, match="min must be smaller than max"):
        cj.fake_quant_with_min_max_args(x, 1.0, 1.0)
    with pytest.raises(TypeError, match="attribute"):
        jax.jit(lambda x, lo: cj.fake_quant_with_min_max_args(x, lo, 1.0))(x, -1.0)


def test_traced_checks_at_trace_time():
    x = jnp.zeros((4, 3), jnp.float32)
    f = jax.jit(lambda x, lo, hi: cj.fake_quant_with_min_max_vars(x, lo, hi))
    with pytest.raises(ValueError, match=r"min must be a scalar \(shape \(\)\), got shape \(3,\)"):
        f(x, jnp.zeros(3), 1.0)
    g = jax.jit(lambda x, lo, hi: cj.fake_quant_with_min_max_vars_per_channel(x, lo, hi, axis=0))
    with pytest.raises(ValueError, match="min has incorrect size, expected 4 was 3"):
        g(x, jnp.zeros(3), jnp.ones(3))


def test_nonfinite_traced_range_is_a_runtime_error_with_cfq_message():
    x = jnp.linspace(-1, 1, 16)
    f = jax.jit(lambda x, lo: cj.fake_quant_with_min_max_vars(x, lo, 1.0))
    with pytest.raises(Exception, match="min and max must be finite"):
        jax.block_until_ready(f(x, jnp.float32(np.nan)))
    g = jax.jit(jax.grad(lambda x, lo: jnp.sum(cj.fake_quant_with_min_max_vars(x, lo, 1.0))))
    with pytest.raises(Exception, match="min and max must be finite"):
        jax.block_until_ready(g(x, jnp.float32(np.inf)))
    # In a vmapped batch, the message names the example.
    h = jax.jit(jax.vmap(lambda x, lo: cj.fake_quant_with_min_max_vars(x, lo, 1.0)))
    with pytest.raises(Exception, match=r"min and max must be finite \(batch element 1\)"):
        jax.block_until_ready(h(jnp.zeros((3, 4)), jnp.array([0.0, np.nan, 0.0], jnp.float32)))


def test_other_platforms_are_refused(monkeypatch):
    x = jnp.zeros(4, jnp.float32)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with pytest.raises(ValueError, match="cfq.jax runs on the CPU only.*gpu"):
        jax.jit(lambda x: cj.fake_quant_with_min_max_vars(x, -1.0, 1.0))(x + 1)
    monkeypatch.setattr(cj, "_platforms", lambda *a: {"tpu"})
    for call in (lambda: cj.fake_quant_with_min_max_vars(x, -1.0, 1.0),
                 lambda: cj.fake_quant_with_min_max_args(x),
                 lambda: cj.fake_quant_with_min_max_vars_per_channel(x, jnp.zeros(4), jnp.ones(4)),
                 lambda: cj.fake_quant_with_min_max_vars_gradient(x, x, -1.0, 1.0)):
        with pytest.raises(ValueError, match="cfq.jax runs on the CPU only.*tpu"):
            call()


def test_concrete_cpu_arrays_pass_the_platform_check():
    x = jax.device_put(jnp.zeros(4, jnp.float32), jax.devices("cpu")[0])
    assert cj._platforms(x) == {"cpu"}


def test_importing_cfq_does_not_import_jax():
    import subprocess
    import sys
    code = "import sys, cfq; cfq.fake_quant_with_min_max_vars([1.0], -1, 1); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
