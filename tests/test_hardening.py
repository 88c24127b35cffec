"""Hardening: fuzzing the whole public API with hypothesis (any call either
raises ValueError/TypeError with a message, or returns exactly the NumPy
model's answer; `make fuzz` runs these with the "fuzz" hypothesis profile
of conftest.py, 20000 examples per test), thread stress, leaks, and TF's
crash reports replayed as clean errors."""
import os
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cfq
import model
from support import assert_bits_equal, element_dtype, is_half

SPECIAL = [0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan, 3e38, -3e38, 3.4028235e38]
scalars = st.one_of(
    st.floats(-10, 10), st.sampled_from(SPECIAL), st.integers(-5, 5),
    st.sampled_from([True, None, "1", 1j, [1.0], [[0.5]], (), np.float64(2.0), np.float16(-1.0),
                     np.int8(3), np.array(1.5), np.array([1.0, 2.0]), object(), 10 ** 400]))
num_bits = st.one_of(st.integers(-2, 20), st.sampled_from([8.0, True, "8", None, np.int64(8), np.uint8(4)]))
narrow = st.sampled_from([False, True, np.bool_(True), 0, 1, None, "no"])
dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, np.int64,
                          np.complex64, np.bool_, object, "U3", ">f4"])


def arrays(shape):
    return st.one_of(
        hnp.arrays(np.float32, shape, elements=st.one_of(st.floats(width=32), st.sampled_from(SPECIAL))),
        dtypes.flatmap(lambda dt: hnp.arrays(dt, shape) if dt is not object else
                       st.just(np.full(shape, None, dtype=object))),
    )


@st.composite
def layout(draw, a):
    """A view of `a` with other strides or offsets, or `a` itself, or a list."""
    kind = draw(st.sampled_from(["same", "reversed", "strided", "offset", "list", "transposed"]))
    if kind == "reversed" and a.ndim:
        return a[::-1].copy()[::-1]
    if kind == "strided" and a.ndim:
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    if kind == "offset" and a.dtype == np.float32:
        buf = np.zeros(a.size + 1, np.float32)
        view = buf[1:].reshape(a.shape)
        view[...] = a
        return view
    if kind == "list" and a.dtype.kind == "f" and a.size < 50:
        return a.tolist()
    if kind == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(a.T).T
    return a


def as_model_input(v):
    with np.errstate(over="ignore"):  # huge float64 -> inf, as cfq and TF do
        return np.asarray(v, dtype=np.float32)


def in_dtype_of(v, result):
    """The float32 model's result as cfq returns it for inputs v: narrowed
    to v's dtype where that is float16 or bfloat16 (cfq's definition)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(result, np.float32).astype(element_dtype(v))


def same_element_dtype(a, b):
    """Gradients and inputs cfq accepts together: one dtype where either is
    16-bit (other real dtypes are both converted to float32)."""
    return not (is_half(a) or is_half(b)) or element_dtype(a) == element_dtype(b)


def check_or_error(call, want):
    """Runs call(); an exception must be ValueError/TypeError with a message;
    otherwise the result must equal want() bit for bit."""
    try:
        got = call()
    except (ValueError, TypeError) as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        return None
    return got


def valid_scalar(v):
    if isinstance(v, (bool, np.bool_, str, complex)) or v is None:
        return False
    try:
        a = np.asarray(v)
    except Exception:
        return False
    if a.ndim != 0 or a.dtype.kind not in "fiu":
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(a.astype(np.float64))))


def valid_bits(b):
    return isinstance(b, (int, np.integer)) and not isinstance(b, (bool, np.bool_)) and 2 <= b <= 16


def valid_narrow(n):
    return n is True or n is False or isinstance(n, np.bool_)


def valid_vector(v, d):
    if isinstance(v, (str, bytes)):
        return False
    try:
        a = np.asarray(v)
    except Exception:
        return False
    if a.dtype.kind not in "fiu" or a.shape != (d,):
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(a.astype(np.float32)).all())


def valid_array(a):
    try:
        arr = np.asarray(a)
    except Exception:
        return False
    return arr.dtype.kind in "fiu"


@given(st.data())
def test_fuzz_vars_gradient(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))
    g = data.draw(layout(data.draw(arrays(shape))))
    x = data.draw(layout(data.draw(arrays(shape))))
    mn, mx, nb, nr = data.draw(scalars), data.draw(scalars), data.draw(num_bits), data.draw(narrow)
    threads = data.draw(st.sampled_from([None, 1, 2, 3]))
    got = check_or_error(lambda: cfq.fake_quant_with_min_max_vars_gradient(g, x, mn, mx, nb, nr, threads=threads),
                         None)
    ok = (valid_array(g) and valid_array(x) and np.shape(g) == np.shape(x) and valid_scalar(mn)
          and valid_scalar(mx) and valid_bits(nb) and valid_narrow(nr) and same_element_dtype(g, x))
    if not ok:
        assert got is None, "invalid arguments were accepted"
        return
    assert got is not None, "valid arguments were rejected"
    fmn, fmx = float(np.asarray(mn)), float(np.asarray(mx))
    dx, dmin, dmax = model.vars_grad(as_model_input(g), as_model_input(x), fmn, fmx, int(nb), bool(nr))
    assert_bits_equal(got[0], in_dtype_of(x, dx), "dx")
    for a, b in ((got[1], dmin), (got[2], dmax)):
        assert (np.isnan(a) and np.isnan(b)) or a == b or abs(float(a) - float(b)) <= float(np.spacing(np.abs(b)))


@given(st.data())
def test_fuzz_forward_ops(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))
    x = data.draw(layout(data.draw(arrays(shape))))
    mn, mx, nb, nr = data.draw(scalars), data.draw(scalars), data.draw(num_bits), data.draw(narrow)
    op = data.draw(st.sampled_from(["vars", "args", "args_gradient"]))
    ok = valid_array(x) and valid_scalar(mn) and valid_scalar(mx) and valid_bits(nb) and valid_narrow(nr)
    if op == "vars":
        got = check_or_error(lambda: cfq.fake_quant_with_min_max_vars(x, mn, mx, nb, nr), None)
        want = (lambda: model.vars_forward(as_model_input(x), float(np.asarray(mn)), float(np.asarray(mx)),
                                          int(nb), bool(nr)))
    elif op == "args":
        got = check_or_error(lambda: cfq.fake_quant_with_min_max_args(x, mn, mx, nb, nr), None)
        want = (lambda: model.args_forward(as_model_input(x), float(np.asarray(mn)), float(np.asarray(mx)),
                                          int(nb), bool(nr)))
    else:
        got = check_or_error(lambda: cfq.fake_quant_with_min_max_args_gradient(x, x, mn, mx, nb, nr), None)
        want = (lambda: model.args_grad(as_model_input(x), as_model_input(x), float(np.asarray(mn)),
                                       float(np.asarray(mx)), int(nb), bool(nr)))
    want_32 = want
    want = lambda: in_dtype_of(x, want_32())  # noqa: E731
    if ok and op != "vars":
        ok = bool(model.ftz(np.float32(np.asarray(mn).astype(np.float64))) <
                  model.ftz(np.float32(np.asarray(mx).astype(np.float64))))
    if not ok:
        assert got is None
        return
    assert got is not None
    assert_bits_equal(got, want(), op)


@given(st.data())
def test_fuzz_per_channel(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))
    x = data.draw(layout(data.draw(arrays(shape))))
    axis = data.draw(st.integers(-6, 5))
    d = shape[axis] if shape and -len(shape) <= axis < len(shape) else data.draw(st.integers(0, 3))
    length = data.draw(st.sampled_from([d, d, d, d + 1, max(d - 1, 0)]))
    mins = data.draw(st.one_of(
        hnp.arrays(np.float32, (length,), elements=st.one_of(st.floats(-4, 0, width=32), st.sampled_from(SPECIAL))),
        st.sampled_from([1.0, None, "a", [[1.0]]])))
    maxs = data.draw(st.one_of(hnp.arrays(np.float32, (length,), elements=st.floats(0, 4, width=32)),
                               st.sampled_from([2.0, [1.0] * max(length, 1)])))
    nb, nr = data.draw(num_bits), data.draw(narrow)
    got = check_or_error(lambda: cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, nb, nr, axis=axis), None)
    ok = (valid_array(x) and np.ndim(x) >= 1 and -np.ndim(x) <= axis < np.ndim(x) and valid_bits(nb)
          and valid_narrow(nr) and valid_vector(mins, np.shape(x)[axis]) and valid_vector(maxs, np.shape(x)[axis]))
    if not ok:
        assert got is None
        return
    assert got is not None
    assert_bits_equal(got, in_dtype_of(x, model.per_channel(as_model_input(x), np.asarray(mins, np.float32),
                                                            np.asarray(maxs, np.float32), int(nb), bool(nr), axis)))


@given(st.data())
def test_fuzz_out_aliasing(data):
    """out= overlapping the inputs in any way: the right answer or an error."""
    n = data.draw(st.integers(0, 300))
    shift = data.draw(st.integers(-3, 3))
    step = data.draw(st.sampled_from([1, 1, 2]))
    target = data.draw(st.sampled_from(["gradients", "inputs"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    buf = np.zeros(2 * n * step + 16, np.float32)
    base = 8
    g = rng.standard_normal(n).astype(np.float32)
    x = (rng.standard_normal(n) * 2).astype(np.float32)
    want = model.vars_grad(g, x, -1.0, 1.0)
    view = buf[base:base + n * step:step]
    view[...] = g if target == "gradients" else x
    start = max(base + shift, 0)
    out = buf[start:start + n * step:step]
    if out.shape != view.shape:
        return
    args = (view, x) if target == "gradients" else (g, view)
    r = check_or_error(lambda: cfq.fake_quant_with_min_max_vars_gradient(*args, -1.0, 1.0, out=out), None)
    assert r is not None
    assert r[0] is out
    assert_bits_equal(out, want[0], f"shift {shift} step {step} over {target}")
    assert float(r[1]) == float(want[1]) and float(r[2]) == float(want[2])


def test_thread_stress_every_op():
    """8 Python threads x many calls of every op with random threads=:
    identical to single-threaded calls, no error, no hang."""
    rng = np.random.default_rng(3)
    sizes = [0, 1, 7, 1000, 70001, 300000]
    cases = []
    for n in sizes:
        g = rng.standard_normal(n).astype(np.float32)
        x = (rng.standard_normal(n) * 2).astype(np.float32)
        _, region = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0)
        x2 = x[: (n // 5) * 5].reshape(-1, 5)
        g2 = g[: (n // 5) * 5].reshape(-1, 5)
        mins, maxs = np.full(5, -1.0, np.float32), np.linspace(0.2, 2, 5).astype(np.float32)
        calls = [
            lambda t, g=g, x=x: cfq.fake_quant_with_min_max_vars_gradient(g, x, -1.0, 1.0, threads=t),
            lambda t, x=x: cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, threads=t),
            lambda t, x=x: cfq.fake_quant_with_min_max_args(x, -1.0, 1.0, threads=t),
            lambda t, g=g, x=x: cfq.fake_quant_with_min_max_args_gradient(g, x, -1.0, 1.0, threads=t),
            lambda t, x=x2, a=mins, b=maxs: cfq.fake_quant_with_min_max_vars_per_channel(x, a, b, threads=t),
            lambda t, g=g2, x=x2, a=mins, b=maxs:
                cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, a, b, threads=t),
            lambda t, x=x: cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0, threads=t),
            lambda t, g=g, r=region: cfq.fake_quant_region_gradient(g, r, threads=t),
        ]
        for c in calls:
            cases.append((c, c(1)))

    def flat(result):
        if isinstance(result, tuple):
            return [np.asarray(v) for v in result]
        return [np.asarray(result)]

    errors, mismatches = [], []

    def worker(seed):
        r = np.random.default_rng(seed)
        for _ in range(60):
            call, want = cases[r.integers(len(cases))]
            try:
                got = call(int(r.integers(1, 4)))
            except Exception as exc:  # noqa: BLE001 - any error fails the test
                errors.append(repr(exc))
                continue
            for a, b in zip(flat(got), flat(want)):
                if a.dtype == np.float32:
                    a, b = a.view(np.uint32), b.view(np.uint32)
                if not np.array_equal(a, b):
                    mismatches.append(call)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors and not mismatches, (errors[:3], len(mismatches))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_no_leaks():
    """Hundreds of thousands of calls, rejected ones and out= ones included:
    resident memory stays flat and references balance."""
    import gc
    import sys

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    g = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    x = g * np.float32(2)
    out = np.empty_like(g)
    big_g = np.ones(4 << 20, np.float32)
    big_x = np.linspace(-3, 3, 4 << 20, dtype=np.float32)
    vg = cfq.fake_quant_with_min_max_vars_gradient

    def round_of_calls(k):
        for _ in range(k):
            vg(g, x, -1.0, 1.0)
            vg(g, x, -1.0, 1.0, out=out)
            cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, out=out)
        for _ in range(k // 20):
            for bad in ((g, x, np.nan, 1.0), (g, x[:3], -1.0, 1.0), (g, x, -1.0, 1.0, 99)):
                try:
                    vg(*bad)
                except ValueError:
                    pass
            try:
                cfq.fake_quant_with_min_max_vars_per_channel(x, [1.0], [2.0])
            except ValueError:
                pass

    round_of_calls(20000)  # warm up caches and allocator pools
    for _ in range(5):
        vg(big_g, big_x, -1.0, 1.0)
    gc.collect()
    refs = (sys.getrefcount(g), sys.getrefcount(x), sys.getrefcount(out))
    before = rss()
    round_of_calls(130000)  # ~400,000 small calls, ~20,000 rejected
    for _ in range(200):
        vg(big_g, big_x, -1.0, 1.0)
    gc.collect()
    grown = rss() - before
    assert grown < 8 << 20, f"resident memory grew by {grown / 2**20:.1f} MiB"
    assert (sys.getrefcount(g), sys.getrefcount(x), sys.getrefcount(out)) == refs


# ---- TF's crash reports, replayed: clean errors here ---------------------------

vpc = cfq.fake_quant_with_min_max_vars_per_channel
vpcg = cfq.fake_quant_with_min_max_vars_per_channel_gradient
z3 = np.zeros((2, 3), np.float32)


CRASHES = [
    # TF issue 46910 and relatives: non-scalar min/max for the vars ops
    (ValueError, "scalar", lambda: cfq.fake_quant_with_min_max_vars(z3, [1.0, 1.0], 2.0)),
    (ValueError, "scalar", lambda: cfq.fake_quant_with_min_max_vars_gradient(z3, z3, -1.0, [[1.0]])),
    # scalar inputs for per-channel (TF aborts: Check failed d >= 0)
    (ValueError, "rank >= 1", lambda: vpc(np.float32(1.0), [-1.0], [1.0])),
    (ValueError, "rank >= 1", lambda: vpcg(np.float32(1.0), np.float32(1.0), [-1.0], [1.0])),
    # wrong channel counts
    (ValueError, "incorrect size", lambda: vpc(z3, [-1.0, -1.0], [1.0, 1.0, 1.0])),
    (ValueError, "incorrect size", lambda: vpcg(z3, z3, [-1.0] * 3, [1.0] * 4)),
    (ValueError, "incorrect size", lambda: vpc(z3, [-1.0] * 2, [1.0] * 2, axis=0) if False else vpc(z3, [-1.0] * 3, [1.0] * 3, axis=0)),
    # empty min/max
    (ValueError, "incorrect size", lambda: vpc(z3, [], [])),
    (ValueError, "incorrect size", lambda: vpcg(z3, z3, np.zeros(0), np.zeros(0))),
    (ValueError, "rank 1", lambda: vpc(z3, -1.0, 1.0)),
    (ValueError, "rank 1", lambda: vpc(z3, [[-1.0] * 3], [[1.0] * 3])),
    (ValueError, "channel 1", lambda: vpc(z3, [-1.0, np.nan, -1.0], [1.0] * 3)),
    (ValueError, "channel 2", lambda: vpcg(z3, z3, [-1.0] * 3, [1.0, 1.0, np.inf])),
    (ValueError, "out of range", lambda: vpc(z3, [-1.0] * 3, [1.0] * 3, axis=2)),
    (TypeError, "axis", lambda: vpc(z3, [-1.0] * 3, [1.0] * 3, axis=1.0)),
    (ValueError, "num_bits", lambda: vpc(z3, [-1.0] * 3, [1.0] * 3, num_bits=17)),
    (ValueError, "same shape", lambda: vpcg(z3, np.zeros((3, 2)), [-1.0] * 2, [1.0] * 2)),
    (ValueError, "smaller than max", lambda: cfq.fake_quant_with_min_max_args(z3, 1.0, 1.0)),
    (ValueError, "smaller than max", lambda: cfq.fake_quant_with_min_max_args(z3, -1e-40, 0.0)),
    (ValueError, "smaller than max", lambda: cfq.fake_quant_with_min_max_args_gradient(z3, z3, 2.0, -2.0)),
    (ValueError, "finite", lambda: cfq.fake_quant_with_min_max_args(z3, -np.inf, 1.0)),
    (ValueError, "finite", lambda: cfq.fake_quant_with_min_max_vars(z3, np.nan, 1.0)),
    (ValueError, "num_bits", lambda: cfq.fake_quant_with_min_max_args(z3, num_bits=1)),
    (TypeError, "inputs", lambda: cfq.fake_quant_with_min_max_vars(np.zeros(3, complex), -1.0, 1.0)),
    (TypeError, "min", lambda: vpc(z3, ["a"] * 3, [1.0] * 3)),
]


@pytest.mark.parametrize("exc,match,call", CRASHES, ids=[f"crash{i}" for i in range(len(CRASHES))])
def test_tf_crash_reports_are_clean_errors(exc, match, call):
    with pytest.raises(exc, match=match):
        call()
