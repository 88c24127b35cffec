"""Throughput of cfq's kernels on this machine, as ratios measured side by
side in one run: against ``np.add(g, x, out=c)`` on the same arrays (the
memory-traffic twin of the gradient: two arrays read, one written) and
against TensorFlow when it is importable.

    python -m cfq.bench [--sizes 1K,64K,1M,16M] [--reps 15] [--quick]

Timings are medians of interleaved repetitions (the machine is shared and
noisy); each repetition runs enough calls to last about a millisecond.
"""
import argparse
import os
import platform
import statistics
import sys
import threading
import time

import numpy as np

import cfq

DEFAULT_SIZES = "1K,4K,16K,64K,256K,1M,4M,16M"


def parse_size(text):
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * mult


def fmt_size(n):
    for unit, div in (("M", 1 << 20), ("K", 1 << 10)):
        if n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def calls_per_sample(fn, target_s=1e-3):
    """How many calls make one sample last about target_s."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(10000, int(target_s / one)))


def interleaved_medians(fns, reps):
    """Median seconds per call of each function, sampled round-robin."""
    loops = [calls_per_sample(fn) for fn in fns]
    samples = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            n = loops[k]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[k].append((time.perf_counter() - t0) / n)
    return [statistics.median(s) for s in samples]


def load_tf():
    try:
        import tensorflow as tf  # noqa: F401
    except Exception:
        return None
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n, dtype=np.float32)
    x = rng.standard_normal(n, dtype=np.float32) * np.float32(1.2)
    return g, x


def bench_gradient(sizes, reps, tf):
    print(f"\nfake_quant_with_min_max_vars_gradient, one thread, path {cfq.active_isa()}"
          " (12 bytes moved per element)")
    head = f"{'n':>6} {'cfq us':>10} {'GB/s':>7} {'np.add us':>10} {'cfq/add':>8}"
    if tf is not None:
        head += f" {'TF us':>10} {'TF/cfq':>7}"
    print(head)
    vg = cfq.fake_quant_with_min_max_vars_gradient
    for n in sizes:
        g, x = make_data(n)
        c = np.empty_like(g)
        fns = [lambda: vg(g, x, -3.0, 3.0, out=c), lambda: np.add(g, x, out=c)]
        if tf is not None:
            tg, tx = tf.constant(g), tf.constant(x)
            tmin, tmax = tf.constant(-3.0), tf.constant(3.0)
            fq = tf.quantization.fake_quant_with_min_max_vars_gradient
            fns.append(lambda: fq(tg, tx, tmin, tmax))
        t = interleaved_medians(fns, reps)
        line = (f"{fmt_size(n):>6} {t[0] * 1e6:>10.2f} {12 * n / t[0] / 1e9:>7.1f}"
                f" {t[1] * 1e6:>10.2f} {t[0] / t[1]:>8.2f}")
        if tf is not None:
            line += f" {t[2] * 1e6:>10.2f} {t[2] / t[0]:>7.2f}"
        print(line, flush=True)


def bench_isas(n, reps):
    isas = cfq.available_isas()
    print(f"\neach instruction-set path at n={fmt_size(n)} (ratio to np.add on the same arrays)")
    g, x = make_data(n)
    c = np.empty_like(g)
    vg = cfq.fake_quant_with_min_max_vars_gradient
    fns = [lambda isa=isa: vg(g, x, -3.0, 3.0, out=c, isa=isa) for isa in isas]
    fns.append(lambda: np.add(g, x, out=c))
    t = interleaved_medians(fns, reps)
    for isa, ti in zip(isas, t):
        print(f"  {isa:>7}: {ti * 1e6:9.2f} us  {ti / t[-1]:6.2f} x np.add")


def bench_gil(n=32768, calls=400, reps=7):
    """Wall time of 2 Python threads sharing `calls` gradient calls, over
    one thread making them all: about 0.5 when the GIL is released."""
    g, x = make_data(n)
    vg = cfq.fake_quant_with_min_max_vars_gradient

    def work(k):
        out = np.empty_like(g)
        for _ in range(k):
            vg(g, x, -3.0, 3.0, out=out)

    def one():
        work(calls)

    def two():
        ts = [threading.Thread(target=work, args=(calls // 2,)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    samples1, samples2 = [], []
    for _ in range(reps):
        for fn, s in ((one, samples1), (two, samples2)):
            t0 = time.perf_counter()
            fn()
            s.append(time.perf_counter() - t0)
    t1, t2 = statistics.median(samples1), statistics.median(samples2)
    print(f"\nGIL released: {calls} calls at n={fmt_size(n)}: one thread {t1 * 1e3:.1f} ms,"
          f" two threads {t2 * 1e3:.1f} ms, ratio {t2 / t1:.2f} (os.cpu_count()={os.cpu_count()})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated, e.g. 1K,64K,1M,16M")
    ap.add_argument("--reps", type=int, default=15, help="interleaved repetitions per size")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--no-tf", action="store_true", help="skip TensorFlow even if importable")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    reps = args.reps
    if args.quick:
        sizes, reps = [1 << 10, 1 << 16, 1 << 20], 5

    tf = None if args.no_tf else load_tf()
    print(f"cfq {cfq.__version__} on {cpu_name()} ({platform.machine()}, {os.cpu_count()} cpus),"
          f" Python {sys.version.split()[0]}, NumPy {np.__version__}")
    print(f"active path: {cfq.active_isa()}; available: {', '.join(cfq.available_isas())}")
    print("TensorFlow: " + (f"{tf.__version__} (one intra-op thread)" if tf is not None else
                            "not importable here: TF columns skipped"))
    bench_gradient(sizes, reps, tf)
    bench_isas(1 << 16, reps)
    bench_gil()


if __name__ == "__main__":
    main()
