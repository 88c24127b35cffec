# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The Python face of the cfq C core.

All validation and conversion happen here (in _args.pxi), once; then the
kernel runs without the GIL.  The C core checks its own arguments too, but
only as a guard: every error a user can cause is caught here first, with a
message that names the argument.  Arrays of float16 and bfloat16
(ml_dtypes) go to the kernels as they are; every other real dtype is
converted to float32.
"""
from collections import namedtuple
import os

import numpy as np
cimport numpy as cnp
from cpython.float cimport PyFloat_Check, PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_Check
from cpython.pycapsule cimport PyCapsule_New
from libc.math cimport fabs

from cfq.ccfq cimport *

cnp.import_array()

FakeQuantWithMinMaxVarsGradient = namedtuple(
    "FakeQuantWithMinMaxVarsGradient",
    ["backprops_wrt_input", "backprop_wrt_min", "backprop_wrt_max"], module="cfq")
FakeQuantWithMinMaxVarsPerChannelGradient = namedtuple(
    "FakeQuantWithMinMaxVarsPerChannelGradient",
    ["backprops_wrt_input", "backprop_wrt_min", "backprop_wrt_max"], module="cfq")

# Half an ulp above FLT_MAX: doubles at or beyond it overflow float32.
cdef double _F32_OVERFLOW = 3.4028235677973366e38
cdef float _F32_MAX = 3.4028234663852886e38

include "_args.pxi"

# ---------------------------------------------------------------------------
# Public functions


def fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, num_bits=8,
                                          narrow_range=False, name=None, *, out=None,
                                          threads=None, isa=None):
    """Gradient of fake_quant_with_min_max_vars, bit-exact with TensorFlow 2.21.

    Returns ``FakeQuantWithMinMaxVarsGradient(backprops_wrt_input,
    backprop_wrt_min, backprop_wrt_max)``: an array of the inputs' shape and
    dtype (float32, or float16 / bfloat16 as given) and two float32 0-d
    arrays.  ``gradients`` and ``inputs`` are array-likes of real numbers
    with equal shapes (and one dtype where either is float16 or bfloat16);
    ``min`` and ``max`` are scalars.  ``out``, if given, receives
    ``backprops_wrt_input`` (it may be ``gradients`` or ``inputs`` itself).
    ``name`` is accepted and ignored, as a drop-in for the TF call.
    ``threads``: None (automatic) or a count; results are identical for
    every count.  ``isa`` forces one instruction-set path for this call
    (testing and benchmarks).

    Deliberate differences from TF: the two sums are accumulated in double,
    compensated across 256-element blocks (error at most 2**-48 of the sum of
    the terms' magnitudes, against TF's float32 sum; identical on every
    path), and a NaN or infinite ``min``/``max`` raises ValueError.
    """
    cdef cnp.ndarray g, x, dx
    g, x = _two_arrays(gradients, inputs)
    cdef _Quant q = _quant(min, max, num_bits, narrow_range)
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(x)
    cdef float dmin = 0.0, dmax = 0.0
    cdef int rc
    dx = _out_target(out, x, (g, x))
    cdef const void *pg = _data(g)
    cdef const void *px = _data(x)
    cdef void *pdx = _wdata(dx)
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_vars_grad_typed(dt, pg, px, n, q.min, q.max, q.num_bits, q.narrow_range, pdx,
                                &dmin, &dmax, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _gradient_result(FakeQuantWithMinMaxVarsGradient, _finish_out(out, dx),
                            _f32_scalar_array(dmin), _f32_scalar_array(dmax))


cdef enum _ForwardOp:
    _OP_VARS
    _OP_ARGS


cdef object _forward(_ForwardOp op, object inputs, _Quant q, object out, object threads, object isa):
    cdef cnp.ndarray x = _as_elements(inputs, "inputs")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(x)
    cdef cnp.ndarray dst = _out_target(out, x, (x,))
    cdef const void *px = _data(x)
    cdef void *pout = _wdata(dst)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    if op == _OP_VARS:
        rc = cfq_fq_vars_typed(dt, px, n, q.min, q.max, q.num_bits, q.narrow_range, pout, &ex)
    else:
        rc = cfq_fq_args_typed(dt, px, n, q.min, q.max, q.num_bits, q.narrow_range, pout, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc, _args_detail(rc, q))
    return _finish_out(out, dst)


cdef str _args_detail(int rc, _Quant q):
    return f", was: {q.min!r} >= {q.max!r}" if rc == CFQ_EMINMAX else ""


def fake_quant_with_min_max_vars(inputs, min, max, num_bits=8, narrow_range=False, name=None,
                                 *, out=None, threads=None, isa=None):
    """FakeQuantWithMinMaxVars, bit-exact with TensorFlow 2.21: an array of
    the inputs' shape and dtype.  min == max == 0 gives zeros, as in TF."""
    return _forward(_OP_VARS, inputs, _quant(min, max, num_bits, narrow_range), out, threads, isa)


def fake_quant_with_min_max_args(inputs, min=-6.0, max=6.0, num_bits=8, narrow_range=False,
                                 name=None, *, out=None, threads=None, isa=None):
    """FakeQuantWithMinMaxArgs, bit-exact with TensorFlow 2.21.  As the vars
    op, but multiplying by inv_scale = (qmax - qmin) / (max - min) where vars
    divides by scale; min must be smaller than max (ValueError otherwise)."""
    return _forward(_OP_ARGS, inputs, _quant(min, max, num_bits, narrow_range), out, threads, isa)


def fake_quant_with_min_max_args_gradient(gradients, inputs, min=-6.0, max=6.0, num_bits=8,
                                          narrow_range=False, name=None, *, out=None,
                                          threads=None, isa=None):
    """FakeQuantWithMinMaxArgsGradient: gradients where the input lies in the
    nudged range, 0 (times the gradient) elsewhere.  No min/max gradients:
    they are attributes, as in TF."""
    cdef cnp.ndarray g, x
    g, x = _two_arrays(gradients, inputs)
    cdef _Quant q = _quant(min, max, num_bits, narrow_range)
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(x)
    cdef cnp.ndarray dx = _out_target(out, x, (g, x))
    cdef const void *pg = _data(g)
    cdef const void *px = _data(x)
    cdef void *pdx = _wdata(dx)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_args_grad_typed(dt, pg, px, n, q.min, q.max, q.num_bits, q.narrow_range, pdx, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc, _args_detail(rc, q))
    return _finish_out(out, dx)


cdef struct _Channels:
    Py_ssize_t outer, channels, inner
    int num_bits, narrow_range


cdef _Channels _channels(cnp.ndarray x, object axis, object num_bits, object narrow_range) except *:
    cdef _Channels c
    c.outer, c.channels, c.inner = _channel_layout(x, axis)
    c.num_bits = _as_num_bits(num_bits)
    c.narrow_range = _as_narrow_range(narrow_range)
    return c


cdef object _per_channel_forward(object inputs, object min, object max, object num_bits,
                                 object narrow_range, object axis, object out, object threads,
                                 object isa, bint with_region):
    cdef cnp.ndarray x = _as_elements(inputs, "inputs")
    cdef _Channels c = _channels(x, axis, num_bits, narrow_range)
    cdef cnp.ndarray vmin = _as_f32_vector(min, "min", c.channels)
    cdef cnp.ndarray vmax = _as_f32_vector(max, "max", c.channels)
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(x)
    cdef cnp.ndarray dst = _out_target(out, x, (x,))
    cdef cnp.ndarray region = None
    vmin, vmax = _apart_from(dst, vmin, vmax)
    if with_region:
        region = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), cnp.NPY_UINT8, 0)
    cdef const void *px = _data(x)
    cdef const float *pmin = _cptr(vmin)
    cdef const float *pmax = _cptr(vmax)
    cdef void *pout = _wdata(dst)
    cdef unsigned char *pr = <unsigned char *>cnp.PyArray_DATA(region) if with_region else NULL
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    if with_region:
        rc = cfq_fq_per_channel_and_region_typed(dt, px, c.outer, c.channels, c.inner, pmin, pmax,
                                                 c.num_bits, c.narrow_range, pout, pr, &ex)
    else:
        rc = cfq_fq_per_channel_typed(dt, px, c.outer, c.channels, c.inner, pmin, pmax, c.num_bits,
                                      c.narrow_range, pout, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    if with_region:
        return _finish_out(out, dst), region
    return _finish_out(out, dst)


def fake_quant_with_min_max_vars_per_channel(inputs, min, max, num_bits=8, narrow_range=False,
                                             name=None, *, axis=-1, out=None, threads=None,
                                             isa=None):
    """FakeQuantWithMinMaxVarsPerChannel, bit-exact with TensorFlow 2.21, on
    any channel axis (TF: last axis only).  ``min``/``max``: 1-D, one value per
    channel (``inputs.shape[axis]``); a channel with min == max == 0 gives 0."""
    return _per_channel_forward(inputs, min, max, num_bits, narrow_range, axis, out, threads, isa, False)


def fake_quant_with_min_max_vars_per_channel_and_region(inputs, min, max, num_bits=8,
                                                        narrow_range=False, name=None, *, axis=-1,
                                                        out=None, threads=None, isa=None):
    """fake_quant_with_min_max_vars_per_channel that also returns each
    element's region against its channel's nudged range: ``(outputs,
    region)`` (codes as in fake_quant_with_min_max_vars_and_region; 8 for
    every element of a channel with min == max == 0).  The backward pass
    ``fake_quant_per_channel_region_gradient(gradients, region, axis=axis)``
    then gives the per-channel gradient's bits from 1 byte per element."""
    return _per_channel_forward(inputs, min, max, num_bits, narrow_range, axis, out, threads, isa, True)


cdef object _per_channel_result(cnp.ndarray g, object inputs, cnp.ndarray codes, _Channels c,
                                object min, object max, object out, object threads, object isa):
    """The per-channel gradient from inputs (codes None) or from region
    codes (inputs, min, max None)."""
    cdef cnp.ndarray x = g if codes is not None else _as_elements(inputs, "inputs")
    cdef cnp.ndarray vmin = None, vmax = None
    cdef size_t n = <size_t>cnp.PyArray_SIZE(g)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(g)
    cdef cnp.ndarray dx = _out_target(out, g, (g, codes) if codes is not None else (g, x))
    cdef cnp.npy_intp dims[1]
    dims[0] = c.channels
    cdef cnp.ndarray dmin = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    cdef cnp.ndarray dmax = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    if codes is None:
        vmin = _as_f32_vector(min, "min", c.channels)
        vmax = _as_f32_vector(max, "max", c.channels)
        vmin, vmax = _apart_from(dx, vmin, vmax)
    cdef const void *pg = _data(g)
    cdef const void *px = _data(x)
    cdef const unsigned char *pr = <const unsigned char *>cnp.PyArray_DATA(codes) if codes is not None else NULL
    cdef const float *pmin = _cptr(vmin) if codes is None else NULL
    cdef const float *pmax = _cptr(vmax) if codes is None else NULL
    cdef void *pdx = _wdata(dx)
    cdef float *pdmin = _ptr(dmin)
    cdef float *pdmax = _ptr(dmax)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    if codes is None:
        rc = cfq_fq_per_channel_grad_typed(dt, pg, px, c.outer, c.channels, c.inner, pmin, pmax,
                                           c.num_bits, c.narrow_range, pdx, pdmin, pdmax, &ex)
    else:
        rc = cfq_fq_per_channel_region_grad_typed(dt, pg, pr, c.outer, c.channels, c.inner, pdx,
                                                  pdmin, pdmax, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _gradient_result(FakeQuantWithMinMaxVarsPerChannelGradient, _finish_out(out, dx), dmin, dmax)


def fake_quant_with_min_max_vars_per_channel_gradient(gradients, inputs, min, max, num_bits=8,
                                                      narrow_range=False, name=None, *, axis=-1,
                                                      out=None, threads=None, isa=None):
    """Gradient of the per-channel op: ``FakeQuantWithMinMaxVarsPerChannelGradient(
    backprops_wrt_input, backprop_wrt_min, backprop_wrt_max)``, the last two
    float32 of shape ``[channels]``, summed per channel as accurately and
    deterministically as the scalar op's sums."""
    cdef cnp.ndarray g, x
    g, x = _two_arrays(gradients, inputs)
    cdef _Channels c = _channels(x, axis, num_bits, narrow_range)
    return _per_channel_result(g, x, None, c, min, max, out, threads, isa)


def fake_quant_per_channel_region_gradient(gradients, region, *, axis=-1, out=None, threads=None,
                                           isa=None):
    """The per-channel gradient from region codes (see
    fake_quant_with_min_max_vars_per_channel_and_region; the same ``axis``):
    bit-identical to ``fake_quant_with_min_max_vars_per_channel_gradient``
    on the inputs and min/max that made the codes.  A byte that is not a
    region code is a ValueError (``out`` may then hold partial results)."""
    cdef cnp.ndarray g = _as_elements(gradients, "gradients")
    cdef cnp.ndarray r = _as_region(region, g, "fake_quant_with_min_max_vars_per_channel_and_region")
    cdef _Channels c = _channels(g, axis, 8, False)
    return _per_channel_result(g, None, r, c, None, None, out, threads, isa)


cdef cnp.ndarray _as_region(object region, cnp.ndarray g, str maker):
    """Region codes: the uint8 array `maker` returned, of the gradients' shape."""
    cdef cnp.ndarray r
    if (type(region) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>region) == cnp.NPY_UINT8
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>region) and _same_shape(g, <cnp.ndarray>region)):
        return <cnp.ndarray>region  # as the forward op made it: no NumPy calls (np.require: 1 us)
    if not isinstance(region, cnp.ndarray) or region.dtype != np.uint8:
        raise TypeError(f"region must be the uint8 array returned by {maker}, got {type(region).__name__}"
                        + (f" of dtype {region.dtype}" if isinstance(region, cnp.ndarray) else ""))
    r = np.require(region, requirements=["C", "A"])  # keeps 0-d as 0-d
    if not _same_shape(g, r):
        raise ValueError(f"gradients and region must have the same shape, got {_shape(g)} and {_shape(r)}")
    return r


cdef object _forward_and_region(_ForwardOp op, object inputs, _Quant q, object out, object threads,
                                object isa):
    cdef cnp.ndarray x = _as_elements(inputs, "inputs")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(x)
    cdef cnp.ndarray dst = _out_target(out, x, (x,))
    cdef cnp.ndarray region = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), cnp.NPY_UINT8, 0)
    cdef const void *px = _data(x)
    cdef void *pout = _wdata(dst)
    cdef unsigned char *pr = <unsigned char *>cnp.PyArray_DATA(region)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    if op == _OP_VARS:
        rc = cfq_fq_vars_and_region_typed(dt, px, n, q.min, q.max, q.num_bits, q.narrow_range, pout,
                                          pr, &ex)
    else:
        rc = cfq_fq_args_and_region_typed(dt, px, n, q.min, q.max, q.num_bits, q.narrow_range, pout,
                                          pr, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc, _args_detail(rc, q))
    return _finish_out(out, dst), region


def fake_quant_with_min_max_args_and_region(inputs, min=-6.0, max=6.0, num_bits=8,
                                            narrow_range=False, name=None, *, out=None,
                                            threads=None, isa=None):
    """fake_quant_with_min_max_args that also returns each element's region
    against the args op's nudged range: ``(outputs, region)``.  The first
    result of ``fake_quant_region_gradient(gradients, region)`` is then
    ``fake_quant_with_min_max_args_gradient(gradients, inputs, ...)``, bit
    for bit (its min/max sums mean nothing for the args op: TF has none)."""
    return _forward_and_region(_OP_ARGS, inputs, _quant(min, max, num_bits, narrow_range), out,
                               threads, isa)


def fake_quant_with_min_max_vars_and_region(inputs, min, max, num_bits=8, narrow_range=False,
                                            name=None, *, out=None, threads=None, isa=None):
    """fake_quant_with_min_max_vars that also returns each element's region:
    ``(outputs, region)``, region a uint8 array of the inputs' shape with
    0 inside [nudged_min, nudged_max], 1 below, 2 above (3 = both, only when
    nudged_min > nudged_max), 4 none (a NaN input), 8 pass-through
    (min == max == 0).  Keep the region instead of the inputs: the backward
    pass ``fake_quant_region_gradient(gradients, region)`` then reads 1 byte
    per element instead of 4 and gives the same bits."""
    return _forward_and_region(_OP_VARS, inputs, _quant(min, max, num_bits, narrow_range), out,
                               threads, isa)


def fake_quant_region_gradient(gradients, region, *, out=None, threads=None, isa=None):
    """The vars gradient from region codes (see
    fake_quant_with_min_max_vars_and_region): bit-identical to
    ``fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, ...)``
    on the inputs and min/max that made the codes.  A byte that is not a
    region code is a ValueError; ``out``, if given, may then hold partial
    results (as with a NumPy ufunc that fails part way)."""
    cdef cnp.ndarray g = _as_elements(gradients, "gradients")
    cdef cnp.ndarray r = _as_region(region, g, "fake_quant_with_min_max_vars_and_region")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(g)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef int dt = _dtype_code(g)
    cdef cnp.ndarray dx = _out_target(out, g, (g, r))
    cdef float dmin = 0.0, dmax = 0.0
    cdef const void *pg = _data(g)
    cdef const unsigned char *pr = <const unsigned char *>cnp.PyArray_DATA(r)
    cdef void *pdx = _wdata(dx)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_region_grad_typed(dt, pg, pr, n, pdx, &dmin, &dmax, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _gradient_result(FakeQuantWithMinMaxVarsGradient, _finish_out(out, dx),
                            _f32_scalar_array(dmin), _f32_scalar_array(dmax))


def nudge(min, max, num_bits=8, narrow_range=False):
    """TensorFlow's nudge of [min, max]: ``(nudged_min, nudged_max, scale)``
    as numpy.float32 values."""
    cdef _Quant q = _quant(min, max, num_bits, narrow_range)
    cdef float lo = 0.0, hi = 0.0, scale = 0.0
    cdef int rc = cfq_nudge(q.min, q.max, q.num_bits, q.narrow_range, &lo, &hi, &scale)
    if rc != CFQ_OK:
        _raise_for(rc)
    return np.float32(lo), np.float32(hi), np.float32(scale)


def active_isa():
    """The instruction-set path used by default: 'avx512', 'avx2', 'neon' or 'scalar'."""
    return cfq_isa_name(cfq_active_isa()).decode()


def available_isas():
    """The paths this CPU and this build can run, scalar first."""
    cdef int isa
    return [cfq_isa_name(isa).decode() for isa in range(CFQ_ISA_COUNT) if cfq_isa_available(isa)]


cdef extern from "cfq_internal.h" nogil:
    unsigned long long cfq_fp_control()


def _fp_control():
    """The FP control register (MXCSR on x86, FPCR on AArch64), for the
    tests' check that every call leaves it as it found it."""
    return cfq_fp_control()


def _isa_env_status():
    """0 if CFQ_ISA was unset or honoured, else the cfq error code."""
    return cfq_isa_env_status()


C_VERSION = cfq_version().decode()

# The C API table for other extensions (src/cfq_import.h imports it).
_C_API = PyCapsule_New(<void *>cfq_capi_table(), b"cfq._core._C_API", NULL)
include "_xla.pxi"
