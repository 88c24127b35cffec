"""NumPy model of tfmot 0.8.1's QAT range tracking on TF 2.21 (CPU, x86-64):
LastValueQuantizer / MovingAverageQuantizer, i.e. quant_ops.LastValueQuantize
and MovingAvgQuantize.  Checked bit for bit against tests/golden/tfmot.npz
(tools/make_golden_tfmot.py, whose docstring has the full account) by
tests/test_golden_tfmot_data.py; the cfq.torch tests import it too.

Everything is float32.  The fake quantization itself (output and input
gradient with the updated range) is TF's fake_quant_with_min_max_vars(_per_
channel) and is not modelled here: use cfq's functions.

  batch_range(x, per_axis, symmetric, narrow_range, num_bits, graph=False)
      -> (rmin, rmax): the range a training step tracks (per axis: one value
      per channel of the LAST axis, reduced over every other axis).
  moving_average_update(var, value, decay) -> var - (var - value) * d,
      d = float32(1.0 - decay) with 1.0 - decay in double (TF's
      assign_moving_average, zero_debias=False).
  last_value_update(var, value) -> value.
  track_step(tracking, min_var, max_var, x, training, ...) -> (min, max)
      after one quantizer call (eval: unchanged).

Not modelled (and not in the golden data): denormal batch extremes (TF's
reduce_min/max and minimum/maximum under DAZ return them flushed or raw
depending on their position) and a batch extreme attained by both -0.0 and
+0.0 (which zero TF's reduction returns depends on its order).
"""

import numpy as np

F32 = np.float32
FLT_MIN = np.finfo(F32).tiny  # smallest normal float32

LAST_VALUE, MOVING_AVERAGE = 0, 1          # the golden data's "tracking" codes
TRACKING_NAMES = {LAST_VALUE: "last_value", MOVING_AVERAGE: "moving_average"}
EIGEN_PACKET = 8  # floats per AVX packet in TF's CPU Eigen kernels


def ftz(a):
    """TF's DAZ/FTZ: a denormal becomes a zero of the same sign."""
    a = np.asarray(a, F32)
    return np.where(np.abs(a) < FLT_MIN, np.copysign(F32(0), a), a).astype(F32)


def _tie_takes_second(shape):
    """Where TF's elementwise minimum/maximum return the SECOND operand when
    the operands compare equal (-0.0 vs +0.0): elements in full 8-float
    packets of the (flattened) output, as x86 minps/maxps do; the scalar
    tail and 0-d tensors return the first."""
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    return idx < EIGEN_PACKET * (n // EIGEN_PACKET)


def _tf_min_max(a, b, take_b):
    """Shared by tf_minimum / tf_maximum; take_b: where b is strictly
    better.  NaN in either operand gives NaN."""
    a, b = np.broadcast_arrays(np.asarray(a, F32), np.asarray(b, F32))
    tie = (a == b) & _tie_takes_second(a.shape)
    r = np.where(take_b | tie, b, a)
    r = np.where(np.isnan(b), b, r)
    r = np.where(np.isnan(a), a, r)
    return np.asarray(r, F32)


def tf_minimum(a, b):
    """tf.minimum(a, b) on float32, signed zeros and NaN as TF 2.21 (CPU)."""
    a, b = np.broadcast_arrays(np.asarray(a, F32), np.asarray(b, F32))
    return _tf_min_max(a, b, b < a)


def tf_maximum(a, b):
    """tf.maximum(a, b) on float32, signed zeros and NaN as TF 2.21 (CPU)."""
    a, b = np.broadcast_arrays(np.asarray(a, F32), np.asarray(b, F32))
    return _tf_min_max(a, b, b > a)


def symmetric_ratio(num_bits, narrow_range):
    """tfmot's min_max_ratio: -1 with narrow_range, else -(2^b - 2) / 2^b
    (a Python double; exact in float32 for b <= 24)."""
    if narrow_range:
        return F32(-1.0)
    return F32(-((1 << num_bits) - 2) / (1 << num_bits))


def batch_extremes(x, per_axis):
    """(bmin, bmax): over all elements (0-d), or per channel of the last
    axis over every other axis ((C,); a 1-D x is its own per-channel
    range).  tfmot itself reduces only ranks 1, 2 and 4 per axis."""
    x = np.asarray(x, F32)
    if per_axis:
        x2 = x.reshape(-1, x.shape[-1])
        return x2.min(axis=0).astype(F32), x2.max(axis=0).astype(F32)
    return np.asarray(x.min(), F32), np.asarray(x.max(), F32)


def batch_range(x, per_axis, symmetric, narrow_range, num_bits, graph=False):
    """The range a training step tracks, before the EMA.

    Not symmetric ("include 0"): rmin = minimum(bmin, 0), rmax = maximum(bmax, 0).
    Symmetric: rmin = minimum(bmin, bmax / ratio), rmax = maximum(bmax,
    bmin * ratio), both from the batch's own bmin, bmax (0 is then inside).
    graph=True: as inside a tf.function (Keras fit), where grappler turns
    bmax / ratio into bmax * float32(1 / ratio).
    """
    bmin, bmax = batch_extremes(x, per_axis)
    if not symmetric:
        return tf_minimum(bmin, F32(0)), tf_maximum(bmax, F32(0))
    ratio = symmetric_ratio(num_bits, narrow_range)
    dmin, dmax = ftz(bmin), ftz(bmax)
    if graph:
        widened_min = ftz(dmax * ftz(F32(1) / ratio))
    else:
        widened_min = ftz(dmax / ratio)
    widened_max = ftz(dmin * ratio)
    return tf_minimum(bmin, widened_min), tf_maximum(bmax, widened_max)


def moving_average_update(var, value, decay):
    """TF's assign_moving_average(var, value, decay, zero_debias=False):
    var - (var - value) * d, d = float32(1.0 - decay) (the difference in
    Python double, then rounded), each op in float32 with FTZ/DAZ."""
    d = F32(1.0 - float(decay))
    var, value = ftz(var), ftz(value)
    return ftz(var - ftz(ftz(var - value) * d))


def last_value_update(var, value):
    """LastValueQuantize assigns the batch range (bits copied)."""
    return np.array(value, F32, copy=True)


def track_step(tracking, min_var, max_var, x, training, per_axis, symmetric,
               narrow_range, num_bits, ema_decay=0.999, graph=False):
    """(min, max) after one quantizer call: eval leaves them, training sets
    them to the batch range (last_value) or moves them towards it
    (moving_average).  The call then fake-quantizes x with these values."""
    min_var, max_var = np.asarray(min_var, F32), np.asarray(max_var, F32)
    if not training:
        return min_var.copy(), max_var.copy()
    rmin, rmax = batch_range(x, per_axis, symmetric, narrow_range, num_bits,
                             graph=graph)
    if tracking == LAST_VALUE:
        return last_value_update(min_var, rmin), last_value_update(max_var, rmax)
    if tracking == MOVING_AVERAGE:
        return (moving_average_update(min_var, rmin, ema_decay),
                moving_average_update(max_var, rmax, ema_decay))
    raise ValueError(f"tracking must be {LAST_VALUE} (last_value) or "
                     f"{MOVING_AVERAGE} (moving_average), got {tracking!r}")
