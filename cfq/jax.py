"""cfq.jax: TensorFlow-exact fake quantization for JAX, through XLA's FFI.

The ops have cfq's (and TF's) names and signatures and run cfq's C kernels
as XLA custom calls (``jax.ffi.ffi_call``): no Python callback, no copy.
They work under ``jit``, ``grad`` and ``vmap``; ``jax.custom_vjp`` gives TF's
gradients (with respect to inputs, min and max for the vars ops; inputs for
the args op), computed by cfq's gradient kernels, bit for bit as
``cfq.fake_quant_with_min_max_vars_gradient`` and friends give them (and TF
2.21's element results; the min/max sums are cfq's more accurate ones).

    import jax, jax.numpy as jnp
    from cfq import jax as cfqj

    y = cfqj.fake_quant_with_min_max_vars(x, -3.0, 3.0, num_bits=8)
    loss = lambda x, lo, hi: jnp.sum(cfqj.fake_quant_with_min_max_vars(x, lo, hi) ** 2)
    dx, dlo, dhi = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, -3.0, 3.0)

- min and max of the vars ops are arrays (traceable, differentiable): scalars
  for the vars op, 1-D with one value per channel of ``axis`` for the
  per-channel op.  The args op takes Python numbers, as TF's attributes.
  num_bits, narrow_range and axis are static.
- vmap: with min/max shared across the batch, the whole batch goes into one
  cfq call (the vars gradient's per-example min/max sums included); with
  per-example min/max, cfq runs once per example inside the same custom call.
  Either way the bits equal a loop over the examples.
- dtypes: float32, float16 and bfloat16 arrays go to cfq's kernels as they
  are (no convert ops in the program; the kernels compute in float32, so
  each element result is the float32 op's result rounded to the dtype);
  results have the inputs' dtype.  min, max and the min/max gradients are
  float32: with float32 (or Python number) min/max, their cotangents are
  float32 whatever the inputs' dtype; min/max arrays of another dtype get
  jax's cast of the float32 cotangent.  float64 inputs (jax_enable_x64) are
  computed in float32 and cast back; integer, bool and complex inputs are a
  TypeError.  The gradient functions take gradients and inputs of one
  dtype where either is float16 or bfloat16 (cfq's TypeError otherwise).
- CPU only: on another backend the ops raise ValueError at trace time.
- Bad arguments raise cfq's ValueError/TypeError at trace time.  A NaN or
  infinite traced min/max can only be seen when the kernel runs: it raises
  jax's runtime error carrying cfq's message ("min and max must be finite").
- Threads: cfq's automatic rule (as ``threads=None``: one thread per 128K
  elements, up to the usable CPUs), from 4M elements on (``threads=None``
  starts at 256K): inside XLA a second cfq thread competes with XLA's own
  pool and slowed jit(grad) down up to 3.6x below 4M on a 2-CPU machine.

Importing ``cfq`` never imports jax; importing ``cfq.jax`` does, and
registers the handlers with XLA.  Requires jax and jaxlib >= 0.5.0: the
oldest release tested (the suite passes with 0.5.0 and with 0.10.2, the
newest on PyPI here); it has the public ``jax.ffi`` module with
``ffi_call(..., vmap_method=...)``, and its XLA (FFI API 0.1, which up to
jaxlib 0.7 must match the handler's exactly) registers cfq's handlers, which
report API 0.1 (see src/cfq_xla_ffi.h).
"""
import functools

import numpy as np

import jax
import jax.numpy as jnp

import cfq
from cfq import _core

__all__ = [
    "fake_quant_with_min_max_args",
    "fake_quant_with_min_max_args_gradient",
    "fake_quant_with_min_max_vars",
    "fake_quant_with_min_max_vars_gradient",
    "fake_quant_with_min_max_vars_per_channel",
    "fake_quant_with_min_max_vars_per_channel_gradient",
]

MIN_JAX_VERSION = (0, 5, 0)


def _version_tuple(text):
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts + [0] * (3 - len(parts)))


if _version_tuple(jax.__version__) < MIN_JAX_VERSION:
    raise ImportError(
        f"cfq.jax needs jax >= {'.'.join(map(str, MIN_JAX_VERSION))}, found jax {jax.__version__}")

# ---------------------------------------------------------------------------
# Registration of the C handlers with XLA

TARGETS = {op: "cfq_" + op for op in (
    "fq_vars", "fq_vars_grad", "fq_args", "fq_args_grad", "fq_per_channel",
    "fq_per_channel_grad")}


def _register():
    handlers, (major, minor) = _core._xla_ffi_handlers()
    for op, target in TARGETS.items():
        try:
            jax.ffi.register_ffi_target(target, handlers[op], platform="cpu", api_version=1)
        except Exception as exc:  # jaxlib's error type differs between versions
            raise ImportError(
                f"cfq.jax: XLA refused cfq's FFI handler {target} (written for XLA FFI API "
                f"{major}.{minor}) with jax {jax.__version__}: {exc}") from exc


_register()

# ---------------------------------------------------------------------------
# Checks done at trace time, with cfq's own messages where cfq has them


def _is_traced(value):
    return isinstance(value, jax.core.Tracer)


def _platforms(*arrays):
    """The platforms the computation runs on: the devices of concrete
    arrays, else (under a trace) the default device's."""
    found = set()
    for a in arrays:
        if isinstance(a, jax.Array) and not _is_traced(a):
            try:
                found |= {d.platform for d in a.devices()}
            except Exception:  # a deleted or otherwise odd array: let jax say so later
                pass
    if not found:
        default = jax.config.jax_default_device
        if default is None:
            found.add(jax.default_backend())
        elif isinstance(default, str):
            found.add(default)
        else:
            found.add(default.platform)
    return found


def _check_platform(*arrays):
    platforms = _platforms(*arrays)
    if platforms != {"cpu"}:
        raise ValueError(
            f"cfq.jax runs on the CPU only, but the arrays are on {', '.join(sorted(platforms))}; "
            "move them with jax.device_put(x, jax.devices('cpu')[0]) or run under "
            "jax.default_device(jax.devices('cpu')[0])")


def _dtype_of(value):
    return value.dtype if hasattr(value, "dtype") else jnp.result_type(value)


# The element dtypes cfq's kernels take as they are (src/cfq_xla_ffi.c hands
# float16 and bfloat16 buffers to cfq's _typed entry points: no convert in
# the program, results in the input's dtype).  Other float dtypes (float64
# under jax_enable_x64) are computed in float32 and cast back.
_NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(jnp.bfloat16))
_COMPUTE_DTYPE = np.dtype(np.float32)  # of min, max, their sums, and the other float dtypes


def _compute_array(value, name):
    """`value` as a jnp array in a dtype cfq's kernels take, and the dtype
    the results go back to."""
    dtype = np.dtype(_dtype_of(value))
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a floating-point dtype (float32, float16 or bfloat16, or "
            f"float64, computed in float32), got dtype {dtype.name}")
    arr = jnp.asarray(value)
    if dtype not in _NATIVE_DTYPES:
        arr = arr.astype(_COMPUTE_DTYPE)
    return _jax_value(arr), dtype


def _result(y, dtype):
    return y if y.dtype == dtype else y.astype(dtype)


def _element_pair(gradients, inputs):
    """gradients and inputs of the gradient functions, in one dtype cfq's
    kernels take, and the dtype of the results: as in cfq's NumPy API, a
    float16 or bfloat16 array with an array of another dtype is cfq's
    TypeError (other float dtypes meet in float32)."""
    _same_shape(gradients, inputs)
    g, gdtype = _compute_array(gradients, "gradients")
    x, xdtype = _compute_array(inputs, "inputs")
    if g.dtype != x.dtype:
        # cfq's own check and message, on empty stand-ins of the two dtypes.
        cfq.fake_quant_with_min_max_args_gradient(np.zeros(0, gdtype), np.zeros(0, xdtype))
        raise TypeError(f"gradients and inputs must have the same dtype, got {gdtype} and {xdtype}")
    return g, x, jnp.result_type(gdtype, xdtype)


def _jax_value(x):
    """x, made a jax value if vmap batched a NumPy array straight into it:
    jax (0.10.2) hands such a value to custom_vjp, which then fails under
    jit with "non-canonical constant of type ndarray"; a copy (free in XLA)
    goes through vmap's rules and gives a proper value."""
    if isinstance(getattr(x, "val", None), np.ndarray):
        return jnp.copy(x)
    return x


def _check_real(value, name):
    dtype = _dtype_of(value)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)) \
            or jnp.issubdtype(dtype, jnp.bool_):
        raise TypeError(f"{name} must hold real numbers, got dtype {np.dtype(dtype).name}")


def _concrete(value):
    """A NumPy stand-in for cfq's checks: the value itself when it is known
    at trace time, else None."""
    if _is_traced(value):
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        arr = arr.astype(np.float32)  # bfloat16 and other ml_dtypes: cfq reads float32
    return arr


def _scalar_range(min, max, num_bits, narrow_range):
    """Checks the vars op's min/max (scalars) and num_bits/narrow_range with
    cfq's own checks; returns min and max as float32 jnp arrays."""
    stand_in = []
    for value, name in ((min, "min"), (max, "max")):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        _check_real(value, name)
        shape = np.shape(value)
        if shape != ():
            raise ValueError(f"{name} must be a scalar (shape ()), got shape {shape}")
        known = _concrete(value)
        stand_in.append(0.0 if known is None else (value if isinstance(value, (int, float)) else known))
    cfq.nudge(stand_in[0], stand_in[1], num_bits, narrow_range)  # cfq's errors
    return (_jax_value(jnp.asarray(min, dtype=_COMPUTE_DTYPE)),
            _jax_value(jnp.asarray(max, dtype=_COMPUTE_DTYPE)))


def _channel_range(shape, min, max, num_bits, narrow_range, axis):
    """Checks the per-channel op's arguments with cfq's own checks on
    stand-ins of the inputs' rank and channel count; returns min, max as
    float32 jnp arrays and the axis made non-negative."""
    nd = len(shape)
    stand_ins = []
    for value, name in ((min, "min"), (max, "max")):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a 1-D array of real numbers, got {type(value).__name__}")
        _check_real(value, name)
        known = _concrete(value)
        stand_ins.append(np.zeros(np.shape(value), np.float32) if known is None else known)
    # An empty array of the inputs' rank with the channel axis kept: cfq
    # checks rank, axis and channel counts on it without touching the data.
    if nd == 0:
        x = np.zeros((), np.float32)
    elif isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)) \
            and -nd <= axis < nd:
        ax = int(axis) % nd
        x = np.zeros([shape[ax] if i == ax else (0 if nd > 1 else shape[i]) for i in range(nd)],
                     np.float32)
    else:
        x = np.zeros((0,) * nd, np.float32)
    cfq.fake_quant_with_min_max_vars_per_channel(x, stand_ins[0], stand_ins[1], num_bits,
                                                 narrow_range, axis=axis)
    return (_jax_value(jnp.asarray(min, dtype=_COMPUTE_DTYPE)),
            _jax_value(jnp.asarray(max, dtype=_COMPUTE_DTYPE)), int(axis) % nd)


def _args_range(min, max, num_bits, narrow_range):
    """The args op's min/max (Python numbers, as TF's attributes), checked by
    cfq (including min < max) and rounded to float32 as cfq rounds them."""
    for value, name in ((min, "min"), (max, "max")):
        if _is_traced(value):
            raise TypeError(f"{name} of the args op is an attribute (as in TF): a Python number, "
                            "not a traced array; use fake_quant_with_min_max_vars for a traced range")
    cfq.fake_quant_with_min_max_args(np.zeros(0, np.float32), min, max, num_bits, narrow_range)
    return _as_f32_attr(min), _as_f32_attr(max)


def _as_f32_attr(value):
    # By way of a double, as cfq (and TF's float attributes) convert.
    if isinstance(value, (int, float)):
        return np.float32(float(value))
    return np.float32(np.asarray(value).astype(np.float64))


def _same_shape(gradients, inputs):
    gs, xs = np.shape(gradients), np.shape(inputs)
    if gs != xs:
        raise ValueError(f"gradients and inputs must have the same shape, got {gs} and {xs}")


def _quant_attrs(num_bits, narrow_range):
    return {"num_bits": np.int32(num_bits), "narrow_range": np.bool_(narrow_range)}


# ---------------------------------------------------------------------------
# The custom calls (element buffers in x's dtype; min, max and sums float32)

def _call(op, results, *args, **attrs):
    # expand_dims: under vmap, an operand shared by the batch gets a size-1
    # axis and the handler runs the batch itself (see src/cfq_xla_ffi.h).
    return jax.ffi.ffi_call(TARGETS[op], results, vmap_method="expand_dims")(*args, **attrs)


def _like(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


def _f32(shape):
    return jax.ShapeDtypeStruct(shape, _COMPUTE_DTYPE)


def _vars_grad_call(g, x, lo, hi, num_bits, narrow_range):
    return _call("fq_vars_grad", (_like(x), _f32(()), _f32(())), g, x, lo, hi,
                 **_quant_attrs(num_bits, narrow_range))


def _per_channel_grad_call(g, x, lo, hi, num_bits, narrow_range, axis):
    c = (x.shape[axis],)
    return _call("fq_per_channel_grad", (_like(x), _f32(c), _f32(c)), g, x, lo, hi,
                 axis=np.int32(axis), **_quant_attrs(num_bits, narrow_range))


def _args_grad_call(g, x, lo, hi, num_bits, narrow_range):
    return _call("fq_args_grad", _like(x), g, x, min=lo, max=hi,
                 **_quant_attrs(num_bits, narrow_range))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _vars(x, lo, hi, num_bits, narrow_range):
    return _call("fq_vars", _like(x), x, lo, hi, **_quant_attrs(num_bits, narrow_range))


# The backward reads the inputs (residuals x, min, max), not cfq's 1-byte
# region codes: measured here in jit(grad) of sum(fq(x) * w), vars op, 64K,
# 1M and 16M elements in float32, float16 and bfloat16, the region pair
# (codes written by the forward, gradient from the codes) took 1.1-1.9x the
# time (medians; 1.5-1.9x in 8 of 9 cases), as XLA drops the forward call
# there unless the codes need it; in value_and_grad, where the forward runs
# anyway, 0.95-1.24x (slower in 8 of 9).  cfq's NumPy API ranks them the
# same (1M float32, one thread: gradient from codes 318 us, from inputs
# 263 us; forward with codes 178 us, without 121 us).
def _vars_fwd(x, lo, hi, num_bits, narrow_range):
    return _vars(x, lo, hi, num_bits, narrow_range), (x, lo, hi)


def _vars_bwd(num_bits, narrow_range, residuals, g):
    x, lo, hi = residuals
    return tuple(_vars_grad_call(g, x, lo, hi, num_bits, narrow_range))


_vars.defvjp(_vars_fwd, _vars_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _per_channel(x, lo, hi, num_bits, narrow_range, axis):
    return _call("fq_per_channel", _like(x), x, lo, hi, axis=np.int32(axis),
                 **_quant_attrs(num_bits, narrow_range))


def _per_channel_fwd(x, lo, hi, num_bits, narrow_range, axis):
    return _per_channel(x, lo, hi, num_bits, narrow_range, axis), (x, lo, hi)


def _per_channel_bwd(num_bits, narrow_range, axis, residuals, g):
    x, lo, hi = residuals
    return tuple(_per_channel_grad_call(g, x, lo, hi, num_bits, narrow_range, axis))


_per_channel.defvjp(_per_channel_fwd, _per_channel_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _args(x, lo, hi, num_bits, narrow_range):
    return _call("fq_args", _like(x), x, min=lo, max=hi,
                 **_quant_attrs(num_bits, narrow_range))


def _args_fwd(x, lo, hi, num_bits, narrow_range):
    return _args(x, lo, hi, num_bits, narrow_range), x


def _args_bwd(lo, hi, num_bits, narrow_range, x, g):
    return (_args_grad_call(g, x, lo, hi, num_bits, narrow_range),)


_args.defvjp(_args_fwd, _args_bwd)

# ---------------------------------------------------------------------------
# Public ops


def fake_quant_with_min_max_vars(inputs, min, max, num_bits=8, narrow_range=False, name=None):
    """TF's FakeQuantWithMinMaxVars on a JAX array, differentiable in inputs,
    min and max (TF's gradients); min and max are scalars (arrays or numbers)."""
    _check_platform(inputs, min, max)
    x, dtype = _compute_array(inputs, "inputs")
    lo, hi = _scalar_range(min, max, num_bits, narrow_range)
    return _result(_vars(x, lo, hi, int(num_bits), bool(narrow_range)), dtype)


def fake_quant_with_min_max_vars_per_channel(inputs, min, max, num_bits=8, narrow_range=False,
                                             name=None, *, axis=-1):
    """TF's FakeQuantWithMinMaxVarsPerChannel along ``axis`` (any axis; TF's
    is the last), differentiable in inputs, min and max."""
    _check_platform(inputs, min, max)
    x, dtype = _compute_array(inputs, "inputs")
    lo, hi, ax = _channel_range(np.shape(inputs), min, max, num_bits, narrow_range, axis)
    return _result(_per_channel(x, lo, hi, int(num_bits), bool(narrow_range), ax), dtype)


def fake_quant_with_min_max_args(inputs, min=-6.0, max=6.0, num_bits=8, narrow_range=False,
                                 name=None):
    """TF's FakeQuantWithMinMaxArgs; min and max are Python numbers (TF's
    attributes).  Differentiable in inputs."""
    _check_platform(inputs)
    x, dtype = _compute_array(inputs, "inputs")
    lo, hi = _args_range(min, max, num_bits, narrow_range)
    return _result(_args(x, lo, hi, int(num_bits), bool(narrow_range)), dtype)


def fake_quant_with_min_max_vars_gradient(gradients, inputs, min, max, num_bits=8,
                                          narrow_range=False, name=None):
    """TF's FakeQuantWithMinMaxVarsGradient:
    ``FakeQuantWithMinMaxVarsGradient(backprops_wrt_input, backprop_wrt_min,
    backprop_wrt_max)``, the sums float32 scalars (cfq's sums)."""
    _check_platform(gradients, inputs, min, max)
    g, x, dtype = _element_pair(gradients, inputs)
    lo, hi = _scalar_range(min, max, num_bits, narrow_range)
    dx, dmin, dmax = _vars_grad_call(g, x, lo, hi, int(num_bits), bool(narrow_range))
    return cfq.FakeQuantWithMinMaxVarsGradient(_result(dx, dtype), dmin, dmax)


def fake_quant_with_min_max_vars_per_channel_gradient(gradients, inputs, min, max, num_bits=8,
                                                      narrow_range=False, name=None, *, axis=-1):
    """TF's FakeQuantWithMinMaxVarsPerChannelGradient along ``axis``:
    ``(backprops_wrt_input, backprop_wrt_min[C], backprop_wrt_max[C])``."""
    _check_platform(gradients, inputs, min, max)
    g, x, dtype = _element_pair(gradients, inputs)
    lo, hi, ax = _channel_range(np.shape(inputs), min, max, num_bits, narrow_range, axis)
    dx, dmin, dmax = _per_channel_grad_call(g, x, lo, hi, int(num_bits), bool(narrow_range), ax)
    return cfq.FakeQuantWithMinMaxVarsPerChannelGradient(_result(dx, dtype), dmin, dmax)


def fake_quant_with_min_max_args_gradient(gradients, inputs, min=-6.0, max=6.0, num_bits=8,
                                          narrow_range=False, name=None):
    """TF's FakeQuantWithMinMaxArgsGradient: ``gradients * (inputs inside the
    nudged range)``."""
    _check_platform(gradients, inputs)
    g, x, dtype = _element_pair(gradients, inputs)
    lo, hi = _args_range(min, max, num_bits, narrow_range)
    return _result(_args_grad_call(g, x, lo, hi, int(num_bits), bool(narrow_range)), dtype)
