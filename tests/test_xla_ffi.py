"""The XLA FFI handlers of src/cfq_xla_ffi.c, called without XLA: through
ctypes, with call frames laid out as XLA's xla/ffi/api/c_api.h lays them out
(declared again here, independently of cfq's declarations), so the version
probe and every size, version, stage, tag, dtype, shape and attribute check
can be driven with deliberately wrong frames (a wrong or mixed dtype is an
XLA error, nothing written); float16 and bfloat16 buffers give the float32
op's bits between the conversions.  Needs no jax (bfloat16: ml_dtypes)."""
import ctypes as C

import numpy as np
import pytest

import cfq
from cfq import _core
from support import BFLOAT16, HALF_DTYPES, assert_bits_equal, downcast, upcast



def xla_dtype(dt):
    """XLA_FFI_DataType of a NumPy dtype."""
    if dt.name == "bfloat16":
        return BF16
    return {np.dtype(np.float32): F32, np.dtype(np.float64): F64, np.dtype(np.float16): F16,
            np.dtype(np.int32): S32, np.dtype(np.uint8): U8}[dt]

F32, F64, PRED, S32, S64, F16, BF16, U8 = 11, 12, 1, 4, 5, 10, 16, 6
BUFFER, SCALAR, EXECUTE, METADATA = 1, 3, 3, 1


class Ext(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("type", C.c_int), ("next", C.c_void_p)]


class ApiVersion(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p),
                ("major_version", C.c_int), ("minor_version", C.c_int)]


class ErrorCreateArgs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p),
                ("message", C.c_char_p), ("errc", C.c_int)]


ERROR_CREATE = C.CFUNCTYPE(C.c_void_p, C.POINTER(ErrorCreateArgs))


class Api(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p),
                ("api_version", ApiVersion), ("internal_api", C.c_void_p),
                ("error_create", ERROR_CREATE), ("more", C.c_void_p * 17)]


class Buffer(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p), ("dtype", C.c_int),
                ("data", C.c_void_p), ("rank", C.c_int64), ("dims", C.POINTER(C.c_int64))]


class Scalar(C.Structure):
    _fields_ = [("dtype", C.c_int), ("value", C.c_void_p)]


class ByteSpan(C.Structure):
    _fields_ = [("ptr", C.c_char_p), ("len", C.c_size_t)]


class Operands(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p), ("size", C.c_int64),
                ("types", C.POINTER(C.c_int)), ("ptrs", C.POINTER(C.c_void_p))]


class Attrs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p), ("size", C.c_int64),
                ("types", C.POINTER(C.c_int)), ("names", C.POINTER(C.POINTER(ByteSpan))),
                ("attrs", C.POINTER(C.c_void_p))]


class CallFrame(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("extension_start", C.c_void_p),
                ("api", C.POINTER(Api)), ("ctx", C.c_void_p), ("stage", C.c_int),
                ("args", Operands), ("rets", Operands), ("attrs", Attrs), ("future", C.c_void_p)]


class Metadata(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("api_version", ApiVersion), ("traits", C.c_uint32),
                ("state_type_id", C.c_int64)]


class MetadataExt(C.Structure):
    _fields_ = [("base", Ext), ("metadata", C.POINTER(Metadata))]


def size_upto(struct, field):
    """c_api.h's XLA_FFI_STRUCT_SIZE: offset of the last member plus its size."""
    f = getattr(struct, field)
    return f.offset + f.size


HANDLER = C.CFUNCTYPE(C.c_void_p, C.POINTER(CallFrame))
_get_pointer = C.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = C.c_void_p
_get_pointer.argtypes = [C.py_object, C.c_char_p]
HANDLERS, API_VERSION = _core._xla_ffi_handlers()


def handler(op):
    return HANDLER(_get_pointer(HANDLERS[op], None))


class Frame:
    """A call frame as XLA builds it, keeping every piece alive; errors the
    handler creates are recorded in .errors (message, code)."""

    def __init__(self, args, rets, attrs, major=0, minor=3):
        self.keep = []
        self.errors = []

        def create(p):
            self.errors.append((p.contents.message.decode(), p.contents.errc))
            return 0x1000 + len(self.errors)  # an opaque non-NULL error

        self.create = ERROR_CREATE(create)
        self.api = Api(size_upto(Api, "more"), None, ApiVersion(size_upto(ApiVersion, "minor_version"),
                                                                None, major, minor), None, self.create)
        self.frame = CallFrame()
        self.frame.struct_size = size_upto(CallFrame, "attrs")
        self.frame.api = C.pointer(self.api)
        self.frame.stage = EXECUTE
        self.frame.args = self._operands(args)
        self.frame.rets = self._operands(rets)
        self.frame.attrs = self._attrs(attrs)

    def _buffer(self, a):
        dims = (C.c_int64 * max(a.ndim, 1))(*a.shape)
        b = Buffer(size_upto(Buffer, "dims"), None, xla_dtype(a.dtype), a.ctypes.data, a.ndim, dims)
        self.keep += [a, dims, b]
        return b

    def _operands(self, arrays):
        bufs = [a if isinstance(a, Buffer) else self._buffer(a) for a in arrays]
        self.buffers = getattr(self, "buffers", []) + bufs
        types = (C.c_int * max(len(bufs), 1))(*([BUFFER] * len(bufs)))
        ptrs = (C.c_void_p * max(len(bufs), 1))(*[C.addressof(b) for b in bufs])
        self.keep += [types, ptrs]
        return Operands(size_upto(Operands, "ptrs"), None, len(bufs), types, ptrs)

    def _attrs(self, attrs):
        items = sorted(attrs.items())
        names, scalars = [], []
        for name, (dtype, value) in items:
            raw = name.encode()
            span = ByteSpan(raw, len(raw))
            ctype = {F32: C.c_float, S32: C.c_int32, S64: C.c_int64, PRED: C.c_uint8, F64: C.c_double}[dtype]
            v = ctype(value)
            s = Scalar(dtype, C.addressof(v))
            self.keep += [raw, span, v, s]
            names.append(C.pointer(span))
            scalars.append(C.addressof(s))
        n = max(len(items), 1)
        types = (C.c_int * n)(*([SCALAR] * len(items)))
        name_arr = (C.POINTER(ByteSpan) * n)(*names)
        attr_arr = (C.c_void_p * n)(*scalars)
        self.keep += [types, name_arr, attr_arr]
        return Attrs(size_upto(Attrs, "attrs"), None, len(items), types, name_arr, attr_arr)

    def call(self, op):
        return handler(op)(C.byref(self.frame))

    def error(self, op):
        result = self.call(op)
        assert result and len(self.errors) == 1, (result, self.errors)
        return self.errors[0][0]


def quant(num_bits=8, narrow_range=False):
    return {"num_bits": (S32, num_bits), "narrow_range": (PRED, int(narrow_range))}


def vars_frame(x, lo=-2.0, hi=2.5, **kw):
    y = np.empty_like(x)
    f = Frame([x, np.array(lo, np.float32), np.array(hi, np.float32)], [y], quant(**kw))
    return f, y


X = (np.random.default_rng(0).normal(size=(3, 100)) * 3).astype(np.float32)


def test_struct_sizes_as_in_the_xla_header():
    # The values c_api.h's STRUCT_SIZE gives on LP64 platforms.
    assert size_upto(CallFrame, "attrs") == 168
    assert size_upto(Buffer, "dims") == 48
    assert size_upto(Metadata, "traits") == 36


def test_version_probe_reports_the_declared_api_version():
    assert API_VERSION == (0, 1)
    md = Metadata(size_upto(Metadata, "traits"), ApiVersion(size_upto(ApiVersion, "minor_version")))
    ext = MetadataExt(Ext(size_upto(MetadataExt, "metadata"), METADATA, None), C.pointer(md))
    for op in HANDLERS:
        md.api_version.major_version = md.api_version.minor_version = -1
        md.traits = 7
        frame = CallFrame(size_upto(CallFrame, "attrs"), C.addressof(ext))  # api NULL, as XLA sends it
        assert handler(op)(C.byref(frame)) is None
        assert (md.api_version.major_version, md.api_version.minor_version) == API_VERSION
        assert md.traits == 0 and md.state_type_id == 0


def test_probe_with_small_structs_writes_nothing_or_reports():
    md = Metadata(size_upto(Metadata, "traits") - 4, ApiVersion(24))  # no room for traits
    ext = MetadataExt(Ext(size_upto(MetadataExt, "metadata"), METADATA, None), C.pointer(md))
    frame = CallFrame(size_upto(CallFrame, "attrs"), C.addressof(ext))
    assert handler("fq_vars")(C.byref(frame)) is None
    assert md.api_version.major_version == 0 and md.api_version.minor_version == 0  # XLA then refuses 0.0
    # With an API table in the frame, the handler says why.
    f = Frame([], [], {})
    f.frame.extension_start = C.addressof(ext)
    assert "metadata probe" in f.error("fq_vars")


def test_a_well_formed_frame_computes_cfq_bits():
    f, y = vars_frame(X)
    assert f.call("fq_vars") is None and not f.errors
    assert_bits_equal(y, cfq.fake_quant_with_min_max_vars(X, -2.0, 2.5))
    g = np.ones_like(X)
    dx, dmin, dmax = np.empty_like(X), np.zeros((), np.float32), np.zeros((), np.float32)
    f = Frame([g, X, np.array(-2.0, np.float32), np.array(2.5, np.float32)], [dx, dmin, dmax], quant())
    assert f.call("fq_vars_grad") is None and not f.errors
    want = cfq.fake_quant_with_min_max_vars_gradient(g, X, -2.0, 2.5)
    assert_bits_equal(dx, want[0])
    assert_bits_equal(dmin, want[1])
    assert_bits_equal(dmax, want[2])
    y = np.empty_like(X)
    f = Frame([X], [y], dict(quant(4, True), min=(F32, -1.0), max=(F32, 3.0)))
    assert f.call("fq_args") is None and not f.errors
    assert_bits_equal(y, cfq.fake_quant_with_min_max_args(X, -1.0, 3.0, 4, True))


def test_other_api_major_version_is_refused():
    f, y = vars_frame(X)
    f.api.api_version.major_version = 1
    assert "XLA FFI API version 1.3 is not supported" in f.error("fq_vars")


@pytest.mark.parametrize("struct", ["frame", "args", "rets", "attrs", "buffer"])
def test_small_structs_are_refused(struct):
    f, y = vars_frame(X)
    if struct == "frame":
        f.frame.struct_size = size_upto(CallFrame, "attrs") - 8
        name = "XLA_FFI_CallFrame"
    elif struct == "buffer":
        f.buffers[0].struct_size = size_upto(Buffer, "dims") - 8
        name = "XLA_FFI_Buffer"
    else:
        getattr(f.frame, struct).struct_size -= 8
        name = "XLA_FFI_" + struct.capitalize()
    msg = f.error("fq_vars")
    assert name in msg and "disagree on the FFI ABI" in msg
    assert f.errors[0][1] == 9  # FAILED_PRECONDITION


def test_no_api_table_means_no_call_and_no_crash():
    f, y = vars_frame(X)
    y[...] = 7.0
    f.api.struct_size = 16  # too small to hold XLA_FFI_Error_Create
    assert f.call("fq_vars") is None and not f.errors
    assert np.all(y == 7.0)


def test_wrong_stage_is_refused():
    f, y = vars_frame(X)
    f.frame.stage = 0
    assert "execution stage 0" in f.error("fq_vars")


def test_bad_buffers_and_attributes_are_refused():
    f = Frame([X.astype(np.float64), np.array(0, np.float32), np.array(1, np.float32)],
              [np.empty_like(X)], quant())
    f.buffers[0].dtype = F64
    assert "inputs must be float32" in f.error("fq_vars")
    f = Frame([X], [np.empty_like(X)], quant())
    assert "expected 3 operands, got 1" in f.error("fq_vars")
    f = Frame([X, np.array(0, np.float32), np.array(1, np.float32)], [np.empty((3, 99), np.float32)],
              quant())
    assert "dimension" in f.error("fq_vars")
    f = Frame([X, np.array(0, np.float32), np.array(1, np.float32)], [np.empty_like(X)],
              {"num_bits": (S32, 8), "narrow": (PRED, 0)})
    assert "needs a scalar attribute narrow_range" in f.error("fq_vars")
    f = Frame([X, np.array(0, np.float32), np.array(1, np.float32)], [np.empty_like(X)],
              {"num_bits": (F32, 8), "narrow_range": (PRED, 0)})
    assert "num_bits must be an int32 or int64" in f.error("fq_vars")
    f = Frame([X], [np.empty_like(X)], dict(quant(), min=(F64, -1.0), max=(F32, 1.0)))
    assert "attribute min must be a float32" in f.error("fq_args")
    lo = np.zeros(5, np.float32)
    f = Frame([X, lo, lo], [np.empty_like(X)], dict(quant(), axis=(S64, 1)))
    assert "axis 1 does not name a channel axis of 5 channels" in f.error("fq_per_channel")


def test_cfq_errors_carry_cfq_messages():
    f, y = vars_frame(X, num_bits=17)
    assert "num_bits must be between 2 and 16, inclusive" in f.error("fq_vars")
    f, y = vars_frame(X, lo=np.nan)
    assert f.error("fq_vars").endswith("min and max must be finite")
    assert f.errors[0][1] == 3  # INVALID_ARGUMENT
    f = Frame([X], [np.empty_like(X)], dict(quant(), min=(F32, 1.0), max=(F32, 1.0)))
    assert "min must be smaller than max" in f.error("fq_args")


def test_batched_operands_broadcast_over_leading_axes():
    # min of shape (3,) against inputs (3, 100): one range per example.
    lo = np.array([-1, -2, -3], np.float32)
    hi = np.array([1, 2, np.inf], np.float32)
    f = Frame([X, lo, hi], [np.empty_like(X)], quant())
    assert f.error("fq_vars").endswith("min and max must be finite (batch element 2)")
    hi[2] = 3
    y = np.empty_like(X)
    f = Frame([X, lo, hi], [y], quant())
    assert f.call("fq_vars") is None
    for i in range(3):
        assert_bits_equal(y[i], cfq.fake_quant_with_min_max_vars(X[i], lo[i], hi[i]))
    # A batch axis of size 2 where the results have 3 is refused.
    f = Frame([X, lo[:2], hi[:2]], [np.empty_like(X)], quant())
    assert "batch dimension 2 at axis 0, expected 1 or 3" in f.error("fq_vars")


# ---------------------------------------------------------------------------
# float16 / bfloat16 element buffers


def f32(v):
    return np.asarray(v, np.float32)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_buffers_compute_the_float32_op_between_the_conversions(dtype):
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype).reshape(4, -1)
    g = np.random.default_rng(1).permutation(x.ravel()).reshape(x.shape)
    y = np.empty_like(x)
    f = Frame([x, f32(-2.0), f32(2.5)], [y], quant())
    assert f.call("fq_vars") is None and not f.errors
    assert_bits_equal(y, downcast(cfq.fake_quant_with_min_max_vars(upcast(x), -2.0, 2.5), dtype))
    # The gradient, one range per example (k = 1: the per-example calls).
    lo, hi = f32([-1, -2, -3, 0]), f32([1, 2, 3, 0])
    dx, dmin, dmax = np.empty_like(x), np.empty(4, np.float32), np.empty(4, np.float32)
    f = Frame([g, x, lo, hi], [dx, dmin, dmax], quant(5, True))
    assert f.call("fq_vars_grad") is None and not f.errors
    for i in range(4):
        want = cfq.fake_quant_with_min_max_vars_gradient(upcast(g[i]), upcast(x[i]), lo[i], hi[i], 5, True)
        assert_bits_equal(dx[i], downcast(want[0], dtype))
        assert_bits_equal(dmin[i], want[1])
        assert_bits_equal(dmax[i], want[2])
    # A range shared by the examples (one per-channel call over them).
    lo, hi = f32([[-2.0]]), f32([[2.5]])
    x3, g3 = x.reshape(2, 2, -1), g.reshape(2, 2, -1)
    dx, dmin, dmax = np.empty_like(x3), np.empty((2, 2), np.float32), np.empty((2, 2), np.float32)
    f = Frame([g3, x3, lo.reshape(1, 1), hi.reshape(1, 1)], [dx, dmin, dmax], quant())
    assert f.call("fq_vars_grad") is None and not f.errors
    for i in range(2):
        for j in range(2):
            want = cfq.fake_quant_with_min_max_vars_gradient(upcast(g3[i, j]), upcast(x3[i, j]), -2.0, 2.5)
            assert_bits_equal(dx[i, j], downcast(want[0], dtype))
            assert_bits_equal(dmin[i, j], want[1])
    # Per channel (axis 0 of each example, min/max per example) and args.
    lo, hi = -np.linspace(1, 3, 8).astype(np.float32), np.linspace(1, 3, 8).astype(np.float32)
    xc, gc = x.reshape(4, 8, -1), g.reshape(4, 8, -1)
    dx, dmin, dmax = np.empty_like(xc), np.empty((4, 8), np.float32), np.empty((4, 8), np.float32)
    f = Frame([gc, xc, np.tile(lo, (4, 1)), np.tile(hi, (4, 1))], [dx, dmin, dmax],
              dict(quant(), axis=(S32, 0)))
    assert f.call("fq_per_channel_grad") is None and not f.errors
    for i in range(4):
        want = cfq.fake_quant_with_min_max_vars_per_channel_gradient(upcast(gc[i]), upcast(xc[i]), lo, hi,
                                                                     axis=0)
        assert_bits_equal(dx[i], downcast(want[0], dtype))
        assert_bits_equal(dmin[i], want[1])
        assert_bits_equal(dmax[i], want[2])
    y = np.empty_like(x)
    f = Frame([g, x], [y], dict(quant(4, True), min=(F32, -1.0), max=(F32, 3.0)))
    assert f.call("fq_args_grad") is None and not f.errors
    assert_bits_equal(y, downcast(cfq.fake_quant_with_min_max_args_gradient(upcast(g), upcast(x), -1.0, 3.0,
                                                                            4, True), dtype))


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_wrong_or_mixed_dtypes_are_errors_not_crashes(dtype):
    other = np.dtype(np.float16) if dtype.name == "bfloat16" else (BFLOAT16 or np.dtype(np.float32))
    x = np.zeros((3, 100), dtype)
    sentinel = np.full((3, 100), 7, dtype)

    def check(args, rets, attrs, op, text):
        f = Frame(args, rets, attrs)
        msg = f.error(op)
        assert text in msg, msg
        assert f.errors[0][1] == 3  # INVALID_ARGUMENT
        for r in rets:
            if r.dtype == dtype and r.shape == sentinel.shape:
                assert_bits_equal(r, sentinel, "written after an error")

    grad_rets = lambda: [sentinel.copy(), np.zeros((), np.float32), np.zeros((), np.float32)]
    # Gradients of one half type, inputs of the other.
    check([x.astype(other), x, f32(-1), f32(1)], grad_rets(), quant(), "fq_vars_grad",
          "must have one dtype")
    check([x, x.astype(other), f32(-1), f32(1)], grad_rets(), quant(), "fq_vars_grad",
          "must have one dtype")
    # Half inputs, float32 outputs (and the other way round).
    check([x, f32(-1), f32(1)], [np.zeros((3, 100), np.float32)], quant(), "fq_vars",
          "must have one dtype")
    check([x.astype(np.float32), f32(-1), f32(1)], [sentinel.copy()], quant(), "fq_vars",
          "must have one dtype")
    # Integers and float64 are no element dtype.
    check([x.astype(np.int32), f32(-1), f32(1)], [sentinel.copy()], quant(), "fq_vars",
          "inputs must be float32, float16 or bfloat16")
    check([x, x.astype(np.float64)], [sentinel.copy()], dict(quant(), min=(F32, -1.0), max=(F32, 1.0)),
          "fq_args_grad", "inputs must be float32, float16 or bfloat16")
    # min/max and the sums stay float32.
    check([x, np.zeros((), dtype), f32(1)], [sentinel.copy()], quant(), "fq_vars",
          "min must be float32")
    lo = np.zeros(100, np.float32)
    check([x, x, lo, lo.astype(dtype)], [sentinel.copy(), np.zeros(100, np.float32),
                                         np.zeros(100, np.float32)],
          dict(quant(), axis=(S32, 1)), "fq_per_channel_grad", "max must be float32")
    check([x, x, f32(-1), f32(1)], [sentinel.copy(), np.zeros((), dtype), np.zeros((), np.float32)],
          quant(), "fq_vars_grad", "backprop_wrt_min must be float32")
    # A dtype the handler does not know at all.
    f = Frame([x, f32(-1), f32(1)], [sentinel.copy()], quant())
    f.buffers[0].dtype = 9999
    assert "got XLA dtype 9999" in f.error("fq_vars")
