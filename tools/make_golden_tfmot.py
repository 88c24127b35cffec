#!/usr/bin/env python3
"""Golden data from tfmot's QAT range tracking (LastValueQuantizer,
MovingAverageQuantizer), step after step, for cfq.torch.FakeQuant.

Writes tests/golden/tfmot.npz (layout "concat-v1", read with
tests/golden_io.py: load_cases("tfmot"), load_meta("tfmot")).  The numbers are
tfmot's own: this script drives tfmot 0.8.1 on TF 2.21 (eager, CPU, intra- and
inter-op threads 1) and records what it computes; nothing here re-implements
the tracking.  tests/tfmot_model.py is the NumPy model of the rules below and
tests/test_golden_tfmot_data.py checks it against this data, bit for bit.

How to run (from the repository root):

    python3 -m venv /work/venvs/tf
    /work/venvs/tf/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 \\
        tensorflow-model-optimization==0.8.1 numpy
    /work/venvs/tf/bin/python tools/make_golden_tfmot.py [--out tests/golden]

(TF_USE_LEGACY_KERAS=1 is set by the script: tfmot needs tf-keras.)

What tfmot does (quant_ops.LastValueQuantize / MovingAvgQuantize, 0.8.1),
verified against this data.  All tensors float32; b = num_bits,
x = the batch, [lo, hi] = the variables min_var, max_var.

  Variables (quantizers._add_range_weights): tf-keras weights, not trainable,
  initialised to -6.0 and 6.0; shape () per tensor, (x.shape[-1],) per axis.
  No constraint, no regulariser.

  Training step (training=True):
  1. Batch range.  Per tensor: bmin = reduce_min(x), bmax = reduce_max(x) over
     all elements.  Per axis (tfmot's per_axis = the LAST axis): over axis 0
     for rank 2, axes (0, 1, 2) for rank 4, none for rank 1 (bmin = bmax = x:
     every element its own channel).  Any other rank raises UnboundLocalError
     (tfmot bug: reduce_dims is only set for ranks 2 and 4).  min and max are
     exact, so the reduction order only matters for which zero comes back
     when both -0.0 and +0.0 are the extreme: not in this data (see below).
  2. Range.  Not symmetric: the "include 0" rule
         rmin = minimum(bmin, 0.0),  rmax = maximum(bmax, 0.0).
     Symmetric: with ratio = -1.0 if narrow_range else -(2^b - 2) / 2^b
     (Python double, exact in float32: -0.5, -0.75, -0.875, -0.9921875 for
     b = 2, 3, 4, 8),
         rmin = minimum(bmin, bmax / ratio)     (float32 division)
         rmax = maximum(bmax, bmin * ratio)     (float32 product)
     both from the ORIGINAL bmin/bmax (AllValuesQuantize, not used here,
     feeds the new bmin into rmax) and no separate 0 rule: rmin <= 0 <= rmax
     follows.  TF's minimum/maximum propagate NaN; on equal operands (only
     -0.0 vs +0.0 differ) they return the FIRST operand for a 0-d tensor and
     for the elements past the last full 8-float packet of a vector
     (Eigen's scalar tail), the SECOND operand for elements in full packets
     of 8 (x86 minps/maxps): element i of a C-vector gets the second operand
     iff i < 8 * (C // 8).  So rmin of a per-tensor batch whose min is -0.0
     is -0.0, and channel 3 of 12 with bmax = -0.0 gets rmax = +0.0, channel
     9 gets -0.0.
  3. Update.  last_value: lo, hi = rmin, rmax (assign, bits copied).
     moving_average: tf.__internal__.train.assign_moving_average(var, r,
     decay, zero_debias=False):  d = float32(1.0 - decay) (the difference
     in Python double, then rounded: 0.999 -> float32(0.0010000000000000009)
     = 0x3a83126f, not 1 - float32(0.999); 0.9 -> 0x3dcccccd), then
         var <- var - (var - r) * d     (three float32 ops, no FMA)
     (the default distribution strategy's MEAN over one replica is the
     identity).  MovingAverageQuantizer hard-codes decay 0.999; other
     decays only through quant_ops.MovingAvgQuantize (driver 1 below).
  4. Output: tf.quantization.fake_quant_with_min_max_vars (per tensor) or
     ..._per_channel (per axis) of x with the UPDATED lo, hi (a read of the
     variable after the assign).
  5. Input gradient: FakeQuantWithMinMaxVarsGradient's backprops_wrt_input
     only, dx = g * (nudged_lo <= x <= nudged_hi ? 1 : 0), of the updated
     range.  No gradient flows through reduce_min/max or the EMA into x (the
     assign cuts it).

  Eval step (training=False): fake quant with the stored lo, hi; nothing is
  updated; dx as above.

  Denormals: TF's kernels run with FTZ/DAZ, so the subtraction, product and
  division above flush denormal operands and results to signed zero (the
  assign itself copies bits).  This data has no denormal in a training batch
  and no EMA result below FLT_MIN (TF's reduce_min/max and minimum/maximum
  under DAZ are inconsistent: a denormal extreme can come back flushed or
  raw depending on its position), only in eval batches, where cfq's fake
  quant handles them.

  tf.function (what Keras fit runs): the same bits, except that grappler's
  constant folding rewrites the symmetric widening's bmax / ratio into
  bmax * float32(1 / ratio) (1 / ratio rounded in float32: -1.3333334
  0xbfaaaaab for b = 3, -1.1428572 0xbf924925 for b = 4, -1.007874
  0xbf810204 for b = 8; exact for narrow_range and b = 2), which moves rmin
  by an ulp for some batches (about 4.5% of random values at b = 8, 54% at
  b = 4).  The script checks eager == tf.function for every other
  configuration and records the symmetric, not narrow, b != 2 sequences a
  second time through tf.function (field "graph").

Cases: one per step.  A "sequence" is one quantizer (fresh variables,
initial range (-6, 6) in 3 of 5 sequences, else (-1, 1) or (-0.25, 3.5)
assigned before step 0) fed 7 steps in a row, in the order of "step": 5
training and 2 eval steps, "TTTTTEE" or "TTETTTE" (so an eval step between
training steps).  Training batches: crossing 0, all positive, all negative,
max -0.0 (all <= 0), min +0.0 (all >= 0), signed zeros inside, all zeros of
one sign; per axis mixed across channels; and "boundary" batches whose
inner values sit on the quantization grid (levels, midpoints +-1 ulp,
nudged bounds +-ulps) of the range tfmot will give them (found by running
tfmot on a scratch copy of the variables first).  Eval batches: on the
grid of the stored range, beyond it, and with NaN, +-Inf, signed zeros,
denormals, +-3e38 inputs and NaN/Inf/-0.0 gradients.  Upstream gradients
are multiples of 1/64 in [-4, 4].  Fields (all 0-d unless said):

  sequence     int32, step int32 (0-based within the sequence)
  training     bool
  tracking     int32: 0 = last_value (LastValueQuantizer),
                      1 = moving_average (MovingAverageQuantizer)
  driver       int32: 0 = the quantizer class: q.build(shape, name, layer) on
                      a tf-keras Layer, then q(x, training, weights);
                      1 = quant_ops.MovingAvgQuantize(x, min_var, max_var,
                      per_channel, ema_decay, is_training=training, ...) on
                      variables made by tfmot's _add_range_weights with
                      per_axis (the class cannot do per-axis: its build()
                      ignores per_axis; nor other decays)
  graph        bool: False = eager (op by op, the formulas above), True =
               the same quantizer calls inside a tf.function, fed the same
               inputs as the eager sequence with the same config (its twin)
  per_axis, symmetric, narrow_range  bool;  num_bits int32
  ema_decay    float64, the Python float given to tfmot (moving_average only)
  fed_2d       bool: tfmot saw inputs.reshape(-1, C) (rank-3 per-axis, which
               tfmot itself refuses); inputs, gradients, out, dx are stored
               in the original shape
  inputs, gradients   float32, the batch and the upstream gradient
  min_before, max_before  float32, the variables before the step
  min, max     float32, the variables after the step = the range the fake
               quant used
  out, dx      float32, the output and the tape's input gradient
  error        present on error cases only (then no min/max/out/dx): the
               exception class tfmot raised

Meta: meta_tf_version, meta_tfmot_version, meta_tf_keras_version,
meta_numpy_version, meta_script, meta_seed, meta_codes, meta_machine,
meta_intra_op_threads, meta_inter_op_threads.
"""

import argparse
import os
import platform
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# make_golden sets TF to one thread before any op runs; its writer is reused.
import make_golden as mg  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
from tensorflow_model_optimization.python.core.quantization.keras import (  # noqa: E402
    quant_ops, quantizers)

SCRIPT_NAME = "tools/make_golden_tfmot.py"
NAME = "tfmot"
SEED = 20250610
F32 = np.float32
LAST_VALUE, MOVING_AVERAGE = 0, 1
VIA_CLASS, VIA_QUANT_OPS = 0, 1
CODES = ("tracking: 0=last_value 1=moving_average; "
         "driver: 0=quantizer class 1=quant_ops.MovingAvgQuantize")


# --------------------------------------------------------------------------
# Driving tfmot
# --------------------------------------------------------------------------

class Tracker:
    """One tfmot quantizer with its own variables; step() runs one call under
    a GradientTape (eagerly, or through tf.function with graph=True)."""

    def __init__(self, tracking, per_axis, symmetric, narrow_range, num_bits,
                 decay, via, tf_shape, graph=False):
        self.layer = keras.layers.Layer()
        cfg = dict(num_bits=num_bits, per_axis=per_axis, symmetric=symmetric,
                   narrow_range=narrow_range)
        shape = tf.TensorShape(tf_shape)
        if tracking == LAST_VALUE:
            q = quantizers.LastValueQuantizer(**cfg)
            self.w = q.build(shape, "q", self.layer)
            call = lambda x, t: q(x, t, self.w)  # noqa: E731
        elif via == VIA_CLASS:
            assert decay == 0.999
            q = quantizers.MovingAverageQuantizer(**cfg)
            self.w = q.build(shape, "q", self.layer)
            call = lambda x, t: q(x, t, self.w)  # noqa: E731
        else:
            q = quantizers.MovingAverageQuantizer(**cfg)
            # tfmot's own helper, as LastValueQuantizer.build calls it.
            self.w = q._add_range_weights(self.layer, "q", per_axis, shape)

            def call(x, t):
                return quant_ops.MovingAvgQuantize(
                    x, self.w["min_var"], self.w["max_var"],
                    per_channel=per_axis, ema_decay=decay, is_training=t,
                    num_bits=num_bits, narrow_range=narrow_range,
                    symmetric=symmetric)

        def impl(x, g, training):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = call(x, training)
            return y, tape.gradient(y, x, output_gradients=g)

        if graph:
            fns = {t: tf.function(lambda x, g, t=t: impl(x, g, t))
                   for t in (True, False)}
            self.fn = lambda x, g, t: fns[t](x, g)  # noqa: E731
        else:
            self.fn = impl

    def state(self):
        return (mg.as_f32(self.w["min_var"].numpy()),
                mg.as_f32(self.w["max_var"].numpy()))

    def set_state(self, mn, mx):
        self.w["min_var"].assign(np.broadcast_to(F32(mn), self.w["min_var"].shape))
        self.w["max_var"].assign(np.broadcast_to(F32(mx), self.w["max_var"].shape))

    def step(self, x, g, training):
        y, dx = self.fn(tf.constant(x), tf.constant(g), training)
        mn, mx = self.state()
        return mg.as_f32(y), mn, mx, mg.as_f32(dx)


# --------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------

# Per-channel (or per-tensor) value styles of a training batch.  No NaN/Inf
# (cfq refuses such ranges), no denormal, and never both -0.0 and +0.0 among
# the elements attaining the extreme (TF's pick between them depends on its
# reduction order).
STYLES = ["cross", "pos", "neg", "zero_top", "zero_bottom", "mid_zeros",
          "allzero_pos", "allzero_neg"]


def style_values(rng, style, n):
    """n float32 values in the given style."""
    s = 10.0 ** rng.uniform(-1.0, 0.8)
    if style in ("allzero_pos", "allzero_neg"):
        return np.full(n, -0.0 if style == "allzero_neg" else 0.0, F32)
    if style in ("pos", "neg", "zero_top", "zero_bottom"):
        lo = s * rng.uniform(0.05, 0.6)
        v = rng.uniform(lo, lo + s, n)
        if style in ("neg", "zero_top"):
            v = -v
        v = v.astype(F32)
        if style == "zero_top" and n > 1:      # all <= 0, max is -0.0
            v[rng.choice(n, max(1, n // 6), replace=False)] = F32(-0.0)
        if style == "zero_bottom" and n > 1:   # all >= 0, min is +0.0
            v[rng.choice(n, max(1, n // 6), replace=False)] = F32(0.0)
        return v
    v = (rng.standard_normal(n) * s).astype(F32)
    if n >= 2:  # make sure it crosses 0
        v[0], v[1] = abs(v[0]) + F32(0.01), -abs(v[1]) - F32(0.01)
    if style == "mid_zeros" and n >= 4:  # signed zeros strictly inside
        v[2], v[3] = F32(-0.0), F32(0.0)
    return rng.permutation(v).astype(F32)


def channel_view(x, per_axis):
    """x as [n, C] (C = 1 per tensor): column c is channel c."""
    return x.reshape(-1, x.shape[-1]) if per_axis else x.reshape(-1, 1)


def make_batch(rng, shape, per_axis, styles):
    x = np.empty(shape, F32)
    cv = channel_view(x, per_axis)
    for c in range(cv.shape[1]):
        cv[:, c] = style_values(rng, styles[c % len(styles)], cv.shape[0])
    return x


def grid_values(nmin, nmax, scale, rng, k_levels=6):
    """Nudged bounds +-ulps, exact levels, level midpoints +-1 ulp."""
    vals = mg.ulp_neighbours(nmin) + mg.ulp_neighbours(nmax)
    steps = int(round(float((nmax - nmin) / scale))) if scale > 0 else 0
    if steps > 0:
        ks = {0, 1, steps - 1, steps // 2}
        ks.update(int(k) for k in rng.integers(0, steps, k_levels))
        for k in sorted(ks):
            vals.append(F32(nmin + F32(k) * scale))
            vals += mg.ulp_neighbours(F32(nmin + F32(k + 0.5) * scale), 1)
    return np.array(vals, F32)


def boundary_fill(rng, x, per_axis, mn, mx, num_bits, narrow_range,
                  inside_only):
    """Replace elements of x by values on the quantization grid of the range
    (mn, mx) (per channel).  inside_only: keep every channel's min and max
    elements and use only values within them (so a training batch keeps
    its range); else also values beyond the range."""
    x = x.copy()
    cv = channel_view(x, per_axis)
    mn, mx = np.broadcast_to(mn, (cv.shape[1],)), np.broadcast_to(mx, (cv.shape[1],))
    for c in range(cv.shape[1]):
        col = cv[:, c]
        nz = mg.nudge(mn[c], mx[c], num_bits, narrow_range)
        if nz is None:
            continue
        pool = grid_values(*nz, rng)
        if inside_only:
            lo, hi = col.min(), col.max()
            pool = pool[(pool >= lo) & (pool <= hi) & (pool != 0)]
            keep = {int(np.argmin(col)), int(np.argmax(col))}
        else:
            span = F32(max(abs(float(nz[0])), abs(float(nz[1])), 1e-3))
            pool = np.concatenate([pool, np.array(
                [-0.0, 0.0, -2 * span, 2 * span, -span / 3, span / 5], F32)])
            keep = set()
        free = [i for i in range(col.size) if i not in keep]
        if pool.size and free:
            col[free] = rng.choice(pool, len(free))
        cv[:, c] = col
    return x


EVAL_SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40,
                          3e38, -3e38], F32)


def special_sprinkle(rng, x, frac=0.15):
    """x with NaN, +-Inf, signed zeros, denormals, huge values sprinkled in
    (eval batches only: the stored range stays finite)."""
    y = x.copy().reshape(-1)
    m = rng.random(y.size) < frac
    y[m] = rng.choice(EVAL_SPECIALS, int(m.sum()))
    return y.reshape(x.shape)


def gradients_for(rng, shape, special=False):
    """Upstream gradients: multiples of 1/64 in [-4, 4] (compress well, every
    value distinct enough to show which elements pass)."""
    g = (rng.integers(-256, 257, shape) / 64.0).astype(F32)
    if special:
        m = rng.random(shape) < 0.15
        g[m] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0], F32),
                          int(m.sum()))
    return g


# --------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------

KINDS = [(LAST_VALUE, None), (MOVING_AVERAGE, 0.999), (MOVING_AVERAGE, 0.9)]
SYM_NR = [(False, False), (False, True), (True, False), (True, True)]
PT_SHAPES = [(4, 8), (2, 3, 5), (16,)]
# (shape, fed_2d): rank 2, rank 4 (reduce over 0, 1, 2), rank 1 (no
# reduction), rank 3 fed as [-1, C], and 12 channels (the 8-wide packet rule
# of minimum/maximum on signed zeros).
PA_SHAPES = [((4, 5), False), ((2, 2, 3, 5), False), ((5,), False),
             ((2, 3, 5), True), ((4, 12), False)]
INITS = [(-6.0, 6.0), (-6.0, 6.0), (-6.0, 6.0), (-1.0, 1.0), (-0.25, 3.5)]
# Step schedules: T = training, E = eval.
SCHEDULES = ["TTTTTEE", "TTETTTE"]


def plan_sequences():
    plans = []
    grid = [(nb, sn) for nb in (8, 4) for sn in SYM_NR]
    grid += [(2, SYM_NR[0]), (2, SYM_NR[3]), (3, SYM_NR[1]), (3, SYM_NR[2])]
    for per_axis in (False, True):
        for kind, decay in KINDS:
            for nb, (sym, nr) in grid:
                plans.append(dict(tracking=kind, decay=decay, per_axis=per_axis,
                                  symmetric=sym, narrow_range=nr, num_bits=nb))
    for i, p in enumerate(plans):
        if p["per_axis"]:
            p["shape"], p["fed_2d"] = PA_SHAPES[i % len(PA_SHAPES)]
        else:
            p["shape"], p["fed_2d"] = PT_SHAPES[i % len(PT_SHAPES)], False
        p["init"] = INITS[i % len(INITS)]
        p["schedule"] = SCHEDULES[(i // 3) % 2]
        p["via"] = (VIA_QUANT_OPS if p["tracking"] == MOVING_AVERAGE and
                    (p["decay"] != 0.999 or p["per_axis"]) else VIA_CLASS)
    return plans


def train_styles(rng, k, n_channels, per_axis, shape):
    """Styles of training step k: per tensor one per step, cycling so every
    sequence sees cross, positive, negative and signed-zero batches; per
    axis a mix across channels."""
    order = ["cross", "pos", "neg", "boundary", "zeros"]
    name = order[k % len(order)]
    if name == "zeros":
        name = ["zero_top", "zero_bottom", "mid_zeros", "allzero_pos",
                "allzero_neg"][int(rng.integers(0, 5))]
    if not per_axis:
        return ["cross" if name == "boundary" else name], name == "boundary"
    if len(shape) == 1:  # every element its own channel
        return [str(s) for s in rng.choice(STYLES, n_channels)], False
    if n_channels >= 8 and k % 2 == 1:  # signed-zero ties in and out of the packet
        zs = ["allzero_neg", "zero_top", "allzero_pos", "cross"]
        return [zs[c % 4] for c in range(n_channels)], False
    styles = [str(s) for s in rng.choice(STYLES, n_channels)]
    styles[0] = "cross" if name == "boundary" else name
    return styles, name == "boundary"


def config_fields(p, seq):
    f = {"sequence": np.array(seq, np.int32),
         "tracking": np.array(p["tracking"], np.int32),
         "driver": np.array(p["via"], np.int32),
         "per_axis": np.array(p["per_axis"]),
         "symmetric": np.array(p["symmetric"]),
         "narrow_range": np.array(p["narrow_range"]),
         "num_bits": np.array(p["num_bits"], np.int32),
         "fed_2d": np.array(p["fed_2d"])}
    if p["tracking"] == MOVING_AVERAGE:
        f["ema_decay"] = np.array(p["decay"], np.float64)
    return f


def graph_rewrites(p):
    """True when grappler changes tfmot's arithmetic in a tf.function: the
    symmetric widening's bmax / ratio becomes bmax * float32(1 / ratio),
    which differs unless 1 / ratio is exact (narrow_range: -1; b = 2: -2)."""
    return p["symmetric"] and not p["narrow_range"] and p["num_bits"] != 2


def run_sequence(rng, p, seq, coverage):
    """Cases of one sequence (eager), and of its tf.function twin (same
    inputs) when graph_rewrites(p), else None (then it was checked equal)."""
    shape = p["shape"]
    tf_shape = (int(np.prod(shape)) // shape[-1], shape[-1]) if p["fed_2d"] else shape
    args = (p["tracking"], p["per_axis"], p["symmetric"], p["narrow_range"],
            p["num_bits"], p["decay"], p["via"], tf_shape)
    real, scratch = Tracker(*args), Tracker(*args)
    graph = Tracker(*args, graph=True)
    for t in (real, graph):
        t.set_state(*p["init"])
    n_channels = shape[-1] if p["per_axis"] else 1
    cases, gcases, k_train, k_eval = [], [], 0, 0
    n_differ = 0
    for step, kind in enumerate(p["schedule"]):
        training = kind == "T"
        mn0, mx0 = real.state()
        gmn0, gmx0 = graph.state()
        boundary = False
        if training:
            styles, boundary = train_styles(rng, k_train, n_channels,
                                            p["per_axis"], shape)
            x = make_batch(rng, shape, p["per_axis"], styles)
            if boundary:  # the range this batch will give, from tfmot itself
                scratch.set_state(mn0, mx0)
                _, smn, smx, _ = scratch.step(x.reshape(tf_shape),
                                              np.zeros(tf_shape, F32), True)
                x = boundary_fill(rng, x, p["per_axis"], smn, smx,
                                  p["num_bits"], p["narrow_range"], True)
            g = gradients_for(rng, shape)
            k_train += 1
            coverage_add(coverage, x, p["per_axis"])
        else:
            if k_eval == 0:
                x = boundary_fill(rng, np.zeros(shape, F32), p["per_axis"],
                                  mn0, mx0, p["num_bits"], p["narrow_range"],
                                  False)
                g = gradients_for(rng, shape)
            else:
                x = make_batch(rng, shape, p["per_axis"], ["cross"])
                x = special_sprinkle(rng, x)
                g = gradients_for(rng, shape, special=True)
            k_eval += 1
        res = real.step(x.reshape(tf_shape), g.reshape(tf_shape), training)
        gres = graph.step(x.reshape(tf_shape), g.reshape(tf_shape), training)
        same = all(np.array_equal(a.view(np.uint32), b.view(np.uint32))
                   for a, b in zip(res, gres))
        assert same or graph_rewrites(p), ("tf.function differs", seq, step)
        n_differ += not same
        if boundary:
            assert np.array_equal(res[1].view(np.uint32), smn.view(np.uint32))
            assert np.array_equal(res[2].view(np.uint32), smx.view(np.uint32))
        for lst, (out, mn, mx, dx), b0 in ((cases, res, (mn0, mx0)),
                                           (gcases, gres, (gmn0, gmx0))):
            f = config_fields(p, seq)
            f.update({"graph": np.array(lst is gcases),
                      "step": np.array(step, np.int32),
                      "training": np.array(training),
                      "inputs": x, "gradients": g,
                      "min_before": b0[0], "max_before": b0[1],
                      "min": mn, "max": mx,
                      "out": out.reshape(shape), "dx": dx.reshape(shape)})
            lst.append(f)
    coverage["graph steps differing from eager"] = (
        coverage.get("graph steps differing from eager", 0) + n_differ)
    return cases, (gcases if graph_rewrites(p) else None)


def coverage_add(cov, x, per_axis):
    cv = channel_view(x, per_axis)
    for c in range(cv.shape[1]):
        col = cv[:, c]
        lo, hi = col.min(), col.max()
        key = ("crosses 0" if lo < 0 < hi else "all positive" if lo > 0 else
               "all negative" if hi < 0 else
               "all zero" if lo == 0 and hi == 0 else
               "max is -0.0" if hi == 0 and np.signbit(hi) else
               "min is +0.0" if lo == 0 and not np.signbit(lo) else "other")
        cov[key] = cov.get(key, 0) + 1
        if np.any((col == 0) & np.signbit(col)):
            cov["has -0.0"] = cov.get("has -0.0", 0) + 1


def error_cases(rng, first_seq):
    """Configurations tfmot refuses, recorded with the exception class."""
    out = []
    specs = [
        # LastValueQuantizer per axis on a rank-3 input: reduce_dims unset.
        dict(tracking=LAST_VALUE, decay=None, per_axis=True, symmetric=False,
             narrow_range=False, num_bits=8, shape=(2, 3, 5), fed_2d=False,
             via=VIA_CLASS),
        # MovingAverageQuantizer(per_axis=True): build() makes scalar
        # variables, the EMA's assign_sub of a [C] value then fails.
        dict(tracking=MOVING_AVERAGE, decay=0.999, per_axis=True,
             symmetric=False, narrow_range=False, num_bits=8, shape=(4, 5),
             fed_2d=False, via=VIA_CLASS),
    ]
    for i, p in enumerate(specs):
        t = Tracker(p["tracking"], p["per_axis"], p["symmetric"],
                    p["narrow_range"], p["num_bits"], p["decay"], p["via"],
                    p["shape"])
        mn0, mx0 = t.state()
        x = make_batch(rng, p["shape"], False, ["cross"])
        g = gradients_for(rng, p["shape"])
        f = config_fields(p, first_seq + i)
        f.update({"graph": np.array(False),
                  "step": np.array(0, np.int32), "training": np.array(True),
                  "inputs": x, "gradients": g,
                  "min_before": mn0, "max_before": mx0})
        try:
            t.step(x, g, True)
            raise AssertionError(f"tfmot accepted {p}")
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - tfmot's refusal is the datum
            f["error"] = np.array(type(e).__name__)
        out.append(f)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"))
    args = ap.parse_args()
    for mod, want in ((tf, "2.21."), (tfmot, "0.8.1")):
        if not mod.__version__.startswith(want):
            print(f"warning: {mod.__name__} {mod.__version__}, expected {want}",
                  file=sys.stderr)
    rng = np.random.default_rng(SEED)
    plans = plan_sequences()
    cases, graph_cases, coverage = [], [], {}
    for seq, p in enumerate(plans):
        eager, graph = run_sequence(rng, p, seq, coverage)
        cases += eager
        graph_cases += graph or []
    # The tf.function twins get sequence numbers after the eager ones.
    twins = sorted({int(c["sequence"]) for c in graph_cases})
    for c in graph_cases:
        c["sequence"] = np.array(len(plans) + twins.index(int(c["sequence"])),
                                 np.int32)
    cases += graph_cases
    n_seq = len(plans) + len(twins)
    cases += error_cases(rng, n_seq)
    arrays = mg.pack_cases(cases)
    arrays["meta_tf_version"] = np.array(tf.__version__)
    arrays["meta_tfmot_version"] = np.array(tfmot.__version__)
    arrays["meta_tf_keras_version"] = np.array(keras.__version__)
    arrays["meta_numpy_version"] = np.array(np.__version__)
    arrays["meta_script"] = np.array(SCRIPT_NAME)
    arrays["meta_seed"] = np.array(SEED, np.int64)
    arrays["meta_codes"] = np.array(CODES)
    arrays["meta_machine"] = np.array(platform.machine())
    arrays["meta_intra_op_threads"] = np.array(
        tf.config.threading.get_intra_op_parallelism_threads(), np.int32)
    arrays["meta_inter_op_threads"] = np.array(
        tf.config.threading.get_inter_op_parallelism_threads(), np.int32)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, NAME + ".npz")
    mg.write_npz(path, arrays)
    mg.check_roundtrip(cases, NAME, args.out)
    n_err = sum("error" in c for c in cases)
    n_train = sum(bool(c["training"]) for c in cases if "error" not in c)
    print(f"{path}: {n_seq} sequences ({len(twins)} of them tf.function "
          f"twins), {len(cases)} cases "
          f"({n_train} training steps, {len(cases) - n_err - n_train} eval "
          f"steps, {n_err} errors), {os.path.getsize(path)} bytes")
    print("training-batch channels:", ", ".join(
        f"{k} {v}" for k, v in sorted(coverage.items())))


if __name__ == "__main__":
    main()
