"""Threads: every threads= count gives identical bits, the argument is
checked, the pool serves narrow calls after wide ones, and concurrent
Python threads (the GIL is released) do not interfere."""
import threading

import numpy as np
import pytest

import cfq
from support import assert_bits_equal, normal_data, wide_data

vg = cfq.fake_quant_with_min_max_vars_gradient


@pytest.mark.parametrize("n", [1_000_003, 4 << 20])
def test_identical_bits_for_every_thread_count(n):
    g, x = wide_data(n, n)
    ref = vg(g, x, -1.0, 1.0, threads=1)
    # 4M elements: SIMD paths write dx with non-temporal stores; scalar does not.
    for a, b in zip(vg(g, x, -1.0, 1.0, threads=1, isa="scalar"), ref):
        assert_bits_equal(a, b, "scalar")
    fwd = cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, threads=1)
    args = cfq.fake_quant_with_min_max_args(x, -1.0, 1.0, threads=1)
    out_r, region = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0, threads=1)
    for t in (2, 3, 7, None):
        for a, b in zip(vg(g, x, -1.0, 1.0, threads=t), ref):
            assert_bits_equal(a, b, f"threads={t}")
        assert_bits_equal(cfq.fake_quant_with_min_max_vars(x, -1.0, 1.0, threads=t), fwd)
        assert_bits_equal(cfq.fake_quant_with_min_max_args(x, -1.0, 1.0, threads=t), args)
        o, r = cfq.fake_quant_with_min_max_vars_and_region(x, -1.0, 1.0, threads=t)
        assert_bits_equal(o, out_r)
        assert np.array_equal(r, region)
        for a, b in zip(cfq.fake_quant_region_gradient(g, region, threads=t), ref):
            assert_bits_equal(a, b, f"region threads={t}")


@pytest.mark.parametrize("shape,axis", [((200_001, 5), -1), ((5, 200_001), 0), ((1000, 600), -1)])
def test_per_channel_identical_bits_for_every_thread_count(shape, axis):
    g, x = wide_data(int(np.prod(shape)), 3)
    g, x = g.reshape(shape), x.reshape(shape)
    d = shape[axis]
    mins, maxs = np.full(d, -1.0, np.float32), np.linspace(0.1, 2.0, d).astype(np.float32)
    ref = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, threads=1)
    for t in (2, 3, 7):
        got = cfq.fake_quant_with_min_max_vars_per_channel_gradient(g, x, mins, maxs, axis=axis, threads=t)
        for a, b in zip(got, ref):
            assert_bits_equal(a, b, f"threads={t}")


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_threads_argument_checked(bad, exc):
    with pytest.raises(exc, match="threads"):
        vg(np.zeros(3), np.zeros(3), -1.0, 1.0, threads=bad)


def test_wide_pool_does_not_slow_later_calls_results():
    # A wide call grows the pool; later narrow calls still agree bit for bit
    # (speed is the benchmark's business, not a test's).
    g = np.random.default_rng(5).standard_normal(1 << 18).astype(np.float32)
    x = np.random.default_rng(6).standard_normal(1 << 18).astype(np.float32)
    want = vg(g, x, -1.0, 1.0, threads=1)
    for t in (64, 2, 1, 3, 64, 2):
        for a, b in zip(vg(g, x, -1.0, 1.0, threads=t), want):
            assert_bits_equal(a, b)


# ---- Python threads: the GIL is released and results do not interfere ----------

def test_concurrent_calls_agree():
    g, x = normal_data(1 << 15, seed=13)
    want = vg(g, x, -1.0, 1.0)
    results = [None] * 4

    def work(k):
        for _ in range(20):
            results[k] = vg(g, x, -1.0, 1.0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        for a, b in zip(r, want):
            assert_bits_equal(a, b)


def test_conversion_under_concurrent_threads_keeps_warnings_filters():
    import warnings
    before = list(warnings.filters)
    errors = []

    def work():
        try:
            for _ in range(200):
                vg(np.ones(4), np.array([1e300, 0.0, 1.0, 2.0]), -1.0, 1.0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and warnings.filters == before
