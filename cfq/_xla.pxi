# _xla.pxi -- included at the end of _core.pyx: the XLA FFI handlers of
# src/cfq_xla_ffi.c as PyCapsules for
#     jax.ffi.register_ffi_target(name, capsule, platform="cpu", api_version=1)
# (cfq.jax registers them).  Nothing here imports jax.

from cpython.pycapsule cimport PyCapsule_New as _xla_capsule_new

cdef extern from "cfq_xla_ffi.h":
    ctypedef struct cfq_xla_error:
        pass
    ctypedef struct cfq_xla_call_frame:
        pass
    cfq_xla_error *cfq_xla_fq_vars(cfq_xla_call_frame *frame)
    cfq_xla_error *cfq_xla_fq_vars_grad(cfq_xla_call_frame *frame)
    cfq_xla_error *cfq_xla_fq_args(cfq_xla_call_frame *frame)
    cfq_xla_error *cfq_xla_fq_args_grad(cfq_xla_call_frame *frame)
    cfq_xla_error *cfq_xla_fq_per_channel(cfq_xla_call_frame *frame)
    cfq_xla_error *cfq_xla_fq_per_channel_grad(cfq_xla_call_frame *frame)
    void cfq_xla_set_auto_threads(int cpus, size_t min_elements, size_t per_thread)
    int cfq_xla_auto_threads(size_t n)
    int CFQ_XLA_FFI_API_MAJOR
    int CFQ_XLA_FFI_API_MINOR

# The handlers use the rule threads=None uses (one thread per
# AUTO_ELEMENTS_PER_THREAD elements, up to the CPUs this process may use),
# but from XLA_AUTO_THREADS_MIN elements on rather than AUTO_THREADS_MIN:
# inside XLA, a second cfq thread competes with XLA's own pool for the cores
# and its wake-up is paid on every call.  Measured, jit(grad) of the vars op
# on this 2-CPU VM, 1 thread against 2: 101 vs 363 us at 256K, 499 vs 881 us
# at 1M, 1976 vs 1956 us at 4M, 12.5 vs 13.4 ms at 16M.
XLA_AUTO_THREADS_MIN = 1 << 22
cfq_xla_set_auto_threads(_cpus, XLA_AUTO_THREADS_MIN, AUTO_ELEMENTS_PER_THREAD)

# XLA's capsules carry no name (jaxlib reads the pointer whatever the name).
_XLA_FFI_HANDLERS = {
    "fq_vars": _xla_capsule_new(<void *>cfq_xla_fq_vars, NULL, NULL),
    "fq_vars_grad": _xla_capsule_new(<void *>cfq_xla_fq_vars_grad, NULL, NULL),
    "fq_args": _xla_capsule_new(<void *>cfq_xla_fq_args, NULL, NULL),
    "fq_args_grad": _xla_capsule_new(<void *>cfq_xla_fq_args_grad, NULL, NULL),
    "fq_per_channel": _xla_capsule_new(<void *>cfq_xla_fq_per_channel, NULL, NULL),
    "fq_per_channel_grad": _xla_capsule_new(<void *>cfq_xla_fq_per_channel_grad, NULL, NULL),
}
_XLA_FFI_API_VERSION = (CFQ_XLA_FFI_API_MAJOR, CFQ_XLA_FFI_API_MINOR)


def _xla_ffi_handlers():
    """{op: PyCapsule of its XLA FFI handler}, for jax.ffi.register_ffi_target;
    the API version (major, minor) the handlers report to XLA."""
    return dict(_XLA_FFI_HANDLERS), _XLA_FFI_API_VERSION


def _xla_auto_threads(n):
    """The thread count the handlers use for a call on n elements."""
    return cfq_xla_auto_threads(n)


def _xla_set_auto_threads(cpus, min_elements=XLA_AUTO_THREADS_MIN, per_thread=AUTO_ELEMENTS_PER_THREAD):
    """Changes the handlers' thread rule (benchmarks and tests)."""
    cfq_xla_set_auto_threads(cpus, min_elements, per_thread)
