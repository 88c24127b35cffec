# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The Python face of the cfq C core.

All validation and conversion happen here, once; then the kernel runs
inside ``with nogil:``.  The C core checks its own arguments too, but only
as a guard: every error a user can cause is caught here first, with a
message that names the argument.
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

# ---------------------------------------------------------------------------
# Errors


cdef int _raise_for(int rc, str detail="") except -1:
    msg = cfq_strerror(rc).decode() + detail
    if rc == CFQ_ENOMEM:
        raise MemoryError(msg)
    if rc == CFQ_ENULL:
        raise SystemError("cfq: " + msg)
    raise ValueError(msg)

# ---------------------------------------------------------------------------
# Argument conversion


cdef inline bint _is_f32_ready(cnp.ndarray a):
    """float32, native byte order, aligned and C-contiguous: used as is."""
    return (cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
            and cnp.PyArray_ISNOTSWAPPED(a)
            and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef cnp.ndarray _as_f32_array(object value, str name):
    """Any array-like of real numbers as a float32 C-contiguous array; float32
    input that is already laid out so is returned without copying."""
    cdef cnp.ndarray arr
    if type(value) is np.ndarray and _is_f32_ready(<cnp.ndarray>value):
        return <cnp.ndarray>value
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TypeError(f"{name} cannot be converted to an array of real numbers: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers (float or integer), got dtype {arr.dtype}")
    if _is_f32_ready(arr):
        return arr
    # Rounds to nearest, as TF's conversion does; huge values become +-inf.
    # np.errstate, unlike warnings.catch_warnings, is thread-local, and it
    # also holds against a caller's np.errstate(over="raise").
    with np.errstate(over="ignore", invalid="ignore"):
        return np.require(arr, dtype=np.float32, requirements=["C", "A"])


cdef float _as_f32_scalar(object value, str name) except? -1.0:
    """A Python number, NumPy scalar or 0-d array as a finite float32, by
    way of a double, as TF's float attributes (the args ops) and its Python
    scalar conversion (the vars ops) do: integers beyond 2**53 may round
    twice, exactly as in TF."""
    cdef double d
    if PyFloat_Check(value):
        d = PyFloat_AS_DOUBLE(value)
    elif isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    elif PyLong_Check(value):
        try:
            d = float(value)
        except OverflowError:
            raise ValueError(f"{name} must be finite in float32, got {value!r}") from None
    else:
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a real number: {exc}") from None
        if arr.ndim != 0:
            raise ValueError(f"{name} must be a scalar (shape ()), got shape {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real number, got dtype {arr.dtype}")
        d = float(arr.astype(np.float64))
    if not fabs(d) < _F32_OVERFLOW:
        raise ValueError(f"{name} must be finite in float32, got {d!r}")
    return <float>d


cdef Py_ssize_t _first_nonfinite(cnp.ndarray a) noexcept:
    """Index of the first NaN or +-Inf of a float32 C-contiguous array, or -1."""
    cdef const float *p = _cptr(a)
    cdef Py_ssize_t k, n = cnp.PyArray_SIZE(a)
    for k in range(n):
        if not fabs(p[k]) <= _F32_MAX:
            return k
    return -1


cdef cnp.ndarray _as_f32_vector(object value, str name, Py_ssize_t size):
    """Per-channel min/max: a 1-D array-like of `size` finite reals.  A
    float32 vector laid out for the kernels is used as is (the conversions
    and checks by NumPy calls had cost 12 us of a 4K-element call)."""
    cdef object arr, original
    cdef cnp.ndarray ready
    cdef Py_ssize_t c
    if (type(value) is np.ndarray and _is_f32_ready(<cnp.ndarray>value)
            and cnp.PyArray_NDIM(<cnp.ndarray>value) == 1
            and cnp.PyArray_DIMS(<cnp.ndarray>value)[0] == size):
        ready = <cnp.ndarray>value
    else:
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a 1-D array of real numbers, got {type(value).__name__}")
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise TypeError(f"{name} cannot be converted to an array of real numbers: {exc}") from None
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers (float or integer), got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"{name} must be rank 1 (one value per channel), got shape {arr.shape}")
        if arr.shape[0] != size:
            raise ValueError(f"{name} has incorrect size, expected {size} was {arr.shape[0]}")
        with np.errstate(over="ignore"):
            ready = np.require(arr, dtype=np.float32, requirements=["C", "A"])
    c = _first_nonfinite(ready)
    if c >= 0:
        original = np.asarray(value)
        raise ValueError(f"{name}[{c}] must be finite in float32 (channel {c}), got {original[c]!r}")
    return ready


cdef int _as_num_bits(object num_bits) except -1:
    if type(num_bits) is int and 2 <= num_bits <= 16:
        return <int>num_bits
    if isinstance(num_bits, (bool, np.bool_)) or not isinstance(num_bits, (int, np.integer)):
        raise TypeError(f"num_bits must be an int, got {type(num_bits).__name__}")
    if not 2 <= num_bits <= 16:
        raise ValueError(f"num_bits must be between 2 and 16, inclusive, got {num_bits}")
    return <int>num_bits


cdef int _as_narrow_range(object narrow_range) except -1:
    if narrow_range is True or narrow_range is False or isinstance(narrow_range, np.bool_):
        return 1 if narrow_range else 0
    raise TypeError(f"narrow_range must be a bool, got {type(narrow_range).__name__}")


cdef int _as_isa(object isa) except -2:
    """None -> CFQ_ISA_AUTO; a name -> its id, checked to be available."""
    cdef int code
    if isa is None:
        return CFQ_ISA_AUTO
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a str or None, got {type(isa).__name__}")
    code = -1 if "\0" in isa else cfq_isa_from_name(isa.encode())
    if code < 0:
        raise ValueError(f"unknown isa {isa!r}; expected one of 'scalar', 'avx2', 'avx512', 'neon'")
    if not cfq_isa_available(code):
        raise ValueError(f"isa {isa!r} is not available here; available: {available_isas()}")
    return code


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int k, nd = cnp.PyArray_NDIM(a)
    if nd != cnp.PyArray_NDIM(b):
        return False
    for k in range(nd):
        if cnp.PyArray_DIMS(a)[k] != cnp.PyArray_DIMS(b)[k]:
            return False
    return True


cdef inline tuple _shape(cnp.ndarray a):
    return (<object>a).shape


cdef inline bint _overlaps(cnp.ndarray a, cnp.ndarray b):
    """Whether the memory of two C-contiguous arrays intersects."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


cdef cnp.ndarray _out_target(object out, cnp.ndarray like, tuple inputs):
    """The array the kernel writes: `out` itself when it is float32, aligned,
    C-contiguous and either the very buffer of an input or disjoint from all
    of them; otherwise a fresh array (copied into `out` afterwards).  The
    inputs are C-contiguous here (converted if they were not)."""
    cdef cnp.ndarray o, src
    if out is None:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(like), cnp.PyArray_DIMS(like), cnp.NPY_FLOAT32, 0)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != cnp.NPY_FLOAT32:
        raise TypeError(f"out must have dtype float32, got {out.dtype}")
    if not _same_shape(o, like):
        raise ValueError(f"out has shape {_shape(o)}, expected {_shape(like)}")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError("out is read-only")
    if _is_f32_ready(o):
        for src in inputs:
            if (cnp.PyArray_DATA(o) == cnp.PyArray_DATA(src)
                    and cnp.PyArray_NBYTES(o) == cnp.PyArray_NBYTES(src)
                    and cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32):
                continue  # in place over an input: the kernels allow it
            if _overlaps(o, src):
                break
        else:
            return o
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(like), cnp.PyArray_DIMS(like), cnp.NPY_FLOAT32, 0)


cdef tuple _apart_from(cnp.ndarray dst, cnp.ndarray vmin, cnp.ndarray vmax):
    """Per-channel min/max vectors that `dst` does not overlap: the kernels
    read them while writing `dst`, so an `out` sharing their memory gets
    copies of them (they are small)."""
    if _overlaps(dst, vmin):
        vmin = vmin.copy()
    if _overlaps(dst, vmax):
        vmax = vmax.copy()
    return vmin, vmax


cdef object _finish_out(object out, cnp.ndarray result):
    if out is None or out is result:
        return result
    np.copyto(out, result)
    return out


cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    ctypedef struct PyThreadState:
        pass
    PyThreadState *PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState *tstate)
    object PyType_GenericAlloc(PyTypeObject *type, Py_ssize_t nitems)
    void PyTuple_SET_ITEM(object p, Py_ssize_t pos, object o)
    void Py_INCREF(object o)


# Calls on fewer elements keep the GIL: its release and re-acquisition cost
# more than such a call's work (a 1K gradient: 1.58 -> 1.48 x np.add on the
# same arrays), and NumPy keeps it for small loops too.
cdef enum:
    _GIL_FREE_MIN = 4096


cdef inline PyThreadState *_gil_release(size_t n) noexcept:
    return PyEval_SaveThread() if n >= _GIL_FREE_MIN else NULL


cdef inline void _gil_reacquire(PyThreadState *state) noexcept:
    if state != NULL:
        PyEval_RestoreThread(state)


cdef inline object _gradient_result(type cls, object dx, object dmin, object dmax):
    """cls(dx, dmin, dmax) for the namedtuple types, built as tuple.__new__
    does without the Python-level call (about 0.15 us of a 1K call)."""
    cdef object r = PyType_GenericAlloc(<PyTypeObject *>cls, 3)
    Py_INCREF(dx)
    Py_INCREF(dmin)
    Py_INCREF(dmax)
    PyTuple_SET_ITEM(r, 0, dx)
    PyTuple_SET_ITEM(r, 1, dmin)
    PyTuple_SET_ITEM(r, 2, dmax)
    return r


cdef inline cnp.ndarray _f32_scalar_array(float v):
    cdef cnp.ndarray a = cnp.PyArray_EMPTY(0, NULL, cnp.NPY_FLOAT32, 0)
    (<float *>cnp.PyArray_DATA(a))[0] = v
    return a

cdef int _as_threads(object threads, Py_ssize_t n) except -1:
    """None: automatic (see README); else an int >= 1."""
    if threads is None:
        return _auto_threads(n)
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return <int>(threads if threads < CFQ_MAX_THREADS else CFQ_MAX_THREADS)


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# threads=None: one thread below AUTO_THREADS_MIN elements (the hand-off to a
# second thread costs more than it saves), then one thread per
# AUTO_ELEMENTS_PER_THREAD elements, up to the CPUs this process may use.
AUTO_THREADS_MIN = 1 << 18
AUTO_ELEMENTS_PER_THREAD = 1 << 17
cdef int _cpus = _usable_cpus()


cdef int _auto_threads(Py_ssize_t n):
    if n < AUTO_THREADS_MIN or _cpus <= 1:
        return 1
    return <int>min(_cpus, n // AUTO_ELEMENTS_PER_THREAD, CFQ_MAX_THREADS)


cdef cfq_exec _exec(object isa, object threads, Py_ssize_t n) except *:
    cdef cfq_exec ex
    ex.isa = _as_isa(isa)
    ex.threads = _as_threads(threads, n)
    return ex


cdef tuple _two_arrays(object gradients, object inputs):
    cdef cnp.ndarray g = _as_f32_array(gradients, "gradients")
    cdef cnp.ndarray x = _as_f32_array(inputs, "inputs")
    if not _same_shape(g, x):
        raise ValueError(f"gradients and inputs must have the same shape, got {_shape(g)} and {_shape(x)}")
    return g, x


cdef struct _Quant:
    float min
    float max
    int num_bits
    int narrow_range


cdef _Quant _quant(object min, object max, object num_bits, object narrow_range) except *:
    """The scalar arguments every op with a scalar range takes, checked."""
    cdef _Quant q
    q.min = _as_f32_scalar(min, "min")
    q.max = _as_f32_scalar(max, "max")
    q.num_bits = _as_num_bits(num_bits)
    q.narrow_range = _as_narrow_range(narrow_range)
    return q


cdef inline const float *_cptr(cnp.ndarray a):
    return <const float *>cnp.PyArray_DATA(a)


cdef inline float *_ptr(cnp.ndarray a):
    return <float *>cnp.PyArray_DATA(a)


cdef tuple _channel_layout(cnp.ndarray x, object axis):
    """(outer, channels, inner) of a C-contiguous array around `axis`."""
    cdef int nd = cnp.PyArray_NDIM(x)
    cdef int k, ax
    cdef Py_ssize_t outer = 1, inner = 1
    if nd == 0:
        raise ValueError("inputs must have rank >= 1 for per-channel ops, got a scalar (shape ())")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} is out of range for inputs of rank {nd}")
    ax = <int>axis + (nd if axis < 0 else 0)
    for k in range(ax):
        outer *= cnp.PyArray_DIMS(x)[k]
    for k in range(ax + 1, nd):
        inner *= cnp.PyArray_DIMS(x)[k]
    return outer, cnp.PyArray_DIMS(x)[ax], inner

# ---------------------------------------------------------------------------
# Public functions


def fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, num_bits=8,
                                          narrow_range=False, name=None, *, out=None,
                                          threads=None, isa=None):
    """Gradient of fake_quant_with_min_max_vars, bit-exact with TensorFlow 2.21.

    Returns ``FakeQuantWithMinMaxVarsGradient(backprops_wrt_input,
    backprop_wrt_min, backprop_wrt_max)``: a float32 array of the inputs'
    shape and two float32 0-d arrays.  ``gradients`` and ``inputs`` are
    array-likes of real numbers with equal shapes; ``min`` and ``max`` are
    scalars.  ``out``, if given, receives ``backprops_wrt_input`` (it may be
    ``gradients`` or ``inputs`` itself).  ``name`` is accepted and ignored,
    as a drop-in for the TF call.  ``threads``: None (automatic) or a count;
    results are identical for every count.  ``isa`` forces one
    instruction-set path for this call (testing and benchmarks).

    Deliberate differences from TF: the two sums are accumulated in double,
    compensated across 64-element blocks (error about 2**-50 of the sum of
    the terms' magnitudes, against TF's float32 sum; identical on every
    path), and a NaN or infinite ``min``/``max`` raises ValueError.
    """
    cdef cnp.ndarray g, x, dx
    g, x = _two_arrays(gradients, inputs)
    cdef _Quant q = _quant(min, max, num_bits, narrow_range)
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef float dmin = 0.0, dmax = 0.0
    cdef int rc
    dx = _out_target(out, x, (g, x))
    cdef const float *pg = _cptr(g)
    cdef const float *px = _cptr(x)
    cdef float *pdx = _ptr(dx)
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_vars_grad(pg, px, n, q.min, q.max, q.num_bits, q.narrow_range, pdx, &dmin, &dmax, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _gradient_result(FakeQuantWithMinMaxVarsGradient, _finish_out(out, dx),
                            _f32_scalar_array(dmin), _f32_scalar_array(dmax))


cdef enum _ForwardOp:
    _OP_VARS
    _OP_ARGS


cdef object _forward(_ForwardOp op, object inputs, _Quant q, object out, object threads, object isa):
    cdef cnp.ndarray x = _as_f32_array(inputs, "inputs")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef cnp.ndarray dst = _out_target(out, x, (x,))
    cdef const float *px = _cptr(x)
    cdef float *pout = _ptr(dst)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    if op == _OP_VARS:
        rc = cfq_fq_vars(px, n, q.min, q.max, q.num_bits, q.narrow_range, pout, &ex)
    else:
        rc = cfq_fq_args(px, n, q.min, q.max, q.num_bits, q.narrow_range, pout, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc, _args_detail(rc, q))
    return _finish_out(out, dst)


cdef str _args_detail(int rc, _Quant q):
    return f", was: {q.min!r} >= {q.max!r}" if rc == CFQ_EMINMAX else ""


def fake_quant_with_min_max_vars(inputs, min, max, num_bits=8, narrow_range=False, name=None,
                                 *, out=None, threads=None, isa=None):
    """FakeQuantWithMinMaxVars, bit-exact with TensorFlow 2.21: a float32
    array of the inputs' shape.  min == max == 0 gives zeros, as in TF."""
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
    cdef cnp.ndarray dx = _out_target(out, x, (g, x))
    cdef const float *pg = _cptr(g)
    cdef const float *px = _cptr(x)
    cdef float *pdx = _ptr(dx)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_args_grad(pg, px, n, q.min, q.max, q.num_bits, q.narrow_range, pdx, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc, _args_detail(rc, q))
    return _finish_out(out, dx)


def fake_quant_with_min_max_vars_per_channel(inputs, min, max, num_bits=8, narrow_range=False,
                                             name=None, *, axis=-1, out=None, threads=None,
                                             isa=None):
    """FakeQuantWithMinMaxVarsPerChannel, bit-exact with TensorFlow 2.21, on
    any channel axis (TF: last axis only).  ``min``/``max``: 1-D, one value per
    channel (``inputs.shape[axis]``); a channel with min == max == 0 gives 0."""
    cdef cnp.ndarray x = _as_f32_array(inputs, "inputs")
    cdef Py_ssize_t outer, channels, inner
    outer, channels, inner = _channel_layout(x, axis)
    cdef cnp.ndarray vmin = _as_f32_vector(min, "min", channels)
    cdef cnp.ndarray vmax = _as_f32_vector(max, "max", channels)
    cdef int bits = _as_num_bits(num_bits)
    cdef int narrow = _as_narrow_range(narrow_range)
    cdef cfq_exec ex = _exec(isa, threads, cnp.PyArray_SIZE(x))
    cdef cnp.ndarray dst = _out_target(out, x, (x,))
    vmin, vmax = _apart_from(dst, vmin, vmax)
    cdef const float *px = _cptr(x)
    cdef const float *pmin = _cptr(vmin)
    cdef const float *pmax = _cptr(vmax)
    cdef float *pout = _ptr(dst)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(<size_t>cnp.PyArray_SIZE(x))
    rc = cfq_fq_per_channel(px, outer, channels, inner, pmin, pmax, bits, narrow, pout, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _finish_out(out, dst)


def fake_quant_with_min_max_vars_per_channel_gradient(gradients, inputs, min, max, num_bits=8,
                                                      narrow_range=False, name=None, *, axis=-1,
                                                      out=None, threads=None, isa=None):
    """Gradient of the per-channel op: ``FakeQuantWithMinMaxVarsPerChannelGradient(
    backprops_wrt_input, backprop_wrt_min, backprop_wrt_max)``, the last two
    of shape ``[channels]``, summed per channel as accurately and
    deterministically as the scalar op's sums."""
    cdef cnp.ndarray g, x
    g, x = _two_arrays(gradients, inputs)
    cdef Py_ssize_t outer, channels, inner
    outer, channels, inner = _channel_layout(x, axis)
    cdef cnp.ndarray vmin = _as_f32_vector(min, "min", channels)
    cdef cnp.ndarray vmax = _as_f32_vector(max, "max", channels)
    cdef int bits = _as_num_bits(num_bits)
    cdef int narrow = _as_narrow_range(narrow_range)
    cdef cfq_exec ex = _exec(isa, threads, cnp.PyArray_SIZE(x))
    cdef cnp.ndarray dx = _out_target(out, x, (g, x))
    vmin, vmax = _apart_from(dx, vmin, vmax)
    cdef cnp.npy_intp dims[1]
    dims[0] = channels
    cdef cnp.ndarray dmin = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    cdef cnp.ndarray dmax = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT32, 0)
    cdef const float *pg = _cptr(g)
    cdef const float *px = _cptr(x)
    cdef const float *pmin = _cptr(vmin)
    cdef const float *pmax = _cptr(vmax)
    cdef float *pdx = _ptr(dx)
    cdef float *pdmin = _ptr(dmin)
    cdef float *pdmax = _ptr(dmax)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(<size_t>cnp.PyArray_SIZE(x))
    rc = cfq_fq_per_channel_grad(pg, px, outer, channels, inner, pmin, pmax, bits, narrow,
                                 pdx, pdmin, pdmax, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _gradient_result(FakeQuantWithMinMaxVarsPerChannelGradient, _finish_out(out, dx), dmin, dmax)


def fake_quant_with_min_max_vars_and_region(inputs, min, max, num_bits=8, narrow_range=False,
                                            name=None, *, out=None, threads=None, isa=None):
    """fake_quant_with_min_max_vars that also returns each element's region:
    ``(outputs, region)``, region a uint8 array of the inputs' shape with
    0 inside [nudged_min, nudged_max], 1 below, 2 above (3 = both, only when
    nudged_min > nudged_max), 4 none (a NaN input), 8 pass-through
    (min == max == 0).  Keep the region instead of the inputs: the backward
    pass ``fake_quant_region_gradient(gradients, region)`` then reads 1 byte
    per element instead of 4 and gives the same bits."""
    cdef cnp.ndarray x = _as_f32_array(inputs, "inputs")
    cdef _Quant q = _quant(min, max, num_bits, narrow_range)
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef cnp.ndarray dst = _out_target(out, x, (x,))
    cdef cnp.ndarray region = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), cnp.NPY_UINT8, 0)
    cdef const float *px = _cptr(x)
    cdef float *pout = _ptr(dst)
    cdef unsigned char *pr = <unsigned char *>cnp.PyArray_DATA(region)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_vars_and_region(px, n, q.min, q.max, q.num_bits, q.narrow_range, pout, pr, &ex)
    _gil_reacquire(gil)
    if rc != CFQ_OK:
        _raise_for(rc)
    return _finish_out(out, dst), region


def fake_quant_region_gradient(gradients, region, *, out=None, threads=None, isa=None):
    """The vars gradient from region codes (see
    fake_quant_with_min_max_vars_and_region): bit-identical to
    ``fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, ...)``
    on the inputs and min/max that made the codes.  A byte that is not a
    region code is a ValueError; ``out``, if given, may then hold partial
    results (as with a NumPy ufunc that fails part way)."""
    cdef cnp.ndarray g = _as_f32_array(gradients, "gradients")
    cdef cnp.ndarray r
    if not isinstance(region, np.ndarray) or region.dtype != np.uint8:
        raise TypeError("region must be the uint8 array returned by "
                        f"fake_quant_with_min_max_vars_and_region, got {type(region).__name__}"
                        + (f" of dtype {region.dtype}" if isinstance(region, np.ndarray) else ""))
    r = np.require(region, requirements=["C", "A"])  # keeps 0-d as 0-d
    if not _same_shape(g, r):
        raise ValueError(f"gradients and region must have the same shape, got {_shape(g)} and {_shape(r)}")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(g)
    cdef cfq_exec ex = _exec(isa, threads, n)
    cdef cnp.ndarray dx = _out_target(out, g, (g, r))
    cdef float dmin = 0.0, dmax = 0.0
    cdef const float *pg = _cptr(g)
    cdef const unsigned char *pr = <const unsigned char *>cnp.PyArray_DATA(r)
    cdef float *pdx = _ptr(dx)
    cdef int rc
    cdef PyThreadState *gil = _gil_release(n)
    rc = cfq_fq_region_grad(pg, pr, n, pdx, &dmin, &dmax, &ex)
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
