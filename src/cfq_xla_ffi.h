/*
 * cfq_xla_ffi.h -- cfq's XLA FFI handlers (src/cfq_xla_ffi.c) and cfq's own
 * declarations of the parts of XLA's FFI C ABI they use.
 *
 * The ABI is XLA's `xla/ffi/api/c_api.h` (API 0.3 in jaxlib 0.10.2, 0.1 in
 * jaxlib 0.5 to 0.7).  cfq does
 * not include that header, so building cfq needs neither XLA nor jaxlib: the
 * structs below restate the layouts of the header's structs (the layouts are
 * the interface), under cfq's own names, for the members cfq reads or writes.
 * Every struct XLA passes starts with its size; each handler checks the sizes
 * against the `CFQ_XLA_*_SIZE` values below (the header's STRUCT_SIZE rule:
 * offset of the last member plus its size) before it reads a member, and the
 * API major version of the table XLA hands it, and answers a mismatch with an
 * XLA error, never by reading past a struct.
 *
 * Plain C99; C enums of the ABI are `int` here (4 bytes on every platform XLA
 * runs on).
 */
#ifndef CFQ_XLA_FFI_H
#define CFQ_XLA_FFI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The API version cfq's handlers report to XLA in the registration probe:
 * 0.1, the oldest version in which every struct declared below has the
 * layout declared here.  The declarations were written from the 0.3 header
 * (jaxlib 0.9 and 0.10) and compared with the 0.1 (jaxlib 0.5 to 0.7) and 0.2
 * (jaxlib 0.8) headers: between them only structs cfq does not use changed
 * (type and state registration) and XLA_FFI_Metadata gained a member after
 * `traits`.  jaxlib up to 0.7 registers only handlers of exactly its own
 * version (0.1); later ones any version from 0.1 to their own.  An API table
 * of another major version is refused at run time. */
#define CFQ_XLA_FFI_API_MAJOR 0
#define CFQ_XLA_FFI_API_MINOR 1

/* XLA_FFI_Extension_Type, XLA_FFI_ExecutionStage, XLA_FFI_ArgType,
 * XLA_FFI_RetType, XLA_FFI_AttrType and XLA_FFI_DataType values used here. */
#define CFQ_XLA_EXTENSION_METADATA 1
#define CFQ_XLA_STAGE_EXECUTE 3
#define CFQ_XLA_ARG_BUFFER 1
#define CFQ_XLA_RET_BUFFER 1
#define CFQ_XLA_ATTR_SCALAR 3
#define CFQ_XLA_DTYPE_PRED 1
#define CFQ_XLA_DTYPE_S32 4
#define CFQ_XLA_DTYPE_S64 5
#define CFQ_XLA_DTYPE_F16 10
#define CFQ_XLA_DTYPE_F32 11
#define CFQ_XLA_DTYPE_BF16 16

/* XLA_FFI_Error_Code values used here. */
#define CFQ_XLA_ERROR_INVALID_ARGUMENT 3
#define CFQ_XLA_ERROR_RESOURCE_EXHAUSTED 8
#define CFQ_XLA_ERROR_FAILED_PRECONDITION 9
#define CFQ_XLA_ERROR_INTERNAL 13

/* XLA_FFI_Error: opaque, owned by whoever receives it. */
typedef struct cfq_xla_error cfq_xla_error;

/* XLA_FFI_Extension_Base */
typedef struct cfq_xla_extension {
    size_t struct_size;
    int type;
    struct cfq_xla_extension *next;
} cfq_xla_extension;

/* XLA_FFI_Api_Version */
typedef struct cfq_xla_api_version {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    int major_version;
    int minor_version;
} cfq_xla_api_version;

/* XLA_FFI_Error_Create_Args */
typedef struct cfq_xla_error_create_args {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    const char *message;
    int errc;
} cfq_xla_error_create_args;

typedef cfq_xla_error *cfq_xla_error_create_fn(cfq_xla_error_create_args *args);

/* XLA_FFI_Api, up to its first function, XLA_FFI_Error_Create (the only one
 * cfq calls).  XLA's table is longer; its struct_size says how long. */
typedef struct cfq_xla_api {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    cfq_xla_api_version api_version;
    const void *internal_api;
    cfq_xla_error_create_fn *error_create;
} cfq_xla_api;

/* XLA_FFI_ByteSpan: a name, not NUL-terminated. */
typedef struct cfq_xla_bytespan {
    const char *ptr;
    size_t len;
} cfq_xla_bytespan;

/* XLA_FFI_Buffer: a dense row-major array. */
typedef struct cfq_xla_buffer {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    int dtype;
    void *data;
    int64_t rank;
    int64_t *dims;
} cfq_xla_buffer;

/* XLA_FFI_Scalar: a scalar attribute. */
typedef struct cfq_xla_scalar {
    int dtype;
    void *value;
} cfq_xla_scalar;

/* XLA_FFI_Args / XLA_FFI_Rets: one tag and one pointer per operand. */
typedef struct cfq_xla_args {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    int64_t size;
    int *types;
    void **args;
} cfq_xla_args;

typedef struct cfq_xla_rets {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    int64_t size;
    int *types;
    void **rets;
} cfq_xla_rets;

/* XLA_FFI_Attrs: sorted by name. */
typedef struct cfq_xla_attrs {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    int64_t size;
    int *types;
    cfq_xla_bytespan **names;
    void **attrs;
} cfq_xla_attrs;

/* XLA_FFI_CallFrame, up to attrs (its STRUCT_SIZE; the `future` member that
 * follows is not used: cfq's handlers are synchronous). */
typedef struct cfq_xla_call_frame {
    size_t struct_size;
    cfq_xla_extension *extension_start;
    const cfq_xla_api *api;
    void *ctx;
    int stage;
    cfq_xla_args args;
    cfq_xla_rets rets;
    cfq_xla_attrs attrs;
} cfq_xla_call_frame;

/* XLA_FFI_Metadata up to traits (its STRUCT_SIZE), and the metadata
 * extension XLA puts first in the call frame of the registration probe. */
typedef struct cfq_xla_metadata {
    size_t struct_size;
    cfq_xla_api_version api_version;
    uint32_t traits;
} cfq_xla_metadata;

typedef struct cfq_xla_metadata_extension {
    cfq_xla_extension extension_base;
    cfq_xla_metadata *metadata;
} cfq_xla_metadata_extension;

/* The header's STRUCT_SIZE rule: offset of the last member plus its size. */
#define CFQ_XLA_SIZE_UPTO(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))
#define CFQ_XLA_API_VERSION_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_api_version, minor_version)
#define CFQ_XLA_ERROR_CREATE_ARGS_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_error_create_args, errc)
#define CFQ_XLA_API_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_api, error_create)
#define CFQ_XLA_BUFFER_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_buffer, dims)
#define CFQ_XLA_ARGS_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_args, args)
#define CFQ_XLA_RETS_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_rets, rets)
#define CFQ_XLA_ATTRS_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_attrs, attrs)
#define CFQ_XLA_CALL_FRAME_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_call_frame, attrs)
#define CFQ_XLA_METADATA_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_metadata, traits)
#define CFQ_XLA_METADATA_EXTENSION_SIZE CFQ_XLA_SIZE_UPTO(cfq_xla_metadata_extension, metadata)

/*
 * The handlers, one per op; register each with
 *   jax.ffi.register_ffi_target(name, capsule, platform="cpu", api_version=1)
 * (cfq.jax does; cfq._core exports the capsules).  Buffers are row-major.
 * The element buffers (gradients, inputs and the element results) are
 * float32, float16 or bfloat16, one dtype for all of a call's, and go to
 * cfq's _typed entry points as they are (results in that dtype); min, max
 * and the sums are float32.  Any other dtype, or a mix, is an XLA error.
 * Attributes: num_bits (s32 or s64), narrow_range (pred), and axis (s32 or
 * s64, of the un-batched input) for the per-channel ops, min and max (f32)
 * for the args ops.
 *
 * Batching: the operands may carry k leading batch axes in front of the op's
 * own shape (vmap's "expand_dims" method: k is the rank of min minus the rank
 * the op gives min; for the args ops, the inputs' leading axes), each of
 * size 1 (the operand is shared across that axis) or the results' size.  The
 * handler then runs the op per example; trailing batch axes over which min
 * and max are shared and the inputs are not go into one call of cfq (the
 * vars gradient gives per-example sums there through cfq's per-channel
 * gradient, whose per-channel sums are the scalar-range gradient's bits).
 *
 *   cfq_xla_fq_vars                 (inputs, min, max) -> outputs
 *   cfq_xla_fq_vars_grad            (gradients, inputs, min, max) -> (dx, dmin, dmax)
 *   cfq_xla_fq_args                 (inputs) -> outputs                [min, max attrs]
 *   cfq_xla_fq_args_grad            (gradients, inputs) -> dx          [min, max attrs]
 *   cfq_xla_fq_per_channel          (inputs, min[C], max[C]) -> outputs         [axis]
 *   cfq_xla_fq_per_channel_grad     (gradients, inputs, min, max) -> (dx, dmin[C], dmax[C])
 */
cfq_xla_error *cfq_xla_fq_vars(cfq_xla_call_frame *frame);
cfq_xla_error *cfq_xla_fq_vars_grad(cfq_xla_call_frame *frame);
cfq_xla_error *cfq_xla_fq_args(cfq_xla_call_frame *frame);
cfq_xla_error *cfq_xla_fq_args_grad(cfq_xla_call_frame *frame);
cfq_xla_error *cfq_xla_fq_per_channel(cfq_xla_call_frame *frame);
cfq_xla_error *cfq_xla_fq_per_channel_grad(cfq_xla_call_frame *frame);

/* The handlers' thread rule, cfq's automatic one (cfq/_core.pyx: one thread
 * below min_elements, then one per per_thread elements, up to cpus).
 * cfq._core sets it at import (cfq/_xla.pxi, with a higher min_elements than
 * threads=None: see there); until then (a C program) calls use one thread. */
void cfq_xla_set_auto_threads(int cpus, size_t min_elements, size_t per_thread);
int cfq_xla_auto_threads(size_t n);

#ifdef __cplusplus
}
#endif

#endif /* CFQ_XLA_FFI_H */
