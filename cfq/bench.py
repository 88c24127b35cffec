"""Throughput of cfq's kernels on this machine, as ratios measured side by
side in one run.

    python -m cfq.bench [--sizes 1K,64K,1M,16M] [--reps 11] [--quick] [--plot FILE]

The memory-traffic proxy for the gradient is ``np.add(g, x, out=c)`` on the
same arrays: like the gradient it reads two float32 arrays and writes one.
For the forward ops (one read, one write) it is ``np.negative(x, out=c)``.
TensorFlow columns appear when ``import tensorflow`` works (one intra-op
thread, inputs already tensors).  Every number is a median of interleaved
repetitions: the things compared run in turn, so a noisy neighbour slows them
alike.  Data: g, x ~ N(0, 1), min/max = -3, 3 (0.27% of inputs outside, as
in quantization-aware training, where min/max track the data's range); one
section shows the worst case for the gradient, half the inputs outside the
range.  float16 and bfloat16 (section 6) compute in float32 between the
conversions; their proxy is still float32 np.add, so the ratio shows what
half the bytes buys.
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

DEFAULT_SIZES = "1K,4K,16K,64K,256K,1M,4M,16M,64M"
MIN_, MAX_ = -3.0, 3.0
HALF_OUT_MIN, HALF_OUT_MAX = -1.0, 1.0  # with x ~ N(0, 1.5^2): half the inputs outside


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


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def interleaved_medians(fns, reps, target_s=2e-3):
    """Median seconds per call of each function, sampled round-robin; each
    sample repeats its call enough to last about target_s."""
    return [statistics.median(s) for s in _interleaved_samples(fns, reps, target_s)]


def interleaved_ratios(fns, reps, target_s=2e-3):
    """interleaved_medians, and for each function the median over rounds of
    its time over the first function's in the same round: a paired ratio,
    which the machine's speed drifting from round to round (a neighbour on
    the memory bus, at 16M) moves less than it moves a ratio of medians."""
    samples = _interleaved_samples(fns, reps, target_s)
    return ([statistics.median(s) for s in samples],
            [statistics.median(a / b for a, b in zip(s, samples[0])) for s in samples])


def _interleaved_samples(fns, reps, target_s):
    loops = []
    for fn in fns:
        fn()
        t0 = time.perf_counter()
        fn()
        loops.append(max(1, min(20000, int(target_s / max(time.perf_counter() - t0, 1e-7)))))
    samples = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(loops[k]):
                fn()
            samples[k].append((time.perf_counter() - t0) / loops[k])
    return samples


def load_tf(enabled):
    if not enabled:
        return None
    try:
        import tensorflow as tf
    except Exception:
        return None
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def make_data(n, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n, dtype=np.float32)
    x = rng.standard_normal(n, dtype=np.float32) * np.float32(spread)
    return g, x


def reps_for(n, reps):
    return max(3, reps // 3) if n >= (16 << 20) else reps


class Report:
    """Collects rows for the optional plot."""

    def __init__(self):
        self.curves = {}

    def add(self, name, n, seconds, nbytes):
        self.curves.setdefault(name, []).append((n, nbytes / seconds / 1e9))


def bench_gradient(sizes, reps, tf, report):
    print(f"\n1. fake_quant_with_min_max_vars_gradient, one thread (12 bytes move per element)")
    head = f"{'n':>6} {'cfq us':>10} {'GB/s':>6} {'np.add us':>10} {'cfq/add':>8}"
    if tf is not None:
        head += f" {'TF us':>10} {'TF/cfq':>7}"
    print(head)
    vg = cfq.fake_quant_with_min_max_vars_gradient
    for n in sizes:
        g, x = make_data(n)
        c = np.empty_like(g)
        fns = [lambda: vg(g, x, MIN_, MAX_, out=c, threads=1), lambda: np.add(g, x, out=c)]
        if tf is not None:
            tg, tx, tmin, tmax = tf.constant(g), tf.constant(x), tf.constant(MIN_), tf.constant(MAX_)
            fq = tf.quantization.fake_quant_with_min_max_vars_gradient
            fns.append(lambda: fq(tg, tx, tmin, tmax))
        t = interleaved_medians(fns, reps_for(n, reps))
        report.add("cfq gradient", n, t[0], 12 * n)
        report.add("np.add", n, t[1], 12 * n)
        line = (f"{fmt_size(n):>6} {t[0] * 1e6:>10.2f} {12 * n / t[0] / 1e9:>6.1f}"
                f" {t[1] * 1e6:>10.2f} {t[0] / t[1]:>8.2f}")
        if tf is not None:
            report.add("TF gradient", n, t[2], 12 * n)
            line += f" {t[2] * 1e6:>10.2f} {t[2] / t[0]:>7.2f}"
        print(line, flush=True)
        del g, x, c


def bench_worst_case(sizes, reps, tf):
    print(f"\n2. half the inputs outside: x ~ N(0, 1.5^2), min/max = {HALF_OUT_MIN}, {HALF_OUT_MAX}"
          " (51% outside), one thread; the region path against the input-based gradient")
    head = (f"{'n':>6} {'cfq us':>10} {'np.add us':>10} {'cfq/add':>8} {'region us':>10}"
            f" {'region/inputs':>14}")
    if tf is not None:
        head += f" {'TF us':>10} {'TF/cfq':>7}"
    print(head)
    vg = cfq.fake_quant_with_min_max_vars_gradient
    lo, hi = HALF_OUT_MIN, HALF_OUT_MAX
    for n in sizes:
        g, x = make_data(n, spread=1.5)
        _, region = cfq.fake_quant_with_min_max_vars_and_region(x, lo, hi)
        c = np.empty_like(g)
        fns = [lambda: vg(g, x, lo, hi, out=c, threads=1), lambda: np.add(g, x, out=c),
               lambda: cfq.fake_quant_region_gradient(g, region, out=c, threads=1)]
        if tf is not None:
            tg, tx, tmin, tmax = tf.constant(g), tf.constant(x), tf.constant(lo), tf.constant(hi)
            fq = tf.quantization.fake_quant_with_min_max_vars_gradient
            fns.append(lambda: fq(tg, tx, tmin, tmax))
        t = interleaved_medians(fns, reps_for(n, reps))
        line = (f"{fmt_size(n):>6} {t[0] * 1e6:>10.2f} {t[1] * 1e6:>10.2f} {t[0] / t[1]:>8.2f}"
                f" {t[2] * 1e6:>10.2f} {t[2] / t[0]:>14.2f}")
        if tf is not None:
            line += f" {t[3] * 1e6:>10.2f} {t[3] / t[0]:>7.2f}"
        print(line, flush=True)
        del g, x, c, region


def bench_threads(sizes, reps, cpus):
    print(f"\n3. threads: gradient with threads=1 and threads={cpus} (all usable CPUs), "
          "and threads=None (automatic)")
    print(f"{'n':>6} {'1 thread us':>12} {f'{cpus} threads us':>15} {'speed-up':>9} {'auto us':>10}")
    vg = cfq.fake_quant_with_min_max_vars_gradient
    for n in sizes:
        g, x = make_data(n)
        c = np.empty_like(g)
        t = interleaved_medians([lambda: vg(g, x, MIN_, MAX_, out=c, threads=1),
                                 lambda: vg(g, x, MIN_, MAX_, out=c, threads=cpus),
                                 lambda: vg(g, x, MIN_, MAX_, out=c)], reps_for(n, reps))
        print(f"{fmt_size(n):>6} {t[0] * 1e6:>12.1f} {t[1] * 1e6:>15.1f} {t[0] / t[1]:>9.2f} {t[2] * 1e6:>10.1f}",
              flush=True)


def bench_region(sizes, reps, report):
    print("\n4. region-code backward: fake_quant_region_gradient(g, region) (9 bytes per element)"
          " against the input-based gradient (12) and np.add, one thread")
    print(f"{'n':>6} {'region us':>10} {'inputs us':>10} {'region/inputs':>14} {'np.add us':>10} {'bits equal':>11}")
    vg = cfq.fake_quant_with_min_max_vars_gradient
    for n in sizes:
        g, x = make_data(n)
        _, region = cfq.fake_quant_with_min_max_vars_and_region(x, MIN_, MAX_)
        c = np.empty_like(g)
        same = all(np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
                   for a, b in zip(cfq.fake_quant_region_gradient(g, region), vg(g, x, MIN_, MAX_)))
        t = interleaved_medians([lambda: cfq.fake_quant_region_gradient(g, region, out=c, threads=1),
                                 lambda: vg(g, x, MIN_, MAX_, out=c, threads=1),
                                 lambda: np.add(g, x, out=c)], reps_for(n, reps))
        report.add("cfq region gradient", n, t[0], 12 * n)
        print(f"{fmt_size(n):>6} {t[0] * 1e6:>10.1f} {t[1] * 1e6:>10.1f} {t[0] / t[1]:>14.2f}"
              f" {t[2] * 1e6:>10.1f} {str(same):>11}", flush=True)


def bench_family(sizes, reps, tf):
    print("\n5. the other ops, one thread; proxy: np.negative(x, out=c) for one read + one write,"
          " np.add for two reads + one write")
    head = f"{'op':<40} {'n':>5} {'cfq us':>9} {'GB/s':>6} {'/proxy':>7}"
    if tf is not None:
        head += f" {'TF us':>9} {'TF/cfq':>7}"
    print(head)
    d = 64
    mins, maxs = np.full(d, MIN_, np.float32), np.full(d, MAX_, np.float32)
    for n in sizes:
        g, x = make_data(n)
        g2, x2 = g.reshape(-1, d), x.reshape(-1, d)
        g3, x3 = g.reshape(d, -1), x.reshape(d, -1)
        c = np.empty_like(g)
        c2, c3 = c.reshape(-1, d), c.reshape(d, -1)
        ops = [
            ("fake_quant_with_min_max_vars", 8, lambda: cfq.fake_quant_with_min_max_vars(x, MIN_, MAX_, out=c, threads=1),
             lambda: np.negative(x, out=c), "fake_quant_with_min_max_vars", lambda q: q(tx, tmin, tmax)),
            ("fake_quant_with_min_max_args", 8, lambda: cfq.fake_quant_with_min_max_args(x, MIN_, MAX_, out=c, threads=1),
             lambda: np.negative(x, out=c), "fake_quant_with_min_max_args", lambda q: q(tx, MIN_, MAX_)),
            ("fake_quant_with_min_max_args_gradient", 12,
             lambda: cfq.fake_quant_with_min_max_args_gradient(g, x, MIN_, MAX_, out=c, threads=1),
             lambda: np.add(g, x, out=c), "fake_quant_with_min_max_args_gradient", lambda q: q(tg, tx, MIN_, MAX_)),
            (f"per_channel [n/{d}, {d}]", 8,
             lambda: cfq.fake_quant_with_min_max_vars_per_channel(x2, mins, maxs, out=c2, threads=1),
             lambda: np.negative(x, out=c), "fake_quant_with_min_max_vars_per_channel",
             lambda q: q(tx2, tmins, tmaxs)),
            (f"per_channel_gradient [n/{d}, {d}]", 12,
             lambda: cfq.fake_quant_with_min_max_vars_per_channel_gradient(g2, x2, mins, maxs, out=c2, threads=1),
             lambda: np.add(g, x, out=c), "fake_quant_with_min_max_vars_per_channel_gradient",
             lambda q: q(tg2, tx2, tmins, tmaxs)),
            # channels first (TF has only the last axis: no TF column)
            (f"per_channel [{d}, n/{d}] axis=0", 8,
             lambda: cfq.fake_quant_with_min_max_vars_per_channel(x3, mins, maxs, axis=0, out=c3, threads=1),
             lambda: np.negative(x, out=c), None, None),
            (f"per_channel_gradient [{d}, n/{d}] axis=0", 12,
             lambda: cfq.fake_quant_with_min_max_vars_per_channel_gradient(g3, x3, mins, maxs, axis=0, out=c3,
                                                                           threads=1),
             lambda: np.add(g, x, out=c), None, None),
        ]
        if tf is not None:
            tg, tx, tg2, tx2 = tf.constant(g), tf.constant(x), tf.constant(g2), tf.constant(x2)
            tmin, tmax, tmins, tmaxs = tf.constant(MIN_), tf.constant(MAX_), tf.constant(mins), tf.constant(maxs)
        for name, nbytes, fn, proxy, tf_name, tf_call in ops:
            fns = [fn, proxy]
            if tf is not None and tf_name is not None:
                q = getattr(tf.quantization, tf_name)
                fns.append(lambda q=q, tf_call=tf_call: tf_call(q))
            t = interleaved_medians(fns, reps_for(n, reps))
            line = f"{name:<40} {fmt_size(n):>5} {t[0] * 1e6:>9.1f} {nbytes * n / t[0] / 1e9:>6.1f} {t[0] / t[1]:>7.2f}"
            if len(t) > 2:
                line += f" {t[2] * 1e6:>9.1f} {t[2] / t[0]:>7.2f}"
            print(line, flush=True)


def half_dtypes():
    """(name, dtype) of the 16-bit types this machine can make: float16
    always, bfloat16 when ml_dtypes is importable."""
    kinds = [("float16", np.dtype(np.float16))]
    try:
        import ml_dtypes
        kinds.append(("bfloat16", np.dtype(ml_dtypes.bfloat16)))
    except ImportError:
        pass
    return kinds


def bench_dtypes(sizes, reps):
    kinds = half_dtypes()
    names = [name for name, _ in kinds]
    print(f"\n6. float16 and bfloat16 next to float32 (one thread): time of each over float32's"
          f" (median of the rounds' ratios), same values;"
          f" {'bfloat16 needs ml_dtypes: not importable here' if len(kinds) < 2 else ''}".rstrip("; "))
    print(f"{'op':<40} {'n':>5} {'float32 us':>11}" + "".join(f" {nm + ' us':>12} {nm[:4] + '/f32':>9}"
                                                          for nm in names))
    d = 64
    mins, maxs = np.full(d, MIN_, np.float32), np.full(d, MAX_, np.float32)
    vg = cfq.fake_quant_with_min_max_vars_gradient
    pcg = cfq.fake_quant_with_min_max_vars_per_channel_gradient
    for n in sizes:
        g32, x32 = make_data(n)
        arrays = [(g32, x32, np.empty_like(g32))]
        for _, dt in kinds:
            g, x = g32.astype(dt), x32.astype(dt)
            arrays.append((g, x, np.empty_like(g)))
        ops = [
            ("fake_quant_with_min_max_vars_gradient",
             lambda g, x, c: vg(g, x, MIN_, MAX_, out=c, threads=1)),
            ("fake_quant_with_min_max_vars",
             lambda g, x, c: cfq.fake_quant_with_min_max_vars(x, MIN_, MAX_, out=c, threads=1)),
            (f"per_channel_gradient [n/{d}, {d}]",
             lambda g, x, c: pcg(g.reshape(-1, d), x.reshape(-1, d), mins, maxs, out=c.reshape(-1, d),
                                 threads=1)),
            (f"per_channel_gradient [{d}, n/{d}] axis=0",
             lambda g, x, c: pcg(g.reshape(d, -1), x.reshape(d, -1), mins, maxs, axis=0,
                                 out=c.reshape(d, -1), threads=1)),
        ]
        for name, op in ops:
            # at least 9 rounds (3 at 16M in the other sections): the 16-bit
            # types' target, 0.6 of float32's gradient time at 16M, is read here
            t, ratio = interleaved_ratios([lambda a=a: op(*a) for a in arrays], max(9, reps_for(n, reps)))
            print(f"{name:<40} {fmt_size(n):>5} {t[0] * 1e6:>11.1f}"
                  + "".join(f" {tk * 1e6:>12.1f} {rk:>9.2f}" for tk, rk in zip(t[1:], ratio[1:])), flush=True)
        del arrays, g32, x32


def bench_isas(n, reps):
    isas = cfq.available_isas()
    print(f"\n7. each instruction-set path, gradient at n={fmt_size(n)} (ratio to np.add on the same arrays)")
    g, x = make_data(n)
    c = np.empty_like(g)
    vg = cfq.fake_quant_with_min_max_vars_gradient
    fns = [lambda isa=isa: vg(g, x, MIN_, MAX_, out=c, threads=1, isa=isa) for isa in isas]
    fns.append(lambda: np.add(g, x, out=c))
    t = interleaved_medians(fns, reps)
    for isa, ti in zip(isas, t):
        print(f"  {isa:>7}: {ti * 1e6:9.2f} us  {ti / t[-1]:6.2f} x np.add")


def bench_gil(n=32768, calls=400, reps=9):
    """Wall time of 2 Python threads sharing `calls` gradient calls, over one
    thread making them all: about 0.5 when the GIL is released."""
    g, x = make_data(n)
    vg = cfq.fake_quant_with_min_max_vars_gradient

    def work(k):
        out = np.empty_like(g)
        for _ in range(k):
            vg(g, x, MIN_, MAX_, out=out, threads=1)

    def two():
        ts = [threading.Thread(target=work, args=(calls // 2,)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    samples1, samples2 = [], []
    for _ in range(reps):
        for fn, s in ((lambda: work(calls), samples1), (two, samples2)):
            t0 = time.perf_counter()
            fn()
            s.append(time.perf_counter() - t0)
    t1, t2 = statistics.median(samples1), statistics.median(samples2)
    print(f"\n8. GIL released: {calls} gradient calls at n={fmt_size(n)}: one Python thread {t1 * 1e3:.1f} ms,"
          f" two Python threads {t2 * 1e3:.1f} ms, ratio {t2 / t1:.2f}")


def plot(report, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        print(f"\n--plot {path}: matplotlib is not installed; no chart written")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, pts in report.curves.items():
        ns, gbs = zip(*pts)
        ax.plot(ns, gbs, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("elements (float32)")
    ax.set_ylabel("GB/s (12 bytes per element)")
    ax.set_title(f"fake-quant gradient, one thread, {cpu_name()}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nchart written to {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma-separated (default {DEFAULT_SIZES})")
    ap.add_argument("--reps", type=int, default=11, help="interleaved repetitions per size")
    ap.add_argument("--quick", action="store_true", help="sizes 1K, 64K, 1M, 16M and fewer repetitions")
    ap.add_argument("--no-tf", action="store_true", help="skip TensorFlow even if importable")
    ap.add_argument("--plot", metavar="FILE", help="write a PNG chart of GB/s against size (needs matplotlib)")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    reps = args.reps
    if args.quick:
        sizes, reps = [1 << 10, 1 << 16, 1 << 20, 1 << 24], 5
    big = [n for n in sizes if n >= (1 << 20)] or sizes[-1:]
    cpus = usable_cpus()

    tf = load_tf(not args.no_tf)
    print(f"cfq {cfq.__version__} on {cpu_name()} ({platform.machine()}, {cpus} usable CPUs),"
          f" Python {sys.version.split()[0]}, NumPy {np.__version__}")
    print(f"active path: {cfq.active_isa()}; available: {', '.join(cfq.available_isas())}")
    print("TensorFlow: " + (f"{tf.__version__}, one intra-op thread" if tf is not None else
                            "not importable here: TF columns skipped"))
    report = Report()
    bench_gradient(sizes, reps, tf, report)
    bench_worst_case([n for n in (1 << 16, 1 << 20, 1 << 24) if n <= max(sizes)], reps, tf)
    bench_threads(big, reps, cpus)
    bench_region(big, reps, report)
    bench_family([n for n in (1 << 16, 1 << 20, 1 << 24) if n <= max(sizes)], reps, tf)
    bench_dtypes([n for n in (1 << 16, 1 << 24) if n <= max(sizes)], reps)
    bench_isas(1 << 16, reps)
    bench_gil()
    from cfq import bench_torch  # section 9, PyTorch: a one-line note when torch is not importable
    bench_torch.run(sizes, reps, section=9)
    import importlib.util  # section 10, the JAX section (cfq/bench_jax.py), when jax is importable
    if importlib.util.find_spec("jax") is not None:
        __import__("cfq.bench_jax").bench_jax.bench_jax([n for n in sizes if 1 << 16 <= n <= 1 << 24], reps)
    if args.plot:
        plot(report, args.plot)


if __name__ == "__main__":
    main()
