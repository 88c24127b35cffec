"""cfq.torch: TensorFlow-exact fake quantization as PyTorch ops, with autograd.

    import cfq.torch as cfqt
    y = cfqt.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)    # lo, hi: 0-d tensors or numbers
    y.backward(g)           # x.grad, lo.grad, hi.grad: TF's FakeQuantWithMinMaxVarsGradient
    q = cfqt.FakeQuant(8, tracking="moving_average")                 # QAT quantizer module

Importing ``cfq`` never imports torch; importing ``cfq.torch`` registers the
ops in the ``cfq`` namespace of ``torch.library`` (``torch.ops.cfq.<name>``),
each with a fake (meta) kernel, so they trace with ``torch.compile(...,
fullgraph=True)`` and ``torch.export``, and with autograd where TF defines
a gradient.

PyTorch versions: 2.4 or newer (``torch.library.register_fake`` and
``register_autograd`` for ``torch.library.Library`` ops first appear in 2.4);
tested with 2.13.0.

Ops (``torch.ops.cfq.*``; the Python functions of this module of the same
names take the same arguments, plus Python numbers for ``min``/``max``, and
``name=`` accepted and ignored, as in cfq's NumPy API):

- ``fake_quant_with_min_max_vars(inputs, min, max, num_bits=8, narrow_range=False)``:
  differentiable wrt inputs, min and max.  ``min``/``max``: 0-d tensors.
- ``fake_quant_with_min_max_vars_per_channel(inputs, min, max, num_bits=8,
  narrow_range=False, axis=-1)``: ``min``/``max`` of shape ``[channels]``,
  any axis; differentiable wrt all three.
- ``fake_quant_with_min_max_args(inputs, min=-6.0, max=6.0, num_bits=8,
  narrow_range=False)``: ``min``/``max`` are numbers (attributes, as in TF);
  differentiable wrt inputs.
- cfq's region-code functions: ``fake_quant_with_min_max_vars_and_region``,
  ``fake_quant_with_min_max_args_and_region`` and
  ``fake_quant_with_min_max_vars_per_channel_and_region(..., axis=-1)`` ->
  (outputs, region), differentiable through ``outputs``;
  ``fake_quant_region_gradient(gradients, region)`` -> (dx, dmin, dmax) (on
  the args codes, dx is the args gradient) and
  ``fake_quant_per_channel_region_gradient(gradients, region, axis=-1)``.
- The gradients, with cfq's names and argument order:
  ``fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, ...)``
  and ``..._per_channel_gradient(...)`` -> (dx, dmin, dmax) (the module's
  functions return cfq's namedtuples), ``fake_quant_with_min_max_args_gradient``
  -> dx.  TF defines no gradient of these; neither does cfq.torch (backward
  through them is a clear error).

Numbers: cfq's, bit for bit: outputs and input gradients are TF 2.21's;
the min/max gradients are cfq's sums (double-compensated, deterministic).

Memory saved for backward: 1 byte per element of the input for the vars,
args and per-channel ops, cfq's region codes and nothing else (the codes
hold everything the backward needs; each forward makes them in its one
pass).  TF's gradient ops keep the 4-byte input; PyTorch's
``fake_quantize_per_tensor_affine`` keeps a 1-byte bool mask, its learnable
variant the 4-byte input.

Threads: at most ``torch.get_num_threads()``, and below that cfq's automatic
rule (one thread under 256K elements); bits are identical for every count.

dtypes: float32, float16 and bfloat16 tensors go to cfq's kernels as they
are (no float32 copy; the kernels compute in float32) and every element
result (outputs, input gradients) comes back in the input's dtype, exactly
``cast(op_float32(upcast(x)))``: cfq's casts, NumPy's for float16 and
ml_dtypes' for bfloat16, which differ from torch's ``.to()`` only in NaN
bits (torch 2.13 here makes every bfloat16 NaN 0xffff and quiets float16
NaNs).
bfloat16 tensors reach cfq as ml_dtypes arrays, ml_dtypes imported at the
first one; without ml_dtypes they are widened to float32 (exact) and the
results rounded back as cfq's kernels round (same bits, two more passes).
float64 tensors are computed as float32 and returned as float64.  The
min/max gradients are cfq's float32 sums, returned in the dtype of their
min/max tensor (cast by torch when that is not float32).  The gradient
functions' ``gradients`` and ``inputs`` must have one dtype when either is
float16 or bfloat16 (else a TypeError, as cfq's).

Devices and layouts: non-contiguous tensors work (made contiguous by cfq).
Tensors on a device other than the CPU are a ValueError (never a silent
copy; ``meta`` tensors trace), integer, bool and complex tensors a
TypeError; bad shapes of min/max, num_bits, axis get cfq's own errors.
"""
import numbers
import os

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

import cfq
from cfq import _core

_OLDEST = (2, 4)
if tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < _OLDEST:
    raise ImportError(f"cfq.torch needs PyTorch >= {_OLDEST[0]}.{_OLDEST[1]} "
                      f"(torch.library.register_fake/register_autograd); found {torch.__version__}")

__all__ = [
    "FakeQuant",
    "fake_quant_per_channel_region_gradient",
    "fake_quant_region_gradient",
    "fake_quant_with_min_max_args",
    "fake_quant_with_min_max_args_and_region",
    "fake_quant_with_min_max_args_gradient",
    "fake_quant_with_min_max_vars",
    "fake_quant_with_min_max_vars_and_region",
    "fake_quant_with_min_max_vars_gradient",
    "fake_quant_with_min_max_vars_per_channel",
    "fake_quant_with_min_max_vars_per_channel_and_region",
    "fake_quant_with_min_max_vars_per_channel_gradient",
]

_F32 = torch.float32

# ---------------------------------------------------------------------------
# Conversions (the framework's part: device, dtype, layout).  Tensors reach
# cfq through _np and come back through _tensor, nowhere else.

_F16, _BF16 = torch.float16, torch.bfloat16
_NOT_LOOKED_UP = object()
_bf16_dtype = _NOT_LOOKED_UP


def _numpy_bfloat16():
    """ml_dtypes' bfloat16 NumPy dtype, or None without ml_dtypes.  Imported
    at the first bfloat16 tensor, not with cfq.torch: importing ml_dtypes
    takes 0.55-0.6 s here."""
    global _bf16_dtype
    if _bf16_dtype is _NOT_LOOKED_UP:
        try:
            import ml_dtypes
            _bf16_dtype = np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            _bf16_dtype = None
    return _bf16_dtype


def _np(t):
    """A CPU tensor as the NumPy array cfq computes on, without a copy for
    float32, float16 and bfloat16 (cfq's kernels take those as they are; a
    bfloat16 tensor is viewed as int16, then as ml_dtypes' bfloat16).  Other
    floating dtypes (float64) are rounded to float32 (to nearest, as TF's
    cast); bfloat16 without ml_dtypes is widened to float32 (exact), and
    _tensor rounds the result back as cfq would have.  Any strides: cfq
    makes non-contiguous arrays contiguous itself."""
    t = t.detach()
    dt = t.dtype
    if dt is _F32 or dt is _F16:
        return t.numpy()
    if dt is _BF16:
        bf16 = _numpy_bfloat16()
        if bf16 is not None:
            return t.view(torch.int16).numpy().view(bf16)
    return t.to(_F32).numpy()


# Where results are allocated matters more than the kernels from 1M elements
# on: the page faults of fresh memory cost more than the work.  Measured
# here (float32 forward+backward in a loop, glibc malloc, THP "madvise"):
# - 1M elements in arrays NumPy allocates (exactly 4 MB): glibc hands out
#   fresh pages on every call, 1,250 faults and 3.5 ms a call; in torch.empty
#   tensors (as torch's own ops allocate theirs): no fault, 0.5-0.8 ms.
# - 16M: NumPy advises huge pages from 4 MB on: 1,088 faults, 29 ms;
#   torch.empty: 32,770 faults, 79-126 ms.
# - 1K: torch.empty costs 1.5 us, an array cfq allocates 0.7 us.
# So results of 128 KB up to 8 MB (32K to 2M float32 elements) go into
# torch.empty tensors (cfq's out=), the others are allocated by cfq.  For
# 16-bit results (64K to 4M elements by that rule) the choice measured
# neutral: no page faults either way at 1M and 2M float16 or bfloat16
# elements, 0.44-0.59 ms per 1M forward+backward both ways.
_TORCH_ALLOC_BYTES = (1 << 17, 1 << 23)


def _alloc_like(a):
    """(tensor, its NumPy view) to receive a result of a's shape and dtype
    (float32, float16 or bfloat16, as _np makes them), or (None, None) to
    let cfq allocate it."""
    if not _TORCH_ALLOC_BYTES[0] <= a.nbytes < _TORCH_ALLOC_BYTES[1]:
        return None, None
    if a.dtype.itemsize == 4:
        t = torch.empty(a.shape, dtype=_F32)
        return t, t.numpy()
    if a.dtype.kind == "f":
        t = torch.empty(a.shape, dtype=_F16)
        return t, t.numpy()
    t = torch.empty(a.shape, dtype=_BF16)
    return t, t.view(torch.int16).numpy().view(a.dtype)


def _tensor(a, t, dtype):
    """cfq's element result (a, in the dtype of the array _np made; written
    into t when _alloc_like gave one) as a tensor of `dtype`, the dtype of
    the tensor _np was given."""
    if t is None:
        if a.dtype.itemsize == 2 and a.dtype.kind != "f":  # ml_dtypes' bfloat16
            return torch.from_numpy(a.view(np.int16)).view(_BF16)
        t = torch.from_numpy(a)
    if t.dtype is dtype:
        return t
    if dtype is _BF16:  # computed in float32 for want of ml_dtypes
        return torch.from_numpy(_bfloat16_bits(t.numpy()).view(np.int16)).view(_BF16)
    return t.to(dtype)


def _bfloat16_bits(a):
    """float32 values rounded to bfloat16 bits as cfq's kernels store them
    (ml_dtypes' cast): to nearest even, NaN the quiet NaN 0x7fc0 with its
    sign.  torch's .to(torch.bfloat16) makes every NaN 0xffff here."""
    u = a.reshape(-1).view(np.uint32)  # 1-D: NumPy wraps array sums silently (NaN bits overflow)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    r[nan] = ((u[nan] >> 16) & np.uint32(0x8000)).astype(np.uint16) | np.uint16(0x7FC0)
    return r.reshape(a.shape)


def _kernel_dtype(dtype):
    """The dtype cfq computes a tensor of this dtype in (float16 and
    bfloat16 as they are, every other one as float32)."""
    return dtype if dtype is _F16 or dtype is _BF16 else _F32


def _check_same_dtype(g, x):
    """Gradients and inputs of one dtype where either is 16-bit (cfq's rule:
    which of the two a result would have is not for cfq to guess); checked
    here, on the tensors' own dtypes, for every path."""
    if _kernel_dtype(g.dtype) is not _kernel_dtype(x.dtype):
        raise TypeError(f"gradients and inputs must have the same dtype when either is float16 or "
                        f"bfloat16, got {g.dtype} and {x.dtype}")


def _range_value(v):
    """min/max for cfq: a 0-d tensor as a Python number (exact for every
    dtype; cfq rounds it to float32 and checks it), other tensors as NumPy
    arrays (floating dtypes as float32; cfq checks shape and type), anything
    else as given."""
    if isinstance(v, torch.Tensor):
        if v.dim() == 0:
            return v.item()
        v = v.detach()
        if v.dtype.is_floating_point and v.dtype is not _F32:
            v = v.to(_F32)
        return v.numpy()
    return v


def _cpu_or_meta(t):
    return t.is_cpu or t.is_meta


def _check_input(t, name):
    """What cfq cannot check for a tensor argument: tensor, CPU (or meta, to
    trace), dense, floating point."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not _cpu_or_meta(t):
        raise ValueError(f"{name} is on {t.device}; cfq.torch runs on the CPU only "
                         f"(move it with .cpu(); cfq never copies between devices silently)")
    if t.layout is not torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor (float32, float64, float16 or "
                        f"bfloat16), got {t.dtype}")


def _check_range(v, name):
    if isinstance(v, torch.Tensor) and not _cpu_or_meta(v):
        raise ValueError(f"{name} is on {v.device}; cfq.torch runs on the CPU only "
                         f"(move it with .cpu(); cfq never copies between devices silently)")


def _range_tensor(v, name):
    """min/max for the registered ops, whose schema takes tensors: a number
    becomes a 0-d float32 tensor (via a double, as cfq converts numbers)."""
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number or a tensor, got {type(v).__name__}")
    try:
        d = float(v)
    except OverflowError:
        raise ValueError(f"{name} must be finite in float32, got {v!r}") from None
    return torch.tensor(d, dtype=_F32)


_CPUS = _core._usable_cpus()
_AUTO_MIN = getattr(_core, "AUTO_THREADS_MIN", 1 << 18)
_AUTO_PER = getattr(_core, "AUTO_ELEMENTS_PER_THREAD", 1 << 17)


def _threads(n):
    """cfq's automatic thread count, capped at torch.get_num_threads()."""
    if n < _AUTO_MIN:
        return 1
    return max(1, min(torch.get_num_threads(), _CPUS, n // _AUTO_PER))


_PLAIN = (torch.Tensor, nn.Parameter)
_OPS, _FAST, _FAST_GRAD = 0, 1, 2


def _path(*args):
    """Which path a call takes: the eager fast path (_FAST, or _FAST_GRAD
    when autograd must record it) for plain CPU tensors with no dispatch or
    torch-function mode, no functorch transform, not tracing; else the
    registered ops (_OPS: they trace, and give the same bits)."""
    grad = False
    for a in args:
        if isinstance(a, torch.Tensor):
            if type(a) not in _PLAIN or not a.is_cpu:
                return _OPS
            grad = grad or a.requires_grad
    if (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack()
            or torch._C._is_torch_function_mode_enabled()
            or torch._C._are_functorch_transforms_active()):
        return _OPS
    return _FAST_GRAD if grad and torch.is_grad_enabled() else _FAST


def _dtype_of(v):
    return v.dtype if isinstance(v, torch.Tensor) else None


def _grad_as(g, dtype, needed):
    """A min/max gradient (cfq's float32 sum: a NumPy array on the fast
    path, a tensor from the ops) as a tensor in its variable's dtype, or None
    where not needed.  The cast is torch's (it is traced under compile, so
    eager and compiled runs cast alike); FakeQuant's range, float32, has
    none."""
    if not needed:
        return None
    t = torch.from_numpy(g) if isinstance(g, np.ndarray) else g
    return t if dtype is _F32 or dtype is None else t.to(dtype)

# ---------------------------------------------------------------------------
# CPU kernels: cfq's NumPy functions on NumPy views of the tensors; their
# results (allocated once, by cfq) become tensors without a copy.  Shared by
# the registered ops and the eager fast path.


def _k_vars(x, mn, mx, num_bits=8, narrow_range=False):
    xn = _np(x)
    t, out = _alloc_like(xn)
    y = cfq.fake_quant_with_min_max_vars(xn, _range_value(mn), _range_value(mx), num_bits, narrow_range,
                                         out=out, threads=_threads(xn.size))
    return _tensor(y, t, x.dtype)


def _k_vars_and_region(x, mn, mx, num_bits=8, narrow_range=False):
    xn = _np(x)
    t, out = _alloc_like(xn)
    y, region = cfq.fake_quant_with_min_max_vars_and_region(
        xn, _range_value(mn), _range_value(mx), num_bits, narrow_range, out=out, threads=_threads(xn.size))
    return _tensor(y, t, x.dtype), torch.from_numpy(region)


def _region_gradient(g, region):
    """(dx tensor, dmin, dmax NumPy sums) from region codes."""
    gn = _np(g)
    r = region.detach().numpy() if isinstance(region, torch.Tensor) else region
    t, out = _alloc_like(gn)
    dx, dmin, dmax = cfq.fake_quant_region_gradient(gn, r, out=out, threads=_threads(gn.size))
    return _tensor(dx, t, g.dtype), dmin, dmax


def _k_region_gradient(g, region):
    dx, dmin, dmax = _region_gradient(g, region)
    return dx, torch.from_numpy(dmin), torch.from_numpy(dmax)


def _k_vars_gradient(g, x, mn, mx, num_bits=8, narrow_range=False):
    _check_same_dtype(g, x)
    gn, xn = _np(g), _np(x)
    t, out = _alloc_like(gn)
    dx, dmin, dmax = cfq.fake_quant_with_min_max_vars_gradient(
        gn, xn, _range_value(mn), _range_value(mx), num_bits, narrow_range, out=out, threads=_threads(gn.size))
    return _tensor(dx, t, g.dtype), torch.from_numpy(dmin), torch.from_numpy(dmax)


def _k_per_channel(x, mn, mx, num_bits=8, narrow_range=False, axis=-1):
    xn = _np(x)
    t, out = _alloc_like(xn)
    y = cfq.fake_quant_with_min_max_vars_per_channel(
        xn, _range_value(mn), _range_value(mx), num_bits, narrow_range, axis=axis, out=out,
        threads=_threads(xn.size))
    return _tensor(y, t, x.dtype)


def _k_per_channel_gradient(g, x, mn, mx, num_bits=8, narrow_range=False, axis=-1):
    _check_same_dtype(g, x)
    gn, xn = _np(g), _np(x)
    t, out = _alloc_like(gn)
    dx, dmin, dmax = cfq.fake_quant_with_min_max_vars_per_channel_gradient(
        gn, xn, _range_value(mn), _range_value(mx), num_bits, narrow_range, axis=axis, out=out,
        threads=_threads(gn.size))
    return _tensor(dx, t, g.dtype), torch.from_numpy(dmin), torch.from_numpy(dmax)


def _k_per_channel_and_region(x, mn, mx, num_bits=8, narrow_range=False, axis=-1):
    xn = _np(x)
    t, out = _alloc_like(xn)
    y, region = cfq.fake_quant_with_min_max_vars_per_channel_and_region(
        xn, _range_value(mn), _range_value(mx), num_bits, narrow_range, axis=axis, out=out,
        threads=_threads(xn.size))
    return _tensor(y, t, x.dtype), torch.from_numpy(region)


def _per_channel_region_gradient(g, region, axis=-1):
    gn = _np(g)
    t, out = _alloc_like(gn)
    dx, dmin, dmax = cfq.fake_quant_per_channel_region_gradient(
        gn, region.detach().numpy(), axis=axis, out=out, threads=_threads(gn.size))
    return _tensor(dx, t, g.dtype), dmin, dmax


def _k_per_channel_region_gradient(g, region, axis=-1):
    dx, dmin, dmax = _per_channel_region_gradient(g, region, axis)
    return dx, torch.from_numpy(dmin), torch.from_numpy(dmax)


def _k_args(x, mn=-6.0, mx=6.0, num_bits=8, narrow_range=False):
    xn = _np(x)
    t, out = _alloc_like(xn)
    y = cfq.fake_quant_with_min_max_args(xn, mn, mx, num_bits, narrow_range, out=out, threads=_threads(xn.size))
    return _tensor(y, t, x.dtype)


def _k_args_and_region(x, mn=-6.0, mx=6.0, num_bits=8, narrow_range=False):
    """The args op's outputs and the region codes of its gradient, in one
    pass (fake_quant_region_gradient on them gives the args gradient)."""
    xn = _np(x)
    t, out = _alloc_like(xn)
    y, region = cfq.fake_quant_with_min_max_args_and_region(xn, mn, mx, num_bits, narrow_range, out=out,
                                                            threads=_threads(xn.size))
    return _tensor(y, t, x.dtype), torch.from_numpy(region)


def _k_args_gradient(g, x, mn=-6.0, mx=6.0, num_bits=8, narrow_range=False):
    _check_same_dtype(g, x)
    gn, xn = _np(g), _np(x)
    t, out = _alloc_like(gn)
    dx = cfq.fake_quant_with_min_max_args_gradient(gn, xn, mn, mx, num_bits, narrow_range, out=out,
                                                   threads=_threads(gn.size))
    return _tensor(dx, t, g.dtype)

# ---------------------------------------------------------------------------
# Registration.
#
# The ops are torch.library.Library("cfq", "DEF") schemas with CPU kernels,
# register_fake meta kernels and register_autograd formulas: that is what
# torch.compile(fullgraph=True) and torch.export trace.  But an eager call
# through the dispatcher's Python autograd kernel is slow: measured here at
# 1K elements, forward+backward (prototypes, medians of 3 interleaved runs):
#   (x * 1.0).backward(g), the engine's floor                       18-19 us
#   torch.library.custom_op + register_autograd                    62-86 us
#   Library kernels + register_autograd                             62-68 us
#   Library kernels called from a torch.autograd.Function           44-47 us
#   torch.autograd.Function calling cfq directly (the fast path)    36-37 us
#   (an empty 3-input autograd.Function: 22 us; cfq's own work: 4.5 us)
# As shipped (cfq.bench_torch, 10 runs): the fast path 32-39 us against a
# floor of 16-18 us, ratio 2.01-2.15; torch.ops.cfq (composite over the
# Library op with register_autograd) 63-90 us.
# So eager calls on plain CPU tensors take the fast path: the same cfq calls
# (hence the same bits) under a torch.autograd.Function; anything else
# (compiling, fake/meta tensors, modes, functorch, subclasses) goes through
# torch.ops.cfq.*.  The public forward ops are CompositeImplicitAutograd over
# the ops that also return what the backward needs (the region codes), so
# the saved state stays 1 byte per element when traced too.

_lib = torch.library.Library("cfq", "DEF")


def _define(schema, kernel=None, fake=None, composite=None):
    name = schema.split("(", 1)[0]
    _lib.define(schema)
    if composite is not None:
        _lib.impl(name, composite, "CompositeImplicitAutograd")
    else:
        _lib.impl(name, kernel, "CPU")
        torch.library.register_fake("cfq::" + name, fake, lib=_lib)
    return name


def _fake_check(x, name):
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor (float32, float64, float16 or "
                        f"bfloat16), got {x.dtype}")


def _fake_like(x):
    return x.new_empty(x.shape)


def _fake_sum(x):
    return x.new_empty((), dtype=_F32)


def _kernel(fn, *names):
    """A CPU kernel: the dtype checks of its tensor arguments, then fn."""
    def kernel(*args, **kwargs):  # the dispatcher leaves out arguments at their defaults
        for a, name in zip(args, names):
            _check_input(a, name)
        return fn(*args, **kwargs)
    kernel.__name__ = fn.__name__
    return kernel


_VARS_ARGS = "Tensor inputs, Tensor min, Tensor max, int num_bits=8, bool narrow_range=False"
_ARGS_ARGS = "Tensor inputs, float min=-6.0, float max=6.0, int num_bits=8, bool narrow_range=False"


def _fake_grad_sums(g, x, *rest):
    _fake_check(g, "gradients")
    _fake_check(x, "inputs")
    _check_same_dtype(g, x)
    return _fake_like(g), _fake_sum(g), _fake_sum(g)


def _fake_fwd_region(x, *rest):
    _fake_check(x, "inputs")
    return _fake_like(x), x.new_empty(x.shape, dtype=torch.uint8)


def _fake_grad3(g, x, mn, *rest):
    _fake_check(g, "gradients")
    _fake_check(x, "inputs")
    _check_same_dtype(g, x)
    return _fake_like(g), mn.new_empty(mn.shape, dtype=_F32), mn.new_empty(mn.shape, dtype=_F32)


def _fake_args_grad(g, x, *rest):
    _fake_check(g, "gradients")
    _fake_check(x, "inputs")
    _check_same_dtype(g, x)
    return _fake_like(g)


def _fake_region_grad(g, region, *rest):
    _fake_check(g, "gradients")
    return _fake_like(g), _fake_sum(g), _fake_sum(g)


def _fake_pc_region_grad(g, region, axis=-1):
    _fake_check(g, "gradients")
    nd = region.dim()
    channels = region.shape[axis] if -nd <= axis < nd else 0  # else the forward raised cfq's error
    return _fake_like(g), g.new_empty((channels,), dtype=_F32), g.new_empty((channels,), dtype=_F32)


_define(f"fake_quant_with_min_max_vars_and_region({_VARS_ARGS}) -> (Tensor, Tensor)",
        _kernel(_k_vars_and_region, "inputs"), _fake_fwd_region)
_define("fake_quant_region_gradient(Tensor gradients, Tensor region) -> (Tensor, Tensor, Tensor)",
        _kernel(_k_region_gradient, "gradients"), _fake_region_grad)
_define(f"fake_quant_with_min_max_vars_gradient(Tensor gradients, {_VARS_ARGS}) -> (Tensor, Tensor, Tensor)",
        _kernel(_k_vars_gradient, "gradients", "inputs"),
        _fake_grad_sums)
_define(f"fake_quant_with_min_max_vars_per_channel_gradient(Tensor gradients, {_VARS_ARGS}, int axis=-1)"
        " -> (Tensor, Tensor, Tensor)",
        _kernel(_k_per_channel_gradient, "gradients", "inputs"), _fake_grad3)
_define(f"_fake_quant_with_min_max_args_and_region({_ARGS_ARGS}) -> (Tensor, Tensor)",
        _kernel(_k_args_and_region, "inputs"), _fake_fwd_region)
_define(f"fake_quant_with_min_max_args_gradient(Tensor gradients, {_ARGS_ARGS}) -> Tensor",
        _kernel(_k_args_gradient, "gradients", "inputs"), _fake_args_grad)
_define(f"fake_quant_with_min_max_vars({_VARS_ARGS}) -> Tensor",
        composite=lambda x, mn, mx, num_bits=8, narrow_range=False:
        torch.ops.cfq.fake_quant_with_min_max_vars_and_region(x, mn, mx, num_bits, narrow_range)[0])
_define(f"fake_quant_with_min_max_args({_ARGS_ARGS}) -> Tensor",
        composite=lambda x, mn=-6.0, mx=6.0, num_bits=8, narrow_range=False:
        torch.ops.cfq._fake_quant_with_min_max_args_and_region(x, mn, mx, num_bits, narrow_range)[0])
# The public name of the args region op is a composite over the one above,
# whose name the args op has decomposed into since cfq.torch's first
# version: torch.compile's caches (FX graph, AOTAutograd) know a custom op
# by its name, not by its Python body (PyTorch issues 144344, 160472), so a
# compiled graph cached by an older cfq.torch replays the old decomposition;
# renaming the op it calls would make that replay fail.
_define(f"fake_quant_with_min_max_args_and_region({_ARGS_ARGS}) -> (Tensor, Tensor)",
        composite=lambda x, mn=-6.0, mx=6.0, num_bits=8, narrow_range=False:
        torch.ops.cfq._fake_quant_with_min_max_args_and_region(x, mn, mx, num_bits, narrow_range))
_define(f"fake_quant_with_min_max_vars_per_channel_and_region({_VARS_ARGS}, int axis=-1)"
        " -> (Tensor, Tensor)",
        _kernel(_k_per_channel_and_region, "inputs"), _fake_fwd_region)
_define("fake_quant_per_channel_region_gradient(Tensor gradients, Tensor region, int axis=-1)"
        " -> (Tensor, Tensor, Tensor)",
        _kernel(_k_per_channel_region_gradient, "gradients"), _fake_pc_region_grad)
_define(f"fake_quant_with_min_max_vars_per_channel({_VARS_ARGS}, int axis=-1) -> Tensor",
        composite=lambda x, mn, mx, num_bits=8, narrow_range=False, axis=-1:
        torch.ops.cfq.fake_quant_with_min_max_vars_per_channel_and_region(
            x, mn, mx, num_bits, narrow_range, axis)[0])

# -- autograd of the registered ops (what torch.compile traces) -------------


def _setup_region(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.range_dtypes = (_dtype_of(inputs[1]), _dtype_of(inputs[2]))


def _backward_vars_region(ctx, g, _g_region):
    region, = ctx.saved_tensors
    dx, dmin, dmax = torch.ops.cfq.fake_quant_region_gradient(g, region)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, _grad_as(dmin, ctx.range_dtypes[0], need[1]),
            _grad_as(dmax, ctx.range_dtypes[1], need[2]), None, None)


def _backward_args_region(ctx, g, _g_region):
    region, = ctx.saved_tensors
    return torch.ops.cfq.fake_quant_region_gradient(g, region)[0], None, None, None, None


def _setup_pc_region(ctx, inputs, output):
    x, mn, mx, num_bits, narrow_range, axis = inputs
    ctx.save_for_backward(output[1])
    ctx.range_dtypes = (mn.dtype, mx.dtype)
    ctx.axis = axis


def _backward_pc_region(ctx, g, _g_region):
    region, = ctx.saved_tensors
    dx, dmin, dmax = torch.ops.cfq.fake_quant_per_channel_region_gradient(g, region, ctx.axis)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, _grad_as(dmin, ctx.range_dtypes[0], need[1]),
            _grad_as(dmax, ctx.range_dtypes[1], need[2]), None, None, None)


def _not_differentiable(op):
    def backward(ctx, *grads):
        raise RuntimeError(f"cfq::{op} is not differentiable (TensorFlow defines no gradient "
                           f"for it either)")
    return backward


torch.library.register_autograd("cfq::fake_quant_with_min_max_vars_and_region", _backward_vars_region,
                                setup_context=_setup_region, lib=_lib)
torch.library.register_autograd("cfq::_fake_quant_with_min_max_args_and_region", _backward_args_region,
                                setup_context=_setup_region, lib=_lib)
torch.library.register_autograd("cfq::fake_quant_with_min_max_vars_per_channel_and_region",
                                _backward_pc_region, setup_context=_setup_pc_region, lib=_lib)
for _op in ("fake_quant_region_gradient", "fake_quant_per_channel_region_gradient",
            "fake_quant_with_min_max_vars_gradient", "fake_quant_with_min_max_vars_per_channel_gradient",
            "fake_quant_with_min_max_args_gradient"):
    torch.library.register_autograd("cfq::" + _op, _not_differentiable(_op),
                                    setup_context=lambda ctx, inputs, output: None, lib=_lib)

# -- the eager fast path: the same kernels under torch.autograd.Function ------
#
# Backward runs the kernels directly.  With create_graph=True it goes through
# once_differentiable instead, so that differentiating it again is a clear
# error (TF defines no second derivative) rather than a silent constant;
# the check costs 0.05 us where once_differentiable itself costs about 2 us.


def _vars_backward(ctx, g):
    region, = ctx.saved_tensors
    gn = _np(g)
    t, out = _alloc_like(gn)
    dx, dmin, dmax = cfq.fake_quant_region_gradient(gn, region.numpy(), out=out, threads=_threads(gn.size))
    dx = _tensor(dx, t, g.dtype)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, _grad_as(dmin, ctx.range_dtypes[0], need[1]),
            _grad_as(dmax, ctx.range_dtypes[1], need[2]), None, None)


def _args_backward(ctx, g):
    region, = ctx.saved_tensors
    return _region_gradient(g, region)[0], None, None, None, None


def _pc_region_backward(ctx, g):
    region, = ctx.saved_tensors
    dx, dmin, dmax = _per_channel_region_gradient(g, region, ctx.axis)
    need = ctx.needs_input_grad
    return (dx if need[0] else None, _grad_as(dmin, ctx.range_dtypes[0], need[1]),
            _grad_as(dmax, ctx.range_dtypes[1], need[2]), None, None, None)


def _fast_function(name, forward, backward):
    """(the autograd.Function, its apply).  The apply is the C++ one
    underneath torch.autograd.Function.apply, whose Python layer only binds
    setup_context defaults (these classes have none) and unwraps functorch's
    dead wrappers (the fast path runs only without functorch transforms):
    skipping it saves 3-5 us of the 40 a 1K call costs."""
    once = once_differentiable(backward)

    def dispatch_backward(ctx, g):
        return once(ctx, g) if torch.is_grad_enabled() else backward(ctx, g)

    cls = type(name, (torch.autograd.Function,),
               {"forward": staticmethod(forward), "backward": staticmethod(dispatch_backward)})
    return cls, getattr(super(torch.autograd.Function, cls), "apply", cls.apply)


def _vars_forward(ctx, x, mn, mx, num_bits, narrow_range):
    y, region = _k_vars_and_region(x, mn, mx, num_bits, narrow_range)
    ctx.save_for_backward(region)
    ctx.range_dtypes = (_dtype_of(mn), _dtype_of(mx))
    return y


def _args_forward(ctx, x, mn, mx, num_bits, narrow_range):
    y, region = _k_args_and_region(x, mn, mx, num_bits, narrow_range)
    ctx.save_for_backward(region)
    return y


def _pc_region_forward(ctx, x, mn, mx, num_bits, narrow_range, axis):
    y, region = _k_per_channel_and_region(x, mn, mx, num_bits, narrow_range, axis)
    ctx.save_for_backward(region)
    ctx.range_dtypes = (mn.dtype, mx.dtype)
    ctx.axis = axis
    return y


_VarsFunction, _vars_apply = _fast_function("_VarsFunction", _vars_forward, _vars_backward)
_ArgsFunction, _args_apply = _fast_function("_ArgsFunction", _args_forward, _args_backward)
_PerChannelFunction, _per_channel_apply = _fast_function("_PerChannelFunction", _pc_region_forward,
                                                         _pc_region_backward)

# ---------------------------------------------------------------------------
# Public functions


def fake_quant_with_min_max_vars(inputs, min, max, num_bits=8, narrow_range=False, name=None):
    """TF's FakeQuantWithMinMaxVars on a tensor, differentiable wrt inputs,
    min and max (TF's FakeQuantWithMinMaxVarsGradient, cfq's sums).
    ``min``/``max``: numbers or 0-d tensors.  The backward keeps cfq's 1-byte
    region codes, not the inputs."""
    _check_input(inputs, "inputs")
    _check_range(min, "min")
    _check_range(max, "max")
    path = _path(inputs, min, max)
    if path == _FAST_GRAD:
        return _vars_apply(inputs, min, max, num_bits, narrow_range)
    if path == _FAST:
        return _k_vars(inputs, min, max, num_bits, narrow_range)
    return torch.ops.cfq.fake_quant_with_min_max_vars(
        inputs, _range_tensor(min, "min"), _range_tensor(max, "max"), num_bits, narrow_range)


def fake_quant_with_min_max_vars_and_region(inputs, min, max, num_bits=8, narrow_range=False, name=None):
    """``(outputs, region)`` as cfq's function: ``region`` a uint8 tensor of
    the inputs' shape, for ``fake_quant_region_gradient``.  Differentiable
    wrt inputs, min and max through ``outputs``."""
    _check_input(inputs, "inputs")
    _check_range(min, "min")
    _check_range(max, "max")
    return torch.ops.cfq.fake_quant_with_min_max_vars_and_region(
        inputs, _range_tensor(min, "min"), _range_tensor(max, "max"), num_bits, narrow_range)


def _check_region(region):
    if not isinstance(region, torch.Tensor):
        raise TypeError(f"region must be the uint8 tensor returned by an ..._and_region function, "
                        f"got {type(region).__name__}")
    _check_range(region, "region")


def fake_quant_region_gradient(gradients, region):
    """cfq.fake_quant_region_gradient on tensors: a
    ``FakeQuantWithMinMaxVarsGradient(dx, dmin, dmax)`` of tensors.  On the
    codes of ``fake_quant_with_min_max_args_and_region``, dx is the args
    gradient."""
    _check_input(gradients, "gradients")
    _check_region(region)
    if _path(gradients, region) == _FAST:
        r = _k_region_gradient(gradients, region)
    else:
        r = torch.ops.cfq.fake_quant_region_gradient(gradients, region)
    return cfq.FakeQuantWithMinMaxVarsGradient(*r)


def fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, num_bits=8, narrow_range=False,
                                          name=None):
    """TF's FakeQuantWithMinMaxVarsGradient on tensors:
    ``FakeQuantWithMinMaxVarsGradient(backprops_wrt_input, backprop_wrt_min,
    backprop_wrt_max)``, dx in the gradients' dtype, the sums float32 0-d."""
    _check_input(gradients, "gradients")
    _check_input(inputs, "inputs")
    _check_range(min, "min")
    _check_range(max, "max")
    if _path(gradients, inputs, min, max) == _FAST:
        r = _k_vars_gradient(gradients, inputs, min, max, num_bits, narrow_range)
    else:
        r = torch.ops.cfq.fake_quant_with_min_max_vars_gradient(
            gradients, inputs, _range_tensor(min, "min"), _range_tensor(max, "max"), num_bits, narrow_range)
    return cfq.FakeQuantWithMinMaxVarsGradient(*r)


def _channel_range(v, name):
    """Per-channel min/max as a tensor (array-likes converted; cfq checks
    the shape and values)."""
    if isinstance(v, torch.Tensor):
        return v
    try:
        return torch.as_tensor(np.asarray(v))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} cannot be converted to a tensor of real numbers: {exc}") from None


def fake_quant_with_min_max_vars_per_channel(inputs, min, max, num_bits=8, narrow_range=False, name=None,
                                             *, axis=-1):
    """TF's FakeQuantWithMinMaxVarsPerChannel on any ``axis``: ``min``/``max``
    of shape ``[inputs.shape[axis]]``; differentiable wrt inputs, min, max."""
    _check_input(inputs, "inputs")
    min, max = _channel_range(min, "min"), _channel_range(max, "max")
    _check_range(min, "min")
    _check_range(max, "max")
    path = _path(inputs, min, max)
    if path == _FAST_GRAD:
        return _per_channel_apply(inputs, min, max, num_bits, narrow_range, axis)
    if path == _FAST:
        return _k_per_channel(inputs, min, max, num_bits, narrow_range, axis)
    return torch.ops.cfq.fake_quant_with_min_max_vars_per_channel(inputs, min, max, num_bits, narrow_range, axis)


def fake_quant_with_min_max_vars_per_channel_and_region(inputs, min, max, num_bits=8, narrow_range=False,
                                                        name=None, *, axis=-1):
    """``(outputs, region)`` as cfq's function: ``region`` a uint8 tensor of
    the inputs' shape, for ``fake_quant_per_channel_region_gradient``.
    Differentiable wrt inputs, min and max through ``outputs``."""
    _check_input(inputs, "inputs")
    min, max = _channel_range(min, "min"), _channel_range(max, "max")
    _check_range(min, "min")
    _check_range(max, "max")
    return torch.ops.cfq.fake_quant_with_min_max_vars_per_channel_and_region(inputs, min, max, num_bits,
                                                                             narrow_range, axis)


def fake_quant_per_channel_region_gradient(gradients, region, *, axis=-1):
    """cfq.fake_quant_per_channel_region_gradient on tensors: a
    ``FakeQuantWithMinMaxVarsPerChannelGradient(dx, dmin, dmax)`` of
    tensors, the sums of shape ``[region.shape[axis]]``."""
    _check_input(gradients, "gradients")
    _check_region(region)
    if _path(gradients, region) == _FAST:
        r = _k_per_channel_region_gradient(gradients, region, axis)
    else:
        r = torch.ops.cfq.fake_quant_per_channel_region_gradient(gradients, region, axis)
    return cfq.FakeQuantWithMinMaxVarsPerChannelGradient(*r)


def fake_quant_with_min_max_vars_per_channel_gradient(gradients, inputs, min, max, num_bits=8,
                                                      narrow_range=False, name=None, *, axis=-1):
    """TF's FakeQuantWithMinMaxVarsPerChannelGradient on any ``axis``:
    ``FakeQuantWithMinMaxVarsPerChannelGradient(dx, dmin, dmax)``, the sums
    of shape ``[channels]``."""
    _check_input(gradients, "gradients")
    _check_input(inputs, "inputs")
    min, max = _channel_range(min, "min"), _channel_range(max, "max")
    _check_range(min, "min")
    _check_range(max, "max")
    if _path(gradients, inputs, min, max) == _FAST:
        r = _k_per_channel_gradient(gradients, inputs, min, max, num_bits, narrow_range, axis)
    else:
        r = torch.ops.cfq.fake_quant_with_min_max_vars_per_channel_gradient(
            gradients, inputs, min, max, num_bits, narrow_range, axis)
    return cfq.FakeQuantWithMinMaxVarsPerChannelGradient(*r)


def fake_quant_with_min_max_args(inputs, min=-6.0, max=6.0, num_bits=8, narrow_range=False, name=None):
    """TF's FakeQuantWithMinMaxArgs: ``min``/``max`` are numbers (TF's
    attributes, min < max); differentiable wrt inputs (region codes saved)."""
    _check_input(inputs, "inputs")
    path = _path(inputs)
    if path == _FAST_GRAD:
        return _args_apply(inputs, min, max, num_bits, narrow_range)
    if path == _FAST:
        return _k_args(inputs, min, max, num_bits, narrow_range)
    return torch.ops.cfq.fake_quant_with_min_max_args(inputs, min, max, num_bits, narrow_range)


def fake_quant_with_min_max_args_and_region(inputs, min=-6.0, max=6.0, num_bits=8, narrow_range=False,
                                            name=None):
    """``(outputs, region)`` as cfq's function, in one pass:
    ``fake_quant_region_gradient(gradients, region)[0]`` is the args
    gradient.  Differentiable wrt inputs through ``outputs``."""
    _check_input(inputs, "inputs")
    return torch.ops.cfq.fake_quant_with_min_max_args_and_region(inputs, min, max, num_bits, narrow_range)


def fake_quant_with_min_max_args_gradient(gradients, inputs, min=-6.0, max=6.0, num_bits=8,
                                          narrow_range=False, name=None):
    """TF's FakeQuantWithMinMaxArgsGradient: dx, in the gradients' dtype."""
    _check_input(gradients, "gradients")
    _check_input(inputs, "inputs")
    if _path(gradients, inputs) == _FAST:
        return _k_args_gradient(gradients, inputs, min, max, num_bits, narrow_range)
    return torch.ops.cfq.fake_quant_with_min_max_args_gradient(gradients, inputs, min, max, num_bits,
                                                              narrow_range)

# ---------------------------------------------------------------------------
# FakeQuant: the QAT quantizer module


def _flush(t):
    """TF's CPU kernels run with flush-to-zero and denormals-are-zero: a
    subnormal operand or result of the range arithmetic is a signed zero."""
    return torch.where(t.abs() < torch.finfo(_F32).tiny, torch.copysign(torch.zeros_like(t), t), t)


def _second_wins_ties(shape, device):
    """Where TF's minimum/maximum on x86 return the SECOND operand of two equal
    ones (only -0.0 and +0.0 differ): elements in full 8-float packets (minps
    and maxps); a 0-d tensor and a vector's tail take Eigen's scalar path,
    which returns the FIRST."""
    if len(shape) == 0:
        return torch.zeros((), dtype=torch.bool, device=device)
    n = shape[0]
    return torch.arange(n, device=device) < 8 * (n // 8)


def _tf_min_max(a, b, want_min):
    """tf.minimum / tf.maximum of two float32 tensors of one shape, with TF's
    NaN propagation and its choice between -0.0 and +0.0."""
    first = (a < b) if want_min else (a > b)
    second = (b < a) if want_min else (b > a)
    tie = torch.where(_second_wins_ties(a.shape, a.device), b, a)
    r = torch.where(first, a, torch.where(second, b, tie))
    return torch.where(torch.isnan(a) | torch.isnan(b), a + b, r)


class FakeQuant(nn.Module):
    """A fake-quantization quantizer for QAT, with TF's numbers.

    ``FakeQuant(num_bits=8, narrow_range=False, *, tracking="learned",
    ema_decay=0.999, symmetric=False, axis=None, channels=None,
    init_min=-6.0, init_max=6.0, tf_graph=False)``

    - ``.min``, ``.max``: float32, shape ``()`` per tensor or ``(channels,)``
      per channel (``axis`` set; ``channels`` then required).  Parameters for
      ``tracking="learned"`` (trained by TF's gradients wrt min and max),
      buffers otherwise; both in ``state_dict``.
    - ``tracking="moving_average"``: tfmot's MovingAverageQuantizer
      (``quant_ops.MovingAvgQuantize``).  In training mode the batch range
      (per tensor: over all elements; per channel: over every axis but
      ``axis``) is made to include 0 -- or with ``symmetric=True`` widened as
      tfmot does -- then ``v <- v - (v - r) * float32(1 - ema_decay)`` (TF's
      assign_moving_average, no zero-debias), and the input is quantized
      with the updated range.
    - ``tracking="last_value"``: tfmot's LastValueQuantizer: the range
      becomes this batch's (same 0 / symmetric rules).
    - Eval mode uses the stored range and updates nothing.
    - ``tf_graph=True``: tfmot's numbers inside a ``tf.function`` (as Keras
      ``fit`` runs it) rather than eagerly.  They differ in one place:
      grappler rewrites the symmetric widening ``bmax / ratio`` into
      ``bmax * float32(1 / ratio)``, which moves the range by an ulp for
      some batches (symmetric, not narrow_range, num_bits > 2 only).

    The range arithmetic is TF's, bit for bit: float32 throughout, no FMA,
    denormals flushed, TF's NaN and signed-zero rules of minimum/maximum (as
    TF runs on x86).  One case is not reproducible: a batch whose extreme
    value is a zero present with both signs (TF's choice then depends on its
    reduction order).  Unlike tfmot, per-channel tracking works on any axis
    and rank.
    """

    _TRACKING = ("learned", "moving_average", "last_value")

    def __init__(self, num_bits=8, narrow_range=False, *, tracking="learned", ema_decay=0.999,
                 symmetric=False, axis=None, channels=None, init_min=-6.0, init_max=6.0, tf_graph=False):
        super().__init__()
        if tracking not in self._TRACKING:
            raise ValueError(f"tracking must be one of {', '.join(map(repr, self._TRACKING))}, got {tracking!r}")
        if not isinstance(symmetric, (bool, np.bool_)):
            raise TypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
        if symmetric and tracking == "learned":
            raise ValueError("symmetric=True applies to tracking='moving_average' or 'last_value' "
                             "(learned ranges are trained freely)")
        if isinstance(ema_decay, (bool, np.bool_)) or not isinstance(ema_decay, numbers.Real):
            raise TypeError(f"ema_decay must be a real number, got {type(ema_decay).__name__}")
        cfq.nudge(-1.0, 1.0, num_bits, narrow_range)  # cfq's checks of num_bits and narrow_range
        if axis is None:
            if channels is not None:
                raise ValueError("channels is for per-channel quantization: set axis too")
            shape = ()
        else:
            if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
                raise TypeError(f"axis must be an int or None, got {type(axis).__name__}")
            if channels is None:
                raise ValueError("channels is required with axis (the size of inputs.shape[axis])")
            if isinstance(channels, (bool, np.bool_)) or not isinstance(channels, (int, np.integer)):
                raise TypeError(f"channels must be an int, got {type(channels).__name__}")
            if channels < 1:
                raise ValueError(f"channels must be >= 1, got {channels}")
            shape = (int(channels),)
        self.num_bits = int(num_bits)
        self.narrow_range = bool(narrow_range)
        self.tracking = tracking
        self.ema_decay = float(ema_decay)
        self.symmetric = bool(symmetric)
        self.axis = None if axis is None else int(axis)
        self.tf_graph = bool(tf_graph)
        lo = self._initial(init_min, shape, "init_min")
        hi = self._initial(init_max, shape, "init_max")
        if tracking == "learned":
            self.min = nn.Parameter(lo)
            self.max = nn.Parameter(hi)
        else:
            self.register_buffer("min", lo)
            self.register_buffer("max", hi)

    @staticmethod
    def _initial(value, shape, name):
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64)).to(_F32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real number or an array of them: {exc}") from None
        try:
            return t.expand(shape).clone()
        except RuntimeError:
            raise ValueError(f"{name} of shape {tuple(t.shape)} does not fit the range's shape {shape}") from None

    def _apply(self, fn, *args, **kwargs):
        """Module conversions (.half(), .to(dtype), ...) keep the range in
        float32, TF's dtype for it (a float16 range would round every
        update); moves between devices apply as usual."""
        kept = {name: getattr(self, name).detach().clone() for name in ("min", "max")}
        out = super()._apply(fn, *args, **kwargs)
        for name, old in kept.items():
            new = getattr(self, name)
            if new.dtype is not _F32:
                if isinstance(new, nn.Parameter):
                    new.data = old.to(new.device)
                else:
                    self._buffers[name] = old.to(new.device)
        return out

    def extra_repr(self):
        s = f"num_bits={self.num_bits}, narrow_range={self.narrow_range}, tracking={self.tracking!r}"
        if self.tracking == "moving_average":
            s += f", ema_decay={self.ema_decay}"
        if self.symmetric:
            s += ", symmetric=True"
        if self.axis is not None:
            s += f", axis={self.axis}, channels={self.min.shape[0]}"
        return s

    def _quantize(self, x, lo, hi):
        if self.axis is None:
            return fake_quant_with_min_max_vars(x, lo, hi, self.num_bits, self.narrow_range)
        return fake_quant_with_min_max_vars_per_channel(x, lo, hi, self.num_bits, self.narrow_range,
                                                        axis=self.axis)

    def _batch_range(self, x):
        """(bmin, bmax) as tfmot's reduce_min/reduce_max, float32; None when
        the input does not fit the range (the quantize call then raises
        cfq's error)."""
        if self.axis is None:
            if x.numel() == 0:  # TF's reduction identities
                return (torch.full((), float("inf"), dtype=_F32, device=x.device),
                        torch.full((), float("-inf"), dtype=_F32, device=x.device))
            return torch.amin(x).to(_F32), torch.amax(x).to(_F32)
        nd = x.dim()
        if not -nd <= self.axis < nd or x.shape[self.axis] != self.min.shape[0]:
            return None
        ax = self.axis % nd
        dims = [d for d in range(nd) if d != ax]
        if not dims:  # rank 1: every element its own channel
            return x.to(_F32), x.to(_F32)
        if x.numel() == 0:
            c = x.shape[ax]
            return (torch.full((c,), float("inf"), dtype=_F32, device=x.device),
                    torch.full((c,), float("-inf"), dtype=_F32, device=x.device))
        return torch.amin(x, dim=dims).to(_F32), torch.amax(x, dim=dims).to(_F32)

    def _track(self, x):
        """The new range from this batch, stored; returned as fresh tensors
        so a backward still pending on the previous range is not disturbed."""
        batch = self._batch_range(x.detach())
        if batch is None:
            return self.min, self.max
        bmin, bmax = batch
        if self.symmetric:
            bits = self.num_bits
            ratio = -1.0 if self.narrow_range else -((1 << bits) - 2) / (1 << bits)
            # A tensor, not a Python number: inductor before PyTorch issue
            # 157959 turned a division by a constant into a multiplication by
            # its reciprocal (other bits) on the CPU too.
            r = torch.full((), ratio, dtype=_F32, device=bmin.device)
            if self.tf_graph:  # grappler's rewrite: bmax * float32(1 / ratio)
                widened = _flush(bmax) * torch.full((), float(np.float32(1.0) / np.float32(ratio)),
                                                    dtype=_F32, device=bmin.device)
            else:
                widened = _flush(bmax) / r
            rmin = _tf_min_max(bmin, _flush(widened), True)
            rmax = _tf_min_max(bmax, _flush(_flush(bmin) * r), False)
        else:
            zero = torch.zeros_like(bmin)
            rmin = _tf_min_max(bmin, zero, True)
            rmax = _tf_min_max(bmax, zero, False)
        if self.tracking == "moving_average":
            # 1 - decay in double, then float32, as TF converts it.
            d = torch.full((), float(np.float32(1.0 - self.ema_decay)), dtype=_F32, device=bmin.device)
            rmin = self._ema(self.min, rmin, d)
            rmax = self._ema(self.max, rmax, d)
        self.min.copy_(rmin)
        self.max.copy_(rmax)
        return rmin, rmax

    @staticmethod
    def _ema(v, r, d):
        v = _flush(v.to(_F32))
        return _flush(v - _flush(_flush(v - _flush(r)) * d))

    def forward(self, x):
        lo, hi = self.min, self.max
        if self.training and self.tracking != "learned":
            with torch.no_grad():
                lo, hi = self._track(x)
        return self._quantize(x, lo, hi)
