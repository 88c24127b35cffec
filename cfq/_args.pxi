# _args.pxi -- the argument layer of cfq._core (included there): every
# check and conversion a Python call needs, done once, so the C core's own
# checks are only a guard.  Messages name the argument.

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


# ml_dtypes' bfloat16 is a user-defined NumPy type: its type number, once
# an array of it has been seen (reading dtype.name took 0.5 us a call).
cdef int _bfloat16_type_num = -1


cdef int _dtype_code(cnp.ndarray a):
    """The core's dtype of an array the kernels take as it is: CFQ_FLOAT32,
    CFQ_FLOAT16, or CFQ_BFLOAT16 (ml_dtypes' bfloat16, recognised by name:
    without ml_dtypes nothing about it is needed); else -1."""
    global _bfloat16_type_num
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32:
        return CFQ_FLOAT32
    if t == cnp.NPY_FLOAT16:
        return CFQ_FLOAT16
    if t == _bfloat16_type_num:
        return CFQ_BFLOAT16
    # 256 is NPY_USERDEF, the first user-defined type number
    if t >= 256 and cnp.PyArray_ITEMSIZE(a) == 2 and a.dtype.name == "bfloat16":
        _bfloat16_type_num = t
        return CFQ_BFLOAT16
    return -1


cdef inline bint _is_ready(cnp.ndarray a):
    """Native byte order, aligned and C-contiguous, of a dtype the kernels
    take: used as is."""
    return (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and _dtype_code(a) >= 0)


cdef cnp.ndarray _as_real_array(object value, str name):
    """np.asarray(value), rejecting what is not real numbers."""
    cdef cnp.ndarray arr
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TypeError(f"{name} cannot be converted to an array of real numbers: {exc}") from None
    if arr.dtype.kind not in "fiu" and _dtype_code(arr) < 0:
        raise TypeError(f"{name} must hold real numbers (float or integer), got dtype {arr.dtype}")
    return arr


cdef cnp.ndarray _to_f32(cnp.ndarray arr):
    # Rounds to nearest, as TF's conversion does; huge values become +-inf.
    # np.errstate, unlike warnings.catch_warnings, is thread-local, and it
    # also holds against a caller's np.errstate(over="raise").
    with np.errstate(over="ignore", invalid="ignore"):
        return np.require(arr, dtype=np.float32, requirements=["C", "A"])


cdef cnp.ndarray _as_elements(object value, str name):
    """An array-like as the kernels take it: float16 and bfloat16 arrays keep
    their dtype (made native, aligned and C-contiguous), every other real
    dtype becomes float32 (see _to_f32); ready arrays are used as they
    are."""
    cdef cnp.ndarray arr
    if type(value) is cnp.ndarray and _is_ready(<cnp.ndarray>value):
        return <cnp.ndarray>value
    arr = _as_real_array(value, name)
    if _is_ready(arr):
        return arr
    if _dtype_code(arr) == CFQ_FLOAT16 or _dtype_code(arr) == CFQ_BFLOAT16:
        return np.require(arr, dtype=arr.dtype.newbyteorder("="), requirements=["C", "A"])
    return _to_f32(arr)


cdef extern from "numpy/arrayobject.h":
    # NULL descr: the prototype's dtype (bfloat16 too, without a Python call)
    object _new_like_array "PyArray_NewLikeArray" (cnp.ndarray prototype, int order, void *descr,
                                                   int subok)


cdef inline cnp.ndarray _new_like(cnp.ndarray like):
    """An uninitialised C-contiguous array of like's shape and dtype."""
    cdef int t = cnp.PyArray_TYPE(like)
    if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT16:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(like), cnp.PyArray_DIMS(like), t, 0)
    return _new_like_array(like, 0, NULL, 0)  # 0: NPY_CORDER


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
        if arr.dtype.kind not in "fiu" and _dtype_code(<cnp.ndarray>arr) < 0:
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
    if (type(value) is cnp.ndarray and _is_f32_ready(<cnp.ndarray>value)
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
        if arr.dtype.kind not in "fiu" and _dtype_code(arr) < 0:
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
    """The array the kernel writes: `out` itself when it has like's dtype, is
    aligned, C-contiguous and either the very buffer of an input or disjoint
    from all of them; otherwise a fresh array (copied into `out`
    afterwards).  The inputs are C-contiguous here (converted if they were
    not)."""
    cdef cnp.ndarray o, src
    if out is None:
        return _new_like(like)
    if not isinstance(out, cnp.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(like):
        raise TypeError(f"out must have dtype {(<object>like).dtype}, got {out.dtype}")
    if not _same_shape(o, like):
        raise ValueError(f"out has shape {_shape(o)}, expected {_shape(like)}")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError("out is read-only")
    if _is_ready(o):
        for src in inputs:
            if (cnp.PyArray_DATA(o) == cnp.PyArray_DATA(src)
                    and cnp.PyArray_NBYTES(o) == cnp.PyArray_NBYTES(src)
                    and cnp.PyArray_TYPE(src) == cnp.PyArray_TYPE(o)):
                continue  # in place over an input: the kernels allow it
            if _overlaps(o, src):
                break
        else:
            return o
    return _new_like(like)


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
    if type(threads) is int and 1 <= threads < CFQ_MAX_THREADS:  # no np.* lookups on the common call
        return <int>threads
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
# The same as C integers, read once at import (rebinding the Python names
# later changes nothing here): compared with the Python ones, n was boxed on
# every call.
cdef Py_ssize_t _auto_min = AUTO_THREADS_MIN
cdef Py_ssize_t _auto_per_thread = AUTO_ELEMENTS_PER_THREAD


cdef int _auto_threads(Py_ssize_t n):
    cdef Py_ssize_t k
    if n < _auto_min or _cpus <= 1:
        return 1
    k = n // _auto_per_thread
    if k > _cpus:
        k = _cpus
    return <int>(k if k < CFQ_MAX_THREADS else CFQ_MAX_THREADS)


cdef cfq_exec _exec(object isa, object threads, Py_ssize_t n) except *:
    cdef cfq_exec ex
    ex.isa = _as_isa(isa)
    ex.threads = _as_threads(threads, n)
    return ex


cdef tuple _two_arrays(object gradients, object inputs):
    """Gradients and inputs as the kernels take them, of one shape and, where
    either is float16 or bfloat16, one dtype (mixing is a TypeError: which
    of the two a result would have is not for cfq to guess)."""
    cdef cnp.ndarray g = _as_elements(gradients, "gradients")
    cdef cnp.ndarray x = _as_elements(inputs, "inputs")
    if not _same_shape(g, x):
        raise ValueError(f"gradients and inputs must have the same shape, got {_shape(g)} and {_shape(x)}")
    if cnp.PyArray_TYPE(g) != cnp.PyArray_TYPE(x):
        raise TypeError(f"gradients and inputs must have the same dtype, got {(<object>g).dtype} and "
                        f"{(<object>x).dtype}")
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


cdef inline const void *_data(cnp.ndarray a):
    return <const void *>cnp.PyArray_DATA(a)


cdef inline void *_wdata(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


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
    if type(axis) is not int and (isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer))):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} is out of range for inputs of rank {nd}")
    ax = <int>axis + (nd if axis < 0 else 0)
    for k in range(ax):
        outer *= cnp.PyArray_DIMS(x)[k]
    for k in range(ax + 1, nd):
        inner *= cnp.PyArray_DIMS(x)[k]
    return outer, cnp.PyArray_DIMS(x)[ax], inner

