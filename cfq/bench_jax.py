"""JAX section of cfq's benchmark: jit(grad) of fake quantization.

    python -m cfq.bench_jax [--sizes 64K,1M,16M] [--dtypes float32,float16,bfloat16]
                            [--reps 11] [--runs 3]

Measures ``jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, min, max, w)`` with
``loss = sum(fake_quant_with_min_max_vars(x, min, max) * w)`` (w stands for
the upstream gradient, an input so XLA cannot fold it away) for

- cfq.jax (cfq's kernels as XLA custom calls);
- keras.quantizers.fake_quant_with_min_max_vars on the JAX backend, when
  keras is importable (KERAS_BACKEND=jax is set here before keras loads);
- a plain jnp transcription of TF's formulas with TF's gradients
  (jax.custom_vjp), which XLA fuses into one loop;

on x and w of each --dtypes dtype (min and max float32 scalars; Keras casts
them to x's dtype, the jnp version computes the nudge in float32 and the
elements in x's dtype; cfq.jax passes float16/bfloat16 buffers to cfq's
kernels as they are), at default threads (cfq's automatic rule; XLA's own
thread pool), as medians of interleaved repetitions
(cfq.bench.interleaved_medians), in --runs rounds of their own; the ratios to
Keras are per round, and the table gives their median and range.  cfq.bench
runs this section when jax is importable.
"""
import argparse
import functools
import os
import statistics

import numpy as np

from cfq.bench import interleaved_medians, parse_size


def _fmt_size(n):
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def jnp_fake_quant(jnp, jax):
    """TF 2.21's FakeQuantWithMinMaxVars and its gradient, transcribed in
    jnp: the nudge in float32, the elements in x's dtype, the min/max sums
    in float32.  For timing only: the bits are not TF's (XLA's CPU code
    does not flush denormals, and its simplifier rewrites min / ((max - min)
    / 255) as min * 255 / (max - min): for [-3, 3] that is -127.499985, not
    -127.5, and the nudged range moves by one step)."""

    def nudge(lo, hi, num_bits, narrow_range):
        lo, hi = lo.astype(jnp.float32), hi.astype(jnp.float32)
        qmin = jnp.float32(1 if narrow_range else 0)
        qmax = jnp.float32((1 << num_bits) - 1)
        scale = (hi - lo) / (qmax - qmin)
        inv_scale = (qmax - qmin) / (hi - lo)
        zp_from_min = qmin - lo / scale
        rounded = jnp.sign(zp_from_min) * jnp.floor(jnp.abs(zp_from_min) + 0.5)  # std::round
        zp = jnp.where(zp_from_min < qmin, qmin, jnp.where(zp_from_min > qmax, qmax, rounded))
        zp = jnp.where(jnp.isnan(zp_from_min), 0.0, zp)
        return (qmin - zp) * scale, (qmax - zp) * scale, scale, inv_scale

    @functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
    def fq(x, lo, hi, num_bits=8, narrow_range=False):
        nmin, nmax, scale, inv_scale = (v.astype(x.dtype) for v in nudge(lo, hi, num_bits, narrow_range))
        quant_zero = jnp.floor(-nmin * inv_scale + 0.5)
        shifted = jnp.clip(x, nmin, nmax) - nmin
        return jnp.floor(shifted / scale - quant_zero + 0.5) * scale

    def fwd(x, lo, hi, num_bits, narrow_range):
        return fq(x, lo, hi, num_bits, narrow_range), (x, lo, hi)

    def bwd(num_bits, narrow_range, res, g):
        x, lo, hi = res
        nmin, nmax = (v.astype(x.dtype) for v in nudge(lo, hi, num_bits, narrow_range)[:2])
        dx = g * ((x >= nmin) & (x <= nmax)).astype(g.dtype)
        dmin = jnp.sum((g * (x < nmin).astype(g.dtype)).astype(jnp.float32)).astype(lo.dtype)
        dmax = jnp.sum((g * (x > nmax).astype(g.dtype)).astype(jnp.float32)).astype(hi.dtype)
        return dx, dmin, dmax

    fq.defvjp(fwd, bwd)
    return fq


def load_keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except Exception:
        return None
    if keras.backend.backend() != "jax":
        return None
    return keras


def bench_jax(sizes, reps, runs=3, out=print, dtypes=("float32", "float16", "bfloat16")):
    import jax
    import jax.numpy as jnp

    from cfq import jax as cfq_jax

    keras = load_keras()
    impls = [("cfq.jax", cfq_jax.fake_quant_with_min_max_vars)]
    if keras is not None:
        impls.append(("keras", lambda x, lo, hi: keras.quantizers.fake_quant_with_min_max_vars(
            x, lo, hi, num_bits=8, narrow_range=False)))
    impls.append(("jnp", jnp_fake_quant(jnp, jax)))

    out(f"\n10. JAX: jit(grad) of sum(fake_quant_with_min_max_vars(x, min, max) * w) wrt x, min, max;"
        f" jax {jax.__version__}, " + (f"keras {keras.__version__} (JAX backend)" if keras is not None
                                       else "keras not importable: its column skipped")
        + f"; default threads; medians of {reps} interleaved repetitions, {runs} rounds")
    header = f"{'n':>6}{'dtype':>10}" + "".join(f"{name + ' us':>14}" for name, _ in impls)
    if keras is not None:
        header += f"{'cfq/keras':>18}{'jnp/keras':>11}"
    out(header)
    rng = np.random.default_rng(0)
    for n in sizes:
        x32 = (rng.standard_normal(n) * 2).astype(np.float32)
        w32 = rng.standard_normal(n).astype(np.float32)
        for dtype in dtypes:
            x, w = jnp.asarray(x32).astype(dtype), jnp.asarray(w32).astype(dtype)
            lo, hi = jnp.float32(-3.0), jnp.float32(3.0)
            calls = []
            for _, fq in impls:
                step = jax.jit(jax.grad(lambda x, lo, hi, w, fq=fq: jnp.sum(fq(x, lo, hi) * w),
                                        argnums=(0, 1, 2)))
                jax.block_until_ready(step(x, lo, hi, w))  # compile
                calls.append(lambda step=step, x=x, w=w: jax.block_until_ready(step(x, lo, hi, w)))
            rounds = [interleaved_medians(calls, reps) for _ in range(runs)]
            med = [statistics.median(r[k] for r in rounds) for k in range(len(impls))]
            line = f"{_fmt_size(n):>6}{dtype:>10}" + "".join(f"{t * 1e6:14.1f}" for t in med)
            if keras is not None:
                for k in (0, 2):
                    ratios = [r[k] / r[1] for r in rounds]
                    text = f"{statistics.median(ratios):.2f}"
                    if k == 0:
                        text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
                    line += f"{text:>18}" if k == 0 else f"{text:>11}"
            out(line)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64K,256K,1M,4M,16M")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    bench_jax([parse_size(s) for s in args.sizes.split(",")], args.reps, args.runs,
              dtypes=tuple(args.dtypes.split(",")))


if __name__ == "__main__":
    main()
