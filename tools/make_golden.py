#!/usr/bin/env python3
"""Generate golden reference data for cfq from TensorFlow's fake-quant kernels.

What it writes (into tests/golden/, compressed .npz, deterministic):

  vars_grad.npz    FakeQuantWithMinMaxVarsGradient            (>= 600 cases)
  vars.npz         FakeQuantWithMinMaxVars                    (>= 600 cases)
  args.npz         FakeQuantWithMinMaxArgs + ...ArgsGradient  (>= 100 cases)
  per_channel.npz  FakeQuantWithMinMaxVarsPerChannel + ...PerChannelGradient
                                                              (>= 100 cases)

Per case, the fields are float32 arrays with the shapes exactly as TF saw
them (scalars 0-d), num_bits int32 0-d, narrow_range bool 0-d.  If TF raised
for a case, the case has "error" (0-d unicode array holding the exception
class name) and no output fields.

Layout of every file ("layout" == "concat-v1"; read it with
tests/golden_io.py, load_cases(name) / load_meta(name)):
  "n_cases" (int64 0-d), "layout" (unicode 0-d), "meta_*" keys
  (meta_tf_version, meta_numpy_version, meta_script, meta_ops, meta_seed,
  meta_intra_op_threads, meta_inter_op_threads, meta_machine);
  "error": unicode array, one entry per case, "" where TF did not raise;
  for every other field F:
    F            1-D, all cases' values flattened and concatenated
    F__offsets   int64, n_cases + 1: case i is F[off[i]:off[i+1]]
    F__ndim      int8 per case: rank of case i's array, -1 = field absent
    F__dims      int64: the present cases' shapes, concatenated

Fields per file:
  vars_grad:   gradients inputs min max num_bits narrow_range dx dmin dmax
  vars:        inputs min max num_bits narrow_range out
  args:        gradients inputs min max num_bits narrow_range out dx
  per_channel: gradients inputs min max num_bits narrow_range out dx dmin dmax

TF runs eagerly on CPU with intra- and inter-op parallelism set to 1, so the
reduction order of dmin/dmax is the single-threaded one and the output is
reproducible byte for byte (the zip members carry a fixed timestamp).

How to run (from the repository root; needs tensorflow-cpu==2.21.0, numpy):

    python3 -m venv /work/tfenv
    /work/tfenv/bin/pip install tensorflow-cpu==2.21.0 numpy
    /work/tfenv/bin/python tools/make_golden.py [--out tests/golden]
"""

import argparse
import io
import math
import os
import platform
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TF executes any op.
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.set_visible_devices([], "GPU")

SCRIPT_NAME = "tools/make_golden.py"
SEED = 20250101
F32 = np.float32
FLT_MAX = float(np.finfo(F32).max)
INF = float("inf")
NAN = float("nan")


def bits_to_f32(*bits):
    return np.array(bits, dtype=np.uint32).view(F32)


# Special input / gradient values (float32).  NaNs with distinct sign and
# payload (incl. a signalling NaN) so payload propagation is visible.
NAN_VARIANTS = bits_to_f32(0x7FC00000, 0xFFC00000, 0x7FC12345, 0x7F800001)
SPECIAL_VALUES = np.concatenate([
    NAN_VARIANTS,
    np.array([INF, -INF, 0.0, -0.0, 1e-40, -1e-40, 1.4e-45, -1.4e-45,
              FLT_MAX, -FLT_MAX, 1.1754944e-38, -1.1754944e-38], dtype=F32),
])
DENORMALS = np.array([1e-40, -1e-40, 1.4e-45, -1.4e-45, 5.877e-39, -3e-39],
                     dtype=F32)


# --------------------------------------------------------------------------
# Shared helpers: quantization range, TF-style nudge, edge-value pools
# --------------------------------------------------------------------------

def qrange(num_bits, narrow_range):
    return (1 if narrow_range else 0), (1 << num_bits) - 1


def nudge(mn, mx, num_bits, narrow_range):
    """TF's Nudge() in float32 (no FTZ/DAZ emulation).

    Returns (nudged_min, nudged_max, scale) as np.float32, or None when the
    zero point is not a finite number (NaN/Inf ranges).
    """
    qmin, qmax = qrange(num_bits, narrow_range)
    qmin_f, qmax_f = F32(qmin), F32(qmax)
    with np.errstate(all="ignore"):
        scale = (F32(mx) - F32(mn)) / (qmax_f - qmin_f)
        zp_from_min = qmin_f - F32(mn) / scale
        if zp_from_min < qmin_f:
            zp = qmin
        elif zp_from_min > qmax_f:
            zp = qmax
        elif math.isnan(float(zp_from_min)):
            return None
        else:  # std::round: half away from zero (exact in double)
            z = float(zp_from_min)
            zp = int(math.copysign(math.floor(abs(z) + 0.5), z))
        nudged_min = (qmin_f - F32(zp)) * scale
        nudged_max = (qmax_f - F32(zp)) * scale
    return F32(nudged_min), F32(nudged_max), F32(scale)


def ulp_neighbours(v, k=2):
    """v and its +-1..k ulp float32 neighbours."""
    out = [F32(v)]
    up = down = F32(v)
    for _ in range(k):
        up = np.nextafter(up, F32(INF))
        down = np.nextafter(down, F32(-INF))
        out += [up, down]
    return out


def edge_values(rng, mn, mx, num_bits, narrow_range, n_levels=6):
    """Pool of interesting inputs for a (min, max, num_bits, narrow) setup:
    nudged bounds +-ulps, exact levels, midpoints between levels +-ulps,
    plus specials."""
    vals = list(SPECIAL_VALUES)
    nz = nudge(mn, mx, num_bits, narrow_range)
    if nz is not None and all(np.isfinite(nz)):
        nmin, nmax, scale = nz
        vals += ulp_neighbours(nmin) + ulp_neighbours(nmax)
        qmin, qmax = qrange(num_bits, narrow_range)
        steps = qmax - qmin
        ks = {0, 1, steps - 1, steps // 2}
        ks.update(int(k) for k in rng.integers(0, max(steps, 1), n_levels))
        with np.errstate(all="ignore"):
            for k in sorted(ks):
                if k < 0 or k > steps:
                    continue
                level = F32(nmin + F32(k) * scale)
                vals.append(level)
                if k < steps:
                    mid = F32(nmin + F32(k + 0.5) * scale)
                    vals += ulp_neighbours(mid, 1)
    vals = np.array(vals, dtype=F32)
    return vals


def finite_span(mn, mx):
    """A finite float64 interval covering [min, max] and some way beyond."""
    a, b = float(mn), float(mx)
    fin = [v for v in (a, b) if math.isfinite(v)]
    if len(fin) == 2 and b > a:
        w = b - a
        lo, hi = a - 0.3 * w, b + 0.3 * w
    else:
        m = max([abs(v) for v in fin] + [0.0])
        m = m if m > 0 else 1.0
        lo, hi = -2.0 * m, 2.0 * m
    return max(lo, -FLT_MAX), min(hi, FLT_MAX)


def uniform_f32(rng, mn, mx, n):
    lo, hi = finite_span(mn, mx)
    return np.clip(rng.uniform(lo, hi, n), -FLT_MAX, FLT_MAX).astype(F32)


def pick_inputs(rng, mn, mx, num_bits, narrow_range, n, mode):
    """n float32 inputs. mode: 'edge' | 'uniform' | 'mixed' | 'special'."""
    if n == 0:
        return np.zeros(0, F32)
    if mode == "uniform":
        return uniform_f32(rng, mn, mx, n)
    if mode == "special":
        pool = SPECIAL_VALUES
    else:
        pool = edge_values(rng, mn, mx, num_bits, narrow_range)
    if mode == "mixed":
        k = n // 2
        x = np.concatenate([rng.choice(pool, n - k), uniform_f32(rng, mn, mx, k)])
    elif n >= len(pool):  # cover the whole pool, pad with uniform
        x = np.concatenate([pool, uniform_f32(rng, mn, mx, n - len(pool))])
    else:
        x = rng.choice(pool, n, replace=False)
    return rng.permutation(x).astype(F32)


def pick_grads(rng, kind, n):
    """n float32 gradients of the given kind."""
    if kind == "normal":
        return rng.standard_normal(n).astype(F32)
    if kind == "special":  # normal with specials sprinkled in
        g = rng.standard_normal(n).astype(F32)
        m = rng.random(n) < 0.35
        g[m] = rng.choice(SPECIAL_VALUES, int(m.sum()))
        return g
    if kind == "special_finite":  # -0.0, +0.0, denormals, huge; no NaN/Inf
        g = rng.standard_normal(n).astype(F32)
        pool = np.array([0.0, -0.0, 1e-40, -1e-40, 1.4e-45, -1.4e-45,
                         3e38, -3e38], F32)
        m = rng.random(n) < 0.4
        g[m] = rng.choice(pool, int(m.sum()))
        return g
    if kind == "wide":  # 1e-30 .. 1e30, mixed signs
        mag = 10.0 ** rng.uniform(-30, 30, n)
        return (mag * rng.choice([-1.0, 1.0], n)).astype(F32)
    if kind == "negative":  # all negative (some -0.0)
        g = -np.abs(rng.standard_normal(n)).astype(F32)
        g[rng.random(n) < 0.2] = F32(-0.0)
        return g
    if kind == "negzero":
        return np.full(n, -0.0, F32)
    if kind == "denormal":
        return rng.choice(DENORMALS, n).astype(F32)
    if kind == "nan_inf":
        pool = np.concatenate([NAN_VARIANTS, np.array([INF, -INF], F32)])
        return rng.choice(pool, n)
    raise ValueError(kind)


GRAD_KINDS = ["normal", "normal", "special", "special_finite", "wide",
              "negative", "negzero", "denormal", "nan_inf"]
INPUT_MODES = ["edge", "edge", "mixed", "uniform", "special"]


def pick_size(rng):
    u = rng.random()
    if u < 0.65:
        return int(rng.integers(1, 17))
    if u < 0.92:
        return int(rng.integers(17, 65))
    return int(rng.integers(65, 301))


def shape_for(rng, n, rank=None):
    """A random shape of the given rank (1..4) with exactly n elements."""
    rank = int(rng.integers(1, 5)) if rank is None else rank
    dims, rem = [], n
    for _ in range(rank - 1):
        divs = [d for d in range(1, rem + 1) if rem % d == 0 and d <= 16]
        d = int(rng.choice(divs))
        dims.append(d)
        rem //= d
    dims.append(rem)
    return tuple(int(v) for v in rng.permutation(dims))


EMPTY_SHAPES = [(0,), (2, 0, 3), (0, 4), (3, 0), (1, 0, 1, 2)]


# --------------------------------------------------------------------------
# (min, max) ranges
# --------------------------------------------------------------------------

TYPICAL_RANGES = [(-6.0, 6.0), (-1.0, 1.0), (0.0, 1.0), (-0.3, 2.7),
                  (-2.5, 0.0)]


def half_zp_range(num_bits, narrow_range, which=0):
    """(min, max) whose float32 zero_point_from_min is exactly qmin + k + 0.5
    (so std::round's tie-breaking decides the zero point)."""
    qmin, qmax = qrange(num_bits, narrow_range)
    steps = qmax - qmin
    k = [0, steps // 2, steps - 1, steps // 3][which % 4]
    scale = 2.0 ** -4
    mn = -(k + 0.5) * scale
    mx = mn + steps * scale
    s = (F32(mx) - F32(mn)) / F32(steps)
    zp = F32(qmin) - F32(mn) / s
    assert float(zp) == qmin + k + 0.5, (num_bits, narrow_range, k, zp)
    return mn, mx


EDGE_RANGES = [
    # tiny / huge
    (-1e-30, 1e-30), (0.0, 1e-30), (-1e-30, 0.0), (-3e-30, 1e-30),
    (-3e38, 3e38), (-1e38, 1e38), (-3e38, 0.0), (0.0, 3e38),
    (-FLT_MAX, FLT_MAX), (-1e38, 2e38),
    # min > max
    (1.0, -1.0), (2.5, 0.5), (0.0, -1.0),
    # min == max
    (1.5, 1.5), (-2.0, -2.0), (0.0, 0.0), (-0.0, 0.0), (0.0, -0.0),
    (-0.0, -0.0),
    # denormals
    (-1e-40, 0.0), (0.0, 1e-40), (-1e-40, 1e-40), (-1e-45, 0.0),
    (0.0, 1e-45), (-1e-45, 1e-45), (1e-40, 1e-40), (-1e-40, 1.0),
    (-1.0, 1e-45), (-1e-40, -0.0), (-0.0, 1e-40),
    # non-finite
    (-INF, 6.0), (-6.0, INF), (-INF, INF), (-INF, 0.0), (0.0, INF),
    (NAN, 1.0), (-1.0, NAN), (NAN, NAN), (INF, INF), (-INF, -INF),
    # entirely positive / negative ranges (zero point clamps)
    (0.5, 3.0), (-3.0, -0.5), (1e-3, 1.0),
]

NB_NR = [(nb, nr) for nb in range(2, 17) for nr in (False, True)]


def common_fields(mn, mx, num_bits, narrow_range):
    return {"min": np.asarray(mn, F32), "max": np.asarray(mx, F32),
            "num_bits": np.array(num_bits, np.int32),
            "narrow_range": np.array(bool(narrow_range))}


def as_f32(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t, dtype=F32)


# --------------------------------------------------------------------------
# Case container and writer
# --------------------------------------------------------------------------

class CaseFile:
    def __init__(self, name, ops):
        self.name = name
        self.ops = ops
        self.cases = []

    def run(self, fields, fn, out_names):
        """Call fn(); store its outputs under out_names, or the error."""
        try:
            outs = fn()
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            assert len(outs) == len(out_names)
            for k, v in zip(out_names, outs):
                fields[k] = as_f32(v)
        except Exception as e:  # record TF's refusal
            for k in out_names:
                fields.pop(k, None)
            fields["error"] = np.array(type(e).__name__)
        self.cases.append(fields)

    def save(self, out_dir):
        arrays = pack_cases(self.cases)
        arrays["meta_tf_version"] = np.array(tf.__version__)
        arrays["meta_numpy_version"] = np.array(np.__version__)
        arrays["meta_script"] = np.array(SCRIPT_NAME)
        arrays["meta_ops"] = np.array(",".join(self.ops))
        arrays["meta_seed"] = np.array(SEED, np.int64)
        arrays["meta_intra_op_threads"] = np.array(
            tf.config.threading.get_intra_op_parallelism_threads(), np.int32)
        arrays["meta_inter_op_threads"] = np.array(
            tf.config.threading.get_inter_op_parallelism_threads(), np.int32)
        arrays["meta_machine"] = np.array(platform.machine())
        path = os.path.join(out_dir, self.name + ".npz")
        write_npz(path, arrays)
        return path


LAYOUT = "concat-v1"


def pack_cases(cases):
    """Cases (list of {field: array}) -> the concat-v1 arrays (see the module
    docstring): per field one flat array + offsets + per-case rank + dims."""
    n = len(cases)
    fields = []
    for c in cases:
        fields += [k for k in c if k not in fields]
    arrays = {"n_cases": np.array(n, np.int64), "layout": np.array(LAYOUT)}
    for f in fields:
        if f == "error":
            errs = []
            for c in cases:
                e = c.get("error")
                if e is None:
                    errs.append("")
                    continue
                s = str(e.item())
                assert e.ndim == 0 and e.dtype.kind == "U", e
                assert s and not s.endswith("\0") and e.dtype == np.array(s).dtype
                errs.append(s)
            arrays["error"] = np.array(errs)
            continue
        present = [np.asarray(c[f]) for c in cases if f in c]
        dtype = present[0].dtype
        assert dtype.kind in "fib" and all(a.dtype == dtype for a in present), f
        offsets, ndims, dims = [0], [], []
        for c in cases:
            a = c.get(f)
            if a is None:
                ndims.append(-1)
                offsets.append(offsets[-1])
            else:
                a = np.asarray(a)
                ndims.append(a.ndim)
                dims += a.shape
                offsets.append(offsets[-1] + a.size)
        arrays[f] = np.concatenate([a.reshape(-1) for a in present])
        arrays[f + "__offsets"] = np.array(offsets, np.int64)
        arrays[f + "__ndim"] = np.array(ndims, np.int8)
        arrays[f + "__dims"] = np.array(dims, np.int64)
    return arrays


def write_npz(path, arrays):
    """Like np.savez_compressed, but with fixed zip timestamps (byte-for-byte
    reproducible) and without zip64 extras (smaller).  Loads with np.load."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


# --------------------------------------------------------------------------
# Op wrappers
# --------------------------------------------------------------------------

Q = tf.quantization


def tf_vars_grad(g, x, mn, mx, nb, nr):
    return Q.fake_quant_with_min_max_vars_gradient(
        g, x, mn, mx, num_bits=nb, narrow_range=nr)


def tf_vars(x, mn, mx, nb, nr):
    return Q.fake_quant_with_min_max_vars(x, mn, mx, num_bits=nb,
                                          narrow_range=nr)


def tf_args(x, mn, mx, nb, nr):
    return Q.fake_quant_with_min_max_args(x, min=mn, max=mx, num_bits=nb,
                                          narrow_range=nr)


def tf_args_grad(g, x, mn, mx, nb, nr):
    return Q.fake_quant_with_min_max_args_gradient(
        g, x, min=mn, max=mx, num_bits=nb, narrow_range=nr)


def tf_pc(x, mn, mx, nb, nr):
    return Q.fake_quant_with_min_max_vars_per_channel(
        x, mn, mx, num_bits=nb, narrow_range=nr)


def tf_pc_grad(g, x, mn, mx, nb, nr):
    return Q.fake_quant_with_min_max_vars_per_channel_gradient(
        g, x, mn, mx, num_bits=nb, narrow_range=nr)


# --------------------------------------------------------------------------
# Case plans shared by vars and vars_grad: list of
# (min, max, num_bits, narrow, shape, input_mode, grad_kind)
# --------------------------------------------------------------------------

def plan_scalar_cases(rng):
    plan = []
    # 1. Sweep: every num_bits x narrow x typical range (+ a .5 zero point).
    for i, (nb, nr) in enumerate(NB_NR):
        ranges = TYPICAL_RANGES + [half_zp_range(nb, nr, i)]
        for j, (mn, mx) in enumerate(ranges):
            n = pick_size(rng)
            plan.append((mn, mx, nb, nr, shape_for(rng, n),
                         ("edge", "mixed")[(i + j) % 2],
                         GRAD_KINDS[(i + j) % 2]))
    # 2. Edge ranges, each with 5 different (num_bits, narrow) settings.
    for j, (mn, mx) in enumerate(EDGE_RANGES):
        for t in range(5):
            nb, nr = NB_NR[(7 * j + 11 * t) % len(NB_NR)]
            if t == 0:
                nb, nr = 8, False
            n = pick_size(rng)
            plan.append((mn, mx, nb, nr, shape_for(rng, n),
                         INPUT_MODES[(j + t) % len(INPUT_MODES)],
                         GRAD_KINDS[(j + t) % len(GRAD_KINDS)]))
    # 3. Gradient / input specials on typical and .5-zero-point ranges.
    for t in range(60):
        nb, nr = NB_NR[(5 * t) % len(NB_NR)]
        rngs = TYPICAL_RANGES + [half_zp_range(nb, nr, t)]
        mn, mx = rngs[t % len(rngs)]
        plan.append((mn, mx, nb, nr, shape_for(rng, pick_size(rng)),
                     INPUT_MODES[t % len(INPUT_MODES)],
                     GRAD_KINDS[2 + t % (len(GRAD_KINDS) - 2)]))
    # 4. 0-d scalars and empty tensors.
    all_ranges = TYPICAL_RANGES + EDGE_RANGES
    for t in range(24):
        mn, mx = all_ranges[(3 * t) % len(all_ranges)]
        nb, nr = NB_NR[(13 * t) % len(NB_NR)]
        plan.append((mn, mx, nb, nr, (), "special" if t % 3 == 0 else "edge",
                     GRAD_KINDS[t % len(GRAD_KINDS)]))
    for t in range(10):
        mn, mx = [(-6.0, 6.0), (0.0, 0.0), (1.0, -1.0), (NAN, 1.0),
                  (-1.0, 1.0)][t % 5]
        plan.append((mn, mx, 8, t % 2 == 1, EMPTY_SHAPES[t % len(EMPTY_SHAPES)],
                     "edge", "normal"))
    # 5. Random fill: any range, any settings.
    for t in range(80):
        nb, nr = NB_NR[int(rng.integers(len(NB_NR)))]
        pool = TYPICAL_RANGES + EDGE_RANGES + [half_zp_range(nb, nr, t)]
        mn, mx = pool[int(rng.integers(len(pool)))]
        plan.append((mn, mx, nb, nr, shape_for(rng, pick_size(rng)),
                     INPUT_MODES[int(rng.integers(len(INPUT_MODES)))],
                     GRAD_KINDS[int(rng.integers(len(GRAD_KINDS)))]))
    return plan


def targeted_grad_cases():
    """Hand-written (g, x, min, max, nb, nr) cases for the findings."""
    f = lambda *v: np.array(v, F32)  # noqa: E731
    specials_x = f(0.5, -0.0, 0.0, 1e-40, -1e-40, NAN, INF, -INF, -7.0, 7.0)
    cases = []
    # min == max == 0 (all zero-sign combos) with denormal / -0.0 / NaN grads
    for mn, mx in [(0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0)]:
        g = f(1e-40, -1e-40, 1.4e-45, -0.0, 0.0, NAN, INF, -INF, -1.0, 2.5)
        g[5] = NAN_VARIANTS[2]
        cases.append((g, specials_x.copy(), mn, mx, 8, False))
    # denormal min/max next to zero: pass-through or quantize?
    x = f(-1.0, -1e-40, -0.0, 0.0, 1e-40, 1.0, 1e-45, NAN)
    g = f(1, 2, 3, 4, 5, 6, 7, 8)
    for mn, mx in [(-1e-40, 0.0), (0.0, 1e-40), (-1e-45, 0.0), (0.0, 1e-45),
                   (-1e-40, 1e-40), (-1e-40, -0.0), (1e-40, 1e-40)]:
        for nr in (False, True):
            cases.append((g.copy(), x.copy(), mn, mx, 8, nr))
    # nothing outside: positive / negative / -0.0 gradients, inside only
    xin = f(-1.0, 0.0, 0.5, 2.0)
    cases.append((f(1, 2, 3, 4), xin, -6.0, 6.0, 8, False))
    cases.append((f(-1, -2, -3, -4), xin, -6.0, 6.0, 8, False))
    cases.append((f(-0.0, -0.0, -0.0, -0.0), xin, -6.0, 6.0, 8, False))
    # only -0.0 gradients outside (both sides), normal inside
    cases.append((f(-0.0, 1.0, -2.0, -0.0), f(-9.0, 0.0, 1.0, 9.0),
                  -6.0, 6.0, 8, False))
    cases.append((f(-0.0, -0.0, -0.0), f(-9.0, 9.0, -100.0), -6.0, 6.0, 8, True))
    # NaN inputs (payload variants) with ordinary / negative gradients
    cases.append((f(1.5, -1.5, 2.0, -2.0), NAN_VARIANTS.copy(), -1.0, 1.0, 8, False))
    # NaN gradient inside / outside; Inf gradient inside / outside
    for xv in (0.0, 5.0, -5.0):
        for gv in list(NAN_VARIANTS) + [INF, -INF]:
            cases.append((f(gv, 1.0), f(xv, 0.25), -1.0, 1.0, 8, False))
    # denormal inputs / gradients on an ordinary range
    cases.append((f(1e-40, -1e-40, 1.4e-45, 1.0, 1.0, 1.0),
                  f(0.1, 0.1, 0.1, 1e-40, -1e-40, -1.4e-45), -1.0, 1.0, 8, False))
    cases.append((f(1e-40, -1e-40, 1.4e-45, -1.4e-45), f(5, 5, -5, -5),
                  -1.0, 1.0, 8, False))
    # denormal x vs a range whose nudged_min is 0 (0 <= x test under DAZ)
    cases.append((f(1, 2, 3, 4), f(-1e-40, -1.4e-45, 1e-40, -0.0), 0.0, 1.0, 8, False))
    cases.append((f(1, 2, 3, 4), f(1e-40, 1.4e-45, -1e-40, 0.0), -1.0, 0.0, 8, False))
    # huge ranges whose scale overflows
    cases.append((f(1, 2, 3, 4, 5), f(-3e38, 0.0, 3e38, NAN, 1.0), -3e38, 3e38, 8, False))
    return cases


def large_cases(rng, count):
    """2000..5000-element cases for the dmin/dmax reduction order."""
    out = []
    settings = [(-6.0, 6.0, 8, False), (-1.0, 1.0, 4, True), (0.0, 1.0, 16, False),
                (-0.3, 2.7, 2, False), (-2.5, 0.0, 12, True), (-1.0, 1.0, 8, False),
                (-6.0, 6.0, 3, True), (0.0, 1.0, 7, False)]
    for t in range(count):
        mn, mx, nb, nr = settings[t % len(settings)]
        n = int(rng.integers(2000, 5001))
        kind = ["wide", "wide", "normal", "wide", "negative", "special_finite",
                "wide", "normal"][t % 8]
        g = pick_grads(rng, kind, n)
        x = uniform_f32(rng, mn, mx, n)  # ~ 23% below, 23% above
        shape = [(n,), shape_for(rng, n, 2), shape_for(rng, n, 3),
                 shape_for(rng, n, 4)][t % 4]
        out.append((g.reshape(shape), x.reshape(shape), mn, mx, nb, nr))
    return out


# --------------------------------------------------------------------------
# Per-op generators
# --------------------------------------------------------------------------

def gen_vars_grad(rng):
    cf = CaseFile("vars_grad", ["FakeQuantWithMinMaxVarsGradient"])

    def add(g, x, mn, mx, nb, nr):
        fields = {"gradients": np.asarray(g, F32), "inputs": np.asarray(x, F32)}
        fields.update(common_fields(mn, mx, nb, nr))
        cf.run(fields, lambda: tf_vars_grad(fields["gradients"], fields["inputs"],
                                            fields["min"], fields["max"], nb, nr),
               ["dx", "dmin", "dmax"])

    for mn, mx, nb, nr, shape, mode, gkind in plan_scalar_cases(rng):
        n = int(np.prod(shape))
        x = pick_inputs(rng, mn, mx, nb, nr, n, mode).reshape(shape)
        g = pick_grads(rng, gkind, n).reshape(shape)
        add(g, x, mn, mx, nb, nr)
    for case in targeted_grad_cases():
        add(*case)
    for case in large_cases(rng, 4):
        add(*case)
    # errors: num_bits out of range, non-scalar min/max, size mismatch
    x = np.array([0.1, 0.5, -0.3], F32)
    g = np.ones(3, F32)
    add(g, x, -1.0, 1.0, 1, False)
    add(g, x, -1.0, 1.0, 17, True)
    add(g, x, np.array([1.0, 1.0], F32), 2.0, 8, False)
    add(g, x, -1.0, np.array([1.0], F32), 8, False)
    add(np.ones(4, F32), x, -1.0, 1.0, 8, False)
    return cf


def gen_vars(rng):
    cf = CaseFile("vars", ["FakeQuantWithMinMaxVars"])

    def add(x, mn, mx, nb, nr):
        fields = {"inputs": np.asarray(x, F32)}
        fields.update(common_fields(mn, mx, nb, nr))
        cf.run(fields, lambda: tf_vars(fields["inputs"], fields["min"],
                                       fields["max"], nb, nr), ["out"])

    for mn, mx, nb, nr, shape, mode, _ in plan_scalar_cases(rng):
        n = int(np.prod(shape))
        add(pick_inputs(rng, mn, mx, nb, nr, n, mode).reshape(shape),
            mn, mx, nb, nr)
    # every level, every midpoint +-1 ulp, for small num_bits
    for nb in (2, 3, 4, 5):
        for nr in (False, True):
            for mn, mx in [(-6.0, 6.0), (-0.3, 2.7), half_zp_range(nb, nr, nb)]:
                nmin, nmax, scale = nudge(mn, mx, nb, nr)
                qmin, qmax = qrange(nb, nr)
                vals = []
                for k in range(qmax - qmin + 1):
                    vals.append(F32(nmin + F32(k) * scale))
                    vals += ulp_neighbours(F32(nmin + F32(k + 0.5) * scale), 1)
                add(np.array(vals, F32), mn, mx, nb, nr)
    # signs of zeros: x = -0.0 / +0.0 / tiny negatives, at many ranges
    zx = np.array([-0.0, 0.0, -1e-40, 1e-40, -1e-7, 1e-7, -1e-3], F32)
    for mn, mx in TYPICAL_RANGES + [(0.0, 0.0), (-0.0, 0.0), (-1e-40, 0.0),
                                    (0.5, 3.0), (-3.0, -0.5), (1.5, 1.5)]:
        add(zx, mn, mx, 8, False)
    for case in large_cases(rng, 1):
        add(case[1], *case[2:])
    # errors
    x = np.array([0.1, 0.5, -0.3], F32)
    add(x, -1.0, 1.0, 1, False)
    add(x, -1.0, 1.0, 17, False)
    add(x, np.array([1.0, 1.0], F32), 2.0, 8, False)
    add(x, -1.0, np.array([[1.0]], F32), 8, True)
    return cf


def gen_args(rng):
    cf = CaseFile("args", ["FakeQuantWithMinMaxArgs",
                           "FakeQuantWithMinMaxArgsGradient"])

    def add(g, x, mn, mx, nb, nr):
        # min/max are float attributes: TF stores them as float32.
        mn32, mx32 = F32(mn), F32(mx)
        fields = {"gradients": np.asarray(g, F32), "inputs": np.asarray(x, F32)}
        fields.update(common_fields(mn32, mx32, nb, nr))
        fmn, fmx = float(mn32), float(mx32)
        cf.run(fields, lambda: (tf_args(fields["inputs"], fmn, fmx, nb, nr),
                                tf_args_grad(fields["gradients"], fields["inputs"],
                                             fmn, fmx, nb, nr)),
               ["out", "dx"])

    # sweep num_bits x narrow over typical ranges (incl. .5 zero point)
    for i, (nb, nr) in enumerate(NB_NR):
        for mn, mx in [TYPICAL_RANGES[i % 5], TYPICAL_RANGES[(i + 2) % 5],
                       half_zp_range(nb, nr, i)]:
            n = pick_size(rng)
            shape = shape_for(rng, n)
            x = pick_inputs(rng, mn, mx, nb, nr, n, ["edge", "mixed"][i % 2])
            g = pick_grads(rng, GRAD_KINDS[i % len(GRAD_KINDS)], n)
            add(g.reshape(shape), x.reshape(shape), mn, mx, nb, nr)
    # edge ranges (those with min >= max or NaN are rejected by TF)
    for j, (mn, mx) in enumerate(EDGE_RANGES):
        nb, nr = NB_NR[(7 * j) % len(NB_NR)]
        n = pick_size(rng)
        shape = shape_for(rng, n)
        x = pick_inputs(rng, mn, mx, nb, nr, n, INPUT_MODES[j % len(INPUT_MODES)])
        g = pick_grads(rng, GRAD_KINDS[j % len(GRAD_KINDS)], n)
        add(g.reshape(shape), x.reshape(shape), mn, mx, nb, nr)
    # 0-d, empty, error num_bits
    for t, shape in enumerate([(), (), (), (0,), (2, 0, 3)]):
        n = int(np.prod(shape))
        mn, mx = TYPICAL_RANGES[t]
        add(pick_grads(rng, "special", n).reshape(shape),
            pick_inputs(rng, mn, mx, 8, False, n, "special").reshape(shape),
            mn, mx, 8, t % 2 == 1)
    x = np.array([0.1, 0.5, -0.3], F32)
    add(np.ones(3, F32), x, -1.0, 1.0, 1, False)
    add(np.ones(3, F32), x, -1.0, 1.0, 17, False)
    add(np.ones(3, F32), x, 1.0, 1.0, 8, False)
    add(np.ones(3, F32), x, -0.0, 0.0, 8, False)
    for g, x, mn, mx, nb, nr in large_cases(rng, 1):
        add(g, x, mn, mx, nb, nr)
    return cf


def pick_channel_ranges(rng, d, style):
    """Per-channel (min, max) arrays of length d."""
    if style == "typical":
        pool = TYPICAL_RANGES
    elif style == "edge":
        pool = EDGE_RANGES
    else:
        pool = TYPICAL_RANGES + EDGE_RANGES
    idx = rng.integers(0, len(pool), d)
    mn = np.array([pool[i][0] for i in idx], F32)
    mx = np.array([pool[i][1] for i in idx], F32)
    return mn, mx


def gen_per_channel(rng):
    cf = CaseFile("per_channel", ["FakeQuantWithMinMaxVarsPerChannel",
                                  "FakeQuantWithMinMaxVarsPerChannelGradient"])

    def add(g, x, mn, mx, nb, nr):
        fields = {"gradients": np.asarray(g, F32), "inputs": np.asarray(x, F32)}
        fields.update(common_fields(mn, mx, nb, nr))
        cf.run(fields, lambda: (tf_pc(fields["inputs"], fields["min"],
                                      fields["max"], nb, nr),)
               + tuple(tf_pc_grad(fields["gradients"], fields["inputs"],
                                  fields["min"], fields["max"], nb, nr)),
               ["out", "dx", "dmin", "dmax"])

    def make(shape, mn, mx, nb, nr, mode, gkind):
        d = shape[-1]
        n = int(np.prod(shape))
        x = np.empty(shape, F32)
        x2 = x.reshape(-1, d) if n else x
        for c in range(d):  # inputs per channel, drawn for that channel's range
            if n:
                x2[:, c] = pick_inputs(rng, mn[c], mx[c], nb, nr, n // d, mode)
        g = pick_grads(rng, gkind, n).reshape(shape)
        add(g, x, mn, mx, nb, nr)

    styles = ["typical", "edge", "mixed"]
    for t in range(110):
        nb, nr = NB_NR[t % len(NB_NR)]
        rank = 1 + (t // 2) % 4
        d = int(rng.integers(1, 7))
        rows = pick_size(rng) // d + 1
        shape = shape_for(rng, rows, rank - 1) + (d,) if rank > 1 else (d,)
        mn, mx = pick_channel_ranges(rng, d, styles[t % 3])
        make(shape, mn, mx, nb, nr, INPUT_MODES[t % len(INPUT_MODES)],
             GRAD_KINDS[t % len(GRAD_KINDS)])
    # all channels' .5 zero points; zero-sign / denormal channels
    for t, (nb, nr) in enumerate(NB_NR[::3]):
        r = [half_zp_range(nb, nr, k) for k in range(4)]
        mn = np.array([a for a, _ in r], F32)
        mx = np.array([b for _, b in r], F32)
        make((3, 4), mn, mx, nb, nr, "edge", "normal")
    mn = np.array([0.0, -0.0, 0.0, -1e-40, 0.0, -6.0], F32)
    mx = np.array([0.0, 0.0, -0.0, 0.0, 1e-40, 6.0], F32)
    make((4, 6), mn, mx, 8, False, "special", "special")
    make((2, 6), mn, mx, 8, False, "edge", "negzero")
    # empty tensors
    make((0, 3), *pick_channel_ranges(rng, 3, "typical"), 8, False, "edge", "normal")
    make((2, 0, 3), *pick_channel_ranges(rng, 3, "typical"), 8, True, "edge", "normal")
    make((2, 0), np.zeros(0, F32), np.zeros(0, F32), 8, False, "edge", "normal")
    # large (column sums)
    for t, (rows, d) in enumerate([(700, 3), (500, 4)]):
        mn = np.array([-6.0, -1.0, 0.0, -0.3, -2.5, -6.0, -1.0, 0.0][:d], F32)
        mx = np.array([6.0, 1.0, 1.0, 2.7, 0.0, 6.0, 1.0, 1.0][:d], F32)
        x = np.stack([uniform_f32(rng, mn[c], mx[c], rows) for c in range(d)], 1)
        g = pick_grads(rng, "wide", rows * d).reshape(rows, d)
        shape = (rows, d) if t == 0 else (5, 4, 25, d)
        add(g.reshape(shape), x.reshape(shape), mn, mx, [8, 5][t], t == 1)
    # errors (those that raise cleanly; scalar inputs abort the process)
    x = np.array([0.1, 0.5, -0.3], F32)
    g = np.ones(3, F32)
    add(g, x, -np.ones(2, F32), np.ones(3, F32), 8, False)
    add(g, x, -np.ones(3, F32), np.ones(2, F32), 8, False)
    add(g, x, F32(-1.0), F32(1.0), 8, False)
    add(g, x, -np.ones(3, F32), np.ones(3, F32), 17, False)
    return cf


# --------------------------------------------------------------------------

def check_roundtrip(cases, name, out_dir):
    """Read the file back with tests/golden_io.py; every case must come back
    with the same fields, dtypes, shapes and bits."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests"))
    try:
        from golden_io import load_cases
    finally:
        sys.path.pop(0)
    got = load_cases(name, directory=out_dir)
    assert len(got) == len(cases), name
    for i, (g, want) in enumerate(zip(got, cases)):
        assert g.pop("id") == i
        assert set(g) == set(want), (name, i, sorted(g), sorted(want))
        for k, w in want.items():
            w = np.asarray(w)
            a = g[k]
            assert a.dtype == w.dtype and a.shape == w.shape, (name, i, k)
            if w.dtype == F32:
                a, w = a.view(np.uint32), w.view(np.uint32)
            assert np.array_equal(a, w), (name, i, k)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not tf.__version__.startswith("2.21."):
        print(f"warning: TF {tf.__version__}, golden data expects 2.21.x",
              file=sys.stderr)

    minimum = {"vars_grad": 600, "vars": 600, "args": 100, "per_channel": 100}
    # Each generator has its own seeded stream: editing one leaves the others.
    gens = [("vars_grad", gen_vars_grad), ("vars", gen_vars),
            ("args", gen_args), ("per_channel", gen_per_channel)]
    total = 0
    for k, (name, gen) in enumerate(gens):
        cf = gen(np.random.default_rng([SEED, k]))
        assert len(cf.cases) >= minimum[name], (name, len(cf.cases))
        path = cf.save(args.out)
        check_roundtrip(cf.cases, name, args.out)
        size = os.path.getsize(path)
        total += size
        n_err = sum("error" in c for c in cf.cases)
        print(f"{path}: {len(cf.cases)} cases ({n_err} errors), {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
