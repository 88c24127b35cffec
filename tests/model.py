"""A NumPy model of TensorFlow 2.21's fake-quant formulas, written from the
kernel source's arithmetic, independent of cfq's C code.

TF runs its CPU kernels with denormals flushed (FTZ and DAZ); NumPy does not,
so the model flushes explicitly: every float32 operand and result goes
through ftz().  All arithmetic is float32, one rounding per operation.
"""
import math

import numpy as np

F32 = np.float32
FLT_MIN = np.finfo(np.float32).tiny


def ftz(a):
    """Denormals to zero of the same sign (what FTZ/DAZ do)."""
    a = np.array(a, dtype=np.float32, copy=True)
    tiny = (a != 0) & (np.abs(a) < FLT_MIN)
    a[tiny] = np.copysign(F32(0), a[tiny])
    return a


def _op(f, *args):
    with np.errstate(all="ignore"):
        return ftz(f(*[ftz(a) for a in args]))


def nudge(min_, max_, num_bits=8, narrow_range=False):
    """(nudged_min, nudged_max, scale, inv_scale) as float32, as TF's Nudge()."""
    qmin = F32(1 if narrow_range else 0)
    qmax = F32((1 << num_bits) - 1)
    mn, mx = ftz(F32(min_)), ftz(F32(max_))
    scale = _op(np.divide, _op(np.subtract, mx, mn), qmax - qmin)
    inv_scale = _op(np.divide, qmax - qmin, _op(np.subtract, mx, mn))
    zp_from_min = _op(np.subtract, qmin, _op(np.divide, mn, scale))
    if zp_from_min < qmin:
        zp = qmin
    elif zp_from_min > qmax:
        zp = qmax
    elif np.isnan(zp_from_min):
        zp = F32(0)  # TF's float -> uint16 cast of NaN on x86-64 and AArch64
    else:
        zp = F32(math.floor(abs(float(zp_from_min)) + 0.5) * (1 if zp_from_min >= 0 else -1))
    nudged_min = _op(np.multiply, _op(np.subtract, qmin, zp), scale)
    nudged_max = _op(np.multiply, _op(np.subtract, qmax, zp), scale)
    return F32(nudged_min), F32(nudged_max), F32(scale), F32(inv_scale)


def vars_grad_terms(gradients, inputs, min_, max_, num_bits=8, narrow_range=False):
    """(dx, below_terms, above_terms): the per-element float32 values TF
    computes; the two sums are sums of the terms."""
    g = ftz(np.asarray(gradients, dtype=np.float32))
    x = ftz(np.asarray(inputs, dtype=np.float32))
    if F32(ftz(F32(min_))) == 0 and F32(ftz(F32(max_))) == 0:
        zeros = np.zeros(g.shape, np.float32)
        return np.asarray(gradients, dtype=np.float32).copy(), zeros, zeros
    nmin, nmax, _, _ = nudge(min_, max_, num_bits, narrow_range)
    one, zero = F32(1), F32(0)
    inside = np.where((x >= nmin) & (x <= nmax), one, zero)
    below = np.where(x < nmin, one, zero)
    above = np.where(x > nmax, one, zero)
    return _op(np.multiply, g, inside), _op(np.multiply, g, below), _op(np.multiply, g, above)


def exact_sum(terms):
    """The float32 value closest to the exact sum, with TF's NaN/Inf rules
    (NaN if any term is NaN or both infinities appear, else the infinity)."""
    t = np.asarray(terms, dtype=np.float64).ravel()
    if np.isnan(t).any():
        return F32(np.nan)
    pos, neg = np.isposinf(t).any(), np.isneginf(t).any()
    if pos and neg:
        return F32(np.nan)
    if pos or neg:
        return F32(np.inf if pos else -np.inf)
    with np.errstate(over="ignore"):
        return ftz(F32(math.fsum(t.tolist())))[()]


def vars_grad(gradients, inputs, min_, max_, num_bits=8, narrow_range=False):
    dx, below, above = vars_grad_terms(gradients, inputs, min_, max_, num_bits, narrow_range)
    return dx, exact_sum(below), exact_sum(above)


def _clamp(x, lo, hi):
    """std::max(std::min(x, hi), lo) elementwise: a NaN x stays NaN."""
    c = np.where(hi < x, hi, x)
    return np.where(c < lo, lo, c).astype(np.float32)


def _forward(x, nmin, nmax, scale, inv_scale, divide):
    x = ftz(np.asarray(x, dtype=np.float32))
    quant_zero = np.floor(_op(np.add, _op(np.multiply, -nmin, inv_scale), F32(0.5)))
    shifted = _op(np.subtract, _clamp(x, nmin, nmax), nmin)
    q = _op(np.divide, shifted, scale) if divide else _op(np.multiply, shifted, inv_scale)
    q = _op(np.add, _op(np.subtract, q, quant_zero), F32(0.5))
    return _op(np.multiply, np.floor(q), scale)


def vars_forward(inputs, min_, max_, num_bits=8, narrow_range=False):
    x = np.asarray(inputs, dtype=np.float32)
    if F32(ftz(F32(min_))) == 0 and F32(ftz(F32(max_))) == 0:
        return np.zeros(x.shape, np.float32)
    nmin, nmax, scale, inv_scale = nudge(min_, max_, num_bits, narrow_range)
    return _forward(x, nmin, nmax, scale, inv_scale, divide=True)


def args_forward(inputs, min_, max_, num_bits=8, narrow_range=False):
    nmin, nmax, scale, inv_scale = nudge(min_, max_, num_bits, narrow_range)
    return _forward(np.asarray(inputs, np.float32), nmin, nmax, scale, inv_scale, divide=False)


def args_grad(gradients, inputs, min_, max_, num_bits=8, narrow_range=False):
    return vars_grad_terms(gradients, inputs, min_, max_, num_bits, narrow_range)[0]


def per_channel(inputs, mins, maxs, num_bits=8, narrow_range=False, axis=-1):
    x = np.moveaxis(np.asarray(inputs, np.float32), axis, -1)
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        if F32(ftz(F32(mins[c]))) == 0 and F32(ftz(F32(maxs[c]))) == 0:
            out[..., c] = 0
        else:
            out[..., c] = args_forward(x[..., c], mins[c], maxs[c], num_bits, narrow_range)
    return np.moveaxis(out, -1, axis)


def per_channel_grad(gradients, inputs, mins, maxs, num_bits=8, narrow_range=False, axis=-1):
    g = np.moveaxis(np.asarray(gradients, np.float32), axis, -1)
    x = np.moveaxis(np.asarray(inputs, np.float32), axis, -1)
    dx = np.empty_like(x)
    dmin = np.empty(x.shape[-1], np.float32)
    dmax = np.empty(x.shape[-1], np.float32)
    for c in range(x.shape[-1]):
        d, lo, hi = vars_grad_terms(g[..., c], x[..., c], mins[c], maxs[c], num_bits, narrow_range)
        dx[..., c] = d
        dmin[c], dmax[c] = exact_sum(lo), exact_sum(hi)
    return np.moveaxis(dx, -1, axis), dmin, dmax
