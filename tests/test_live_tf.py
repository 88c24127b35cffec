"""Live comparison with TensorFlow on fresh random cases, when TensorFlow is
importable (skipped otherwise: the suite and CI run without it; the golden
data in tests/golden/ covers the same ground).  Run it with a Python that
has both cfq and tensorflow-cpu==2.21.0, e.g.
``PYTHONPATH=. /path/to/tfenv/bin/python -m pytest tests/test_live_tf.py``."""
import functools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import cfq  # noqa: E402
import model  # noqa: E402
from support import assert_bits_equal, assert_sum_at_least_as_accurate  # noqa: E402

F32 = np.float32


def random_case(rng):
    ndim = int(rng.integers(0, 5))
    shape = tuple(int(s) for s in rng.integers(1, 6, ndim))
    bits = int(rng.integers(2, 17))
    narrow = bool(rng.integers(0, 2))
    mn = F32(rng.uniform(-8, 1))
    mx = F32(mn + rng.choice([0.0, 1e-6, rng.uniform(0.01, 10)]))
    if rng.random() < 0.1:
        mn, mx = mx, mn  # min > max: not an error in TF
    spread = float(rng.choice([0.5, 4, 20]))
    x = (rng.standard_normal(shape) * spread).astype(F32)
    g = rng.standard_normal(shape).astype(F32)
    flat = x.reshape(-1)
    if flat.size:  # put some inputs exactly on and next to the nudged edges
        lo, hi, _ = cfq.nudge(mn, mx, bits, narrow)
        for k, v in enumerate((lo, hi, np.nextafter(lo, F32(-np.inf)), np.nextafter(hi, F32(np.inf)))):
            flat[(k * 7) % flat.size] = v
    return g, x, mn, mx, bits, narrow


CASES = [random_case(np.random.default_rng(seed)) for seed in range(120)]


# TF's answers, computed once per case and shared by the ISA paths' tests.
@functools.lru_cache(maxsize=None)
def tf_vars(k):
    g, x, mn, mx, bits, narrow = CASES[k]
    kw = dict(num_bits=bits, narrow_range=narrow)
    want = tf.quantization.fake_quant_with_min_max_vars_gradient(
        tf.constant(g), tf.constant(x), tf.constant(mn), tf.constant(mx), **kw)
    want_fwd = tf.quantization.fake_quant_with_min_max_vars(
        tf.constant(x), tf.constant(mn), tf.constant(mx), **kw).numpy()
    return tuple(w.numpy() for w in want), want_fwd


@functools.lru_cache(maxsize=None)
def tf_args(k):
    g, x, mn, mx, bits, narrow = CASES[k]
    kw = dict(min=float(mn), max=float(mx), num_bits=bits, narrow_range=narrow)
    want = tf.quantization.fake_quant_with_min_max_args(tf.constant(x), **kw).numpy()
    want_g = tf.quantization.fake_quant_with_min_max_args_gradient(tf.constant(g), tf.constant(x), **kw).numpy()
    return want, want_g


def per_channel_bounds(k):
    x = CASES[k][1]
    rng = np.random.default_rng(1000 + k)
    d = x.shape[-1]
    mins = rng.uniform(-6, 0, d).astype(F32)
    maxs = (mins + rng.uniform(0.1, 8, d)).astype(F32)
    mins[0] = maxs[0] = 0  # a min == max == 0 channel
    return mins, maxs


@functools.lru_cache(maxsize=None)
def tf_per_channel(k):
    g, x, _, _, bits, narrow = CASES[k]
    mins, maxs = per_channel_bounds(k)
    kw = dict(num_bits=bits, narrow_range=narrow)
    want = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        tf.constant(x), tf.constant(mins), tf.constant(maxs), **kw).numpy()
    want_g = tf.quantization.fake_quant_with_min_max_vars_per_channel_gradient(
        tf.constant(g), tf.constant(x), tf.constant(mins), tf.constant(maxs), **kw)
    return want, tuple(w.numpy() for w in want_g)


@pytest.mark.parametrize("k", range(len(CASES)))
def test_vars_ops_match_live_tf(k, isa):
    g, x, mn, mx, bits, narrow = CASES[k]
    want, want_fwd = tf_vars(k)
    _, below, above = model.vars_grad_terms(g, x, mn, mx, bits, narrow)
    r = cfq.fake_quant_with_min_max_vars_gradient(g, x, mn, mx, bits, narrow, isa=isa)
    assert_bits_equal(r.backprops_wrt_input, want[0], f"case {k} {isa} dx")
    assert_sum_at_least_as_accurate(r.backprop_wrt_min, want[1], model.exact_sum(below), f"case {k} min")
    assert_sum_at_least_as_accurate(r.backprop_wrt_max, want[2], model.exact_sum(above), f"case {k} max")
    assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, mn, mx, bits, narrow, isa=isa), want_fwd,
                      f"case {k} {isa} forward")


@pytest.mark.parametrize("k", range(0, len(CASES), 3))
def test_args_ops_match_live_tf(k, isa):
    g, x, mn, mx, bits, narrow = CASES[k]
    if not mn < mx:
        return
    kw = dict(min=float(mn), max=float(mx), num_bits=bits, narrow_range=narrow)
    want, want_g = tf_args(k)
    assert_bits_equal(cfq.fake_quant_with_min_max_args(x, **kw, isa=isa), want, f"case {k} {isa}")
    assert_bits_equal(cfq.fake_quant_with_min_max_args_gradient(g, x, **kw, isa=isa), want_g, f"case {k} {isa}")


@pytest.mark.parametrize("k", range(0, len(CASES), 4))
def test_per_channel_ops_match_live_tf(k, isa):
    g, x, _, _, bits, narrow = CASES[k]
    if x.ndim == 0:
        return
    mins, maxs = per_channel_bounds(k)
    kw = dict(num_bits=bits, narrow_range=narrow)
    want, want_g = tf_per_channel(k)
    assert_bits_equal(cfq.fake_quant_with_min_max_vars_per_channel(x, mins, maxs, **kw, isa=isa), want)
    r = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, **kw, isa=isa)
    assert_bits_equal(r.backprops_wrt_input, want_g[0])
    for got, ref in ((r.backprop_wrt_min, want_g[1]), (r.backprop_wrt_max, want_g[2])):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # any axis: channels first, as TF's last-axis op on moved axes
    if x.ndim >= 2:
        xt, gt = np.moveaxis(x, -1, 0), np.moveaxis(g, -1, 0)
        assert_bits_equal(cfq.fake_quant_with_min_max_vars_per_channel(xt, mins, maxs, **kw, axis=0, isa=isa),
                          np.moveaxis(want, -1, 0))
