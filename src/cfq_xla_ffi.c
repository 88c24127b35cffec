/*
 * cfq_xla_ffi.c -- XLA FFI handlers of cfq's ops (see cfq_xla_ffi.h), so XLA
 * (JAX's jit) calls cfq's kernels directly: no Python, no copy.
 *
 * Each handler: (1) checks the call frame and the API table XLA passes
 * (sizes, API major version) and answers XLA's registration probe with the
 * API version of cfq_xla_ffi.h; (2) decodes its buffers and attributes,
 * checking tags, dtypes, ranks and shapes, as much as memory safety needs (the
 * user-facing checks are cfq/jax.py's, at trace time, with cfq's messages);
 * (3) runs cfq's public entry points, per example when a vmap batch axis
 * calls for it; a cfq error code becomes an XLA error with cfq_strerror's
 * text.  Nothing here aborts or prints.
 */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise */
#endif

#include "cfq_xla_ffi.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfq.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Ranks beyond this are refused (XLA's own limit is far higher, but cfq's ops
 * never need it: the op's rank plus one axis per vmap). */
#define CFQ_XLA_MAX_RANK 64

/* ---- Threads: cfq's automatic rule, set by cfq._core -------------------- */

static int cfq_xla_cpus = 1;
static size_t cfq_xla_min_elements = (size_t)1 << 18;
static size_t cfq_xla_per_thread = (size_t)1 << 17;

void cfq_xla_set_auto_threads(int cpus, size_t min_elements, size_t per_thread)
{
    cfq_xla_cpus = cpus < 1 ? 1 : (cpus > CFQ_MAX_THREADS ? CFQ_MAX_THREADS : cpus);
    cfq_xla_min_elements = min_elements;
    cfq_xla_per_thread = per_thread > 0 ? per_thread : 1;
}

int cfq_xla_auto_threads(size_t n)
{
    size_t t;
    if (n < cfq_xla_min_elements || cfq_xla_cpus <= 1)
        return 1;
    t = n / cfq_xla_per_thread;
    if (t > (size_t)cfq_xla_cpus)
        t = (size_t)cfq_xla_cpus;
    return t < 1 ? 1 : (int)t;
}

static cfq_exec cfq_xla_exec(size_t n)
{
    cfq_exec ex;
    ex.isa = CFQ_ISA_AUTO;
    ex.threads = cfq_xla_auto_threads(n);
    return ex;
}

/* ---- Result buffers: huge pages ------------------------------------------
 * XLA on the CPU hands each call fresh result buffers, which the kernel then
 * faults in 4 KiB at a time: at 16M elements (64 MiB) that cost 25 ms here
 * against 5 ms for the gradient itself (jit(grad) 35 ms; cfq's NumPy API,
 * whose NumPy allocations ask for huge pages, 9 ms).  So, as NumPy does for
 * arrays of 4 MiB and more, ask Linux for transparent huge pages on the
 * result (a hint: no effect on the values, nor where THP is off). */
#define CFQ_XLA_HUGEPAGE_MIN ((size_t)4 << 20)

static void cfq_xla_advise_hugepages(void *data, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    static size_t page;
    uintptr_t lo, hi;
    if (data == NULL || bytes < CFQ_XLA_HUGEPAGE_MIN)
        return;
    if (page == 0) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (size_t)p : 4096;
    }
    lo = ((uintptr_t)data + page - 1) & ~(uintptr_t)(page - 1);
    hi = ((uintptr_t)data + bytes) & ~(uintptr_t)(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, (size_t)(hi - lo), MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
#endif
}

/* ---- Errors -------------------------------------------------------------- */

/* A handler's context: the frame and whether errors can be created. */
typedef struct cfq_xla_ctx {
    cfq_xla_call_frame *frame;
    const char *op;
} cfq_xla_ctx;

static cfq_xla_error *cfq_xla_fail(const cfq_xla_ctx *c, int errc, const char *fmt, ...)
{
    char msg[512];
    int len;
    va_list ap;
    cfq_xla_error_create_args args;
    len = snprintf(msg, sizeof msg, "cfq %s: ", c->op);
    if (len < 0 || (size_t)len >= sizeof msg)
        len = 0;
    va_start(ap, fmt);
    vsnprintf(msg + len, sizeof msg - (size_t)len, fmt, ap);
    va_end(ap);
    memset(&args, 0, sizeof args);
    args.struct_size = CFQ_XLA_ERROR_CREATE_ARGS_SIZE;
    args.extension_start = NULL;
    args.message = msg; /* XLA copies it into its status */
    args.errc = errc;
    return c->frame->api->error_create(&args);
}

static cfq_xla_error *cfq_xla_rc(const cfq_xla_ctx *c, int rc, int batched, size_t example)
{
    const int errc = rc == CFQ_ENOMEM ? CFQ_XLA_ERROR_RESOURCE_EXHAUSTED
                     : rc == CFQ_ENULL ? CFQ_XLA_ERROR_INTERNAL
                                       : CFQ_XLA_ERROR_INVALID_ARGUMENT;
    if (batched)
        return cfq_xla_fail(c, errc, "%s (batch element %lu)", cfq_strerror(rc),
                            (unsigned long)example);
    return cfq_xla_fail(c, errc, "%s", cfq_strerror(rc));
}

/* ---- The call frame: probe, versions, sizes ------------------------------- */

/* Answers the metadata probe XLA sends at registration: the API version of
 * cfq_xla_ffi.h, no traits.  When the probe's structs are too small and no
 * error can be created (XLA may pass no API table in the probe), nothing is
 * written: XLA then reads version 0.0 and refuses the registration itself. */
static cfq_xla_error *cfq_xla_probe(cfq_xla_ctx *c, int can_report)
{
    cfq_xla_metadata_extension *ext = (cfq_xla_metadata_extension *)c->frame->extension_start;
    cfq_xla_metadata *md;
    if (ext->extension_base.struct_size < CFQ_XLA_METADATA_EXTENSION_SIZE || ext->metadata == NULL ||
        ext->metadata->struct_size < CFQ_XLA_METADATA_SIZE) {
        if (!can_report)
            return NULL;
        return cfq_xla_fail(c, CFQ_XLA_ERROR_FAILED_PRECONDITION,
                            "XLA's metadata probe has structs smaller than cfq's XLA FFI %d.%d "
                            "declarations (extension %lu bytes, need %lu)",
                            CFQ_XLA_FFI_API_MAJOR, CFQ_XLA_FFI_API_MINOR,
                            (unsigned long)ext->extension_base.struct_size,
                            (unsigned long)CFQ_XLA_METADATA_EXTENSION_SIZE);
    }
    md = ext->metadata;
    md->api_version.struct_size = CFQ_XLA_API_VERSION_SIZE;
    md->api_version.extension_start = NULL;
    md->api_version.major_version = CFQ_XLA_FFI_API_MAJOR;
    md->api_version.minor_version = CFQ_XLA_FFI_API_MINOR;
    md->traits = 0;
    return NULL;
}

/* Checks a struct's size; the message names the struct. */
static cfq_xla_error *cfq_xla_size(const cfq_xla_ctx *c, const char *name, size_t got, size_t need)
{
    if (got >= need)
        return NULL;
    return cfq_xla_fail(c, CFQ_XLA_ERROR_FAILED_PRECONDITION,
                        "XLA passed a %s of %lu bytes, cfq's XLA FFI %d.%d declaration needs "
                        "at least %lu: jaxlib and cfq disagree on the FFI ABI",
                        name, (unsigned long)got, CFQ_XLA_FFI_API_MAJOR, CFQ_XLA_FFI_API_MINOR,
                        (unsigned long)need);
}

/* Called first by every handler.  Returns an error, or NULL with *go set
 * when the frame is an execution call cfq may decode. */
static cfq_xla_error *cfq_xla_enter(cfq_xla_ctx *c, cfq_xla_call_frame *frame, const char *op,
                                    int *go)
{
    const cfq_xla_api *api;
    int can_report;
    cfq_xla_error *err;
    *go = 0;
    c->frame = frame;
    c->op = op;
    /* Without a frame that reaches its api member there is no one to answer. */
    if (frame == NULL || frame->struct_size < CFQ_XLA_SIZE_UPTO(cfq_xla_call_frame, api))
        return NULL;
    api = frame->api;
    can_report = api != NULL && api->struct_size >= CFQ_XLA_API_SIZE && api->error_create != NULL;
    if (frame->extension_start != NULL &&
        frame->extension_start->struct_size >= CFQ_XLA_SIZE_UPTO(cfq_xla_extension, type) &&
        frame->extension_start->type == CFQ_XLA_EXTENSION_METADATA)
        return cfq_xla_probe(c, can_report);
    if (!can_report)
        return NULL; /* an execution frame without an API table: XLA never sends one */
    if (api->api_version.major_version != CFQ_XLA_FFI_API_MAJOR)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_FAILED_PRECONDITION,
                            "XLA FFI API version %d.%d is not supported (cfq's handlers are "
                            "written for %d.x)",
                            api->api_version.major_version, api->api_version.minor_version,
                            CFQ_XLA_FFI_API_MAJOR);
    if ((err = cfq_xla_size(c, "XLA_FFI_CallFrame", frame->struct_size, CFQ_XLA_CALL_FRAME_SIZE)))
        return err;
    if (frame->stage != CFQ_XLA_STAGE_EXECUTE)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                            "called for execution stage %d; cfq registers an execute handler only",
                            frame->stage);
    if ((err = cfq_xla_size(c, "XLA_FFI_Args", frame->args.struct_size, CFQ_XLA_ARGS_SIZE)) ||
        (err = cfq_xla_size(c, "XLA_FFI_Rets", frame->rets.struct_size, CFQ_XLA_RETS_SIZE)) ||
        (err = cfq_xla_size(c, "XLA_FFI_Attrs", frame->attrs.struct_size, CFQ_XLA_ATTRS_SIZE)))
        return err;
    *go = 1;
    return NULL;
}

/* ---- Buffers -------------------------------------------------------------- */

/* What an operand holds, which decides the dtypes it may have. */
typedef enum cfq_xla_kind {
    CFQ_XLA_ELEMENTS, /* gradients, inputs, element results: f32, f16 or bf16, one for all */
    CFQ_XLA_RANGE     /* min, max and their sums: f32 */
} cfq_xla_kind;

typedef struct cfq_xla_array {
    void *data;
    int dtype; /* XLA's */
    size_t elsize;
    int rank;
    const int64_t *dims;
    size_t count;
} cfq_xla_array;

/* cfq's dtype (CFQ_FLOAT32, ...) of an XLA element dtype, else -1. */
static int cfq_xla_element_dtype(int xla_dtype)
{
    switch (xla_dtype) {
    case CFQ_XLA_DTYPE_F32:
        return CFQ_FLOAT32;
    case CFQ_XLA_DTYPE_F16:
        return CFQ_FLOAT16;
    case CFQ_XLA_DTYPE_BF16:
        return CFQ_BFLOAT16;
    default:
        return -1;
    }
}

static cfq_xla_error *cfq_xla_decode(const cfq_xla_ctx *c, int tag, int want_tag, void *ptr,
                                     const char *what, cfq_xla_kind kind, cfq_xla_array *a)
{
    const cfq_xla_buffer *b = (const cfq_xla_buffer *)ptr;
    size_t count = 1, elsize;
    int64_t i;
    cfq_xla_error *err;
    if (tag != want_tag || b == NULL)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "%s must be a buffer", what);
    if ((err = cfq_xla_size(c, "XLA_FFI_Buffer", b->struct_size, CFQ_XLA_BUFFER_SIZE)))
        return err;
    if (kind == CFQ_XLA_ELEMENTS) {
        if (cfq_xla_element_dtype(b->dtype) < 0)
            return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                                "%s must be float32, float16 or bfloat16 (XLA dtype %d, %d or %d), "
                                "got XLA dtype %d", what, CFQ_XLA_DTYPE_F32, CFQ_XLA_DTYPE_F16,
                                CFQ_XLA_DTYPE_BF16, b->dtype);
        elsize = b->dtype == CFQ_XLA_DTYPE_F32 ? 4 : 2;
    } else {
        if (b->dtype != CFQ_XLA_DTYPE_F32)
            return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                                "%s must be float32 (XLA dtype %d), got XLA dtype %d", what,
                                CFQ_XLA_DTYPE_F32, b->dtype);
        elsize = 4;
    }
    if (b->rank < 0 || b->rank > CFQ_XLA_MAX_RANK || (b->rank > 0 && b->dims == NULL))
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "%s has an invalid rank %ld", what,
                            (long)b->rank);
    for (i = 0; i < b->rank; i++) {
        if (b->dims[i] < 0)
            return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "%s has a negative dimension",
                                what);
        if (b->dims[i] > 0 && count > SIZE_MAX / sizeof(float) / (size_t)b->dims[i])
            return cfq_xla_rc(c, CFQ_ESHAPE, 0, 0);
        count *= (size_t)b->dims[i];
    }
    if (count > 0 && b->data == NULL)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "%s has no data", what);
    a->data = b->data;
    a->dtype = b->dtype;
    a->elsize = elsize;
    a->rank = (int)b->rank;
    a->dims = b->dims;
    a->count = count;
    return NULL;
}

/* An op's operands and results: names and kinds, in order. */
typedef struct cfq_xla_signature {
    int nargs, nrets;
    const char *const *arg_names, *const *ret_names;
    const cfq_xla_kind *arg_kinds, *ret_kinds;
} cfq_xla_signature;

/* Decodes every operand and result; *dtype is cfq's dtype of the element
 * operands and results, which must all have one XLA dtype (the kernels read
 * and write one type). */
static cfq_xla_error *cfq_xla_operands(const cfq_xla_ctx *c, const cfq_xla_signature *s,
                                       cfq_xla_array *args, cfq_xla_array *rets, int *dtype)
{
    const cfq_xla_call_frame *f = c->frame;
    const char *first = NULL;
    int first_dtype = 0;
    cfq_xla_error *err;
    int i;
    if (f->args.size != s->nargs || (s->nargs > 0 && (f->args.types == NULL || f->args.args == NULL)))
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "expected %d operands, got %ld",
                            s->nargs, (long)f->args.size);
    if (f->rets.size != s->nrets || f->rets.types == NULL || f->rets.rets == NULL)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "expected %d results, got %ld",
                            s->nrets, (long)f->rets.size);
    for (i = 0; i < s->nargs + s->nrets; i++) {
        const int is_arg = i < s->nargs, j = is_arg ? i : i - s->nargs;
        const char *name = is_arg ? s->arg_names[j] : s->ret_names[j];
        const cfq_xla_kind kind = is_arg ? s->arg_kinds[j] : s->ret_kinds[j];
        cfq_xla_array *a = is_arg ? &args[j] : &rets[j];
        if ((err = cfq_xla_decode(c, is_arg ? f->args.types[j] : f->rets.types[j],
                                  is_arg ? CFQ_XLA_ARG_BUFFER : CFQ_XLA_RET_BUFFER,
                                  is_arg ? f->args.args[j] : f->rets.rets[j], name, kind, a)))
            return err;
        if (kind != CFQ_XLA_ELEMENTS)
            continue;
        if (first == NULL) {
            first = name;
            first_dtype = a->dtype;
        } else if (a->dtype != first_dtype) {
            return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                                "%s has XLA dtype %d but %s has XLA dtype %d: the element operands "
                                "and results must have one dtype", name, a->dtype, first,
                                first_dtype);
        }
    }
    *dtype = cfq_xla_element_dtype(first_dtype);
    for (i = 0; i < s->nrets; i++)
        cfq_xla_advise_hugepages(rets[i].data, rets[i].count * rets[i].elsize);
    return NULL;
}

/* ---- Attributes ------------------------------------------------------------ */

static const cfq_xla_scalar *cfq_xla_find_attr(const cfq_xla_ctx *c, const char *name,
                                               cfq_xla_error **err)
{
    const cfq_xla_attrs *a = &c->frame->attrs;
    const size_t len = strlen(name);
    int64_t i;
    *err = NULL;
    if (a->size > 0 && (a->types == NULL || a->names == NULL || a->attrs == NULL)) {
        *err = cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "malformed attributes");
        return NULL;
    }
    for (i = 0; i < a->size; i++) {
        const cfq_xla_bytespan *s = a->names[i];
        if (s == NULL || s->len != len || (len > 0 && (s->ptr == NULL || memcmp(s->ptr, name, len))))
            continue;
        if (a->types[i] != CFQ_XLA_ATTR_SCALAR || a->attrs[i] == NULL ||
            ((const cfq_xla_scalar *)a->attrs[i])->value == NULL)
            break;
        return (const cfq_xla_scalar *)a->attrs[i];
    }
    *err = cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "needs a scalar attribute %s", name);
    return NULL;
}

static cfq_xla_error *cfq_xla_attr_int(const cfq_xla_ctx *c, const char *name, int64_t *out)
{
    cfq_xla_error *err;
    const cfq_xla_scalar *s = cfq_xla_find_attr(c, name, &err);
    if (s == NULL)
        return err;
    if (s->dtype == CFQ_XLA_DTYPE_S32) {
        int32_t v;
        memcpy(&v, s->value, sizeof v);
        *out = v;
    } else if (s->dtype == CFQ_XLA_DTYPE_S64) {
        memcpy(out, s->value, sizeof *out);
    } else {
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                            "attribute %s must be an int32 or int64, got XLA dtype %d", name,
                            s->dtype);
    }
    return NULL;
}

static cfq_xla_error *cfq_xla_attr_bool(const cfq_xla_ctx *c, const char *name, int *out)
{
    cfq_xla_error *err;
    const cfq_xla_scalar *s = cfq_xla_find_attr(c, name, &err);
    unsigned char v;
    if (s == NULL)
        return err;
    if (s->dtype != CFQ_XLA_DTYPE_PRED)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                            "attribute %s must be a bool (pred), got XLA dtype %d", name, s->dtype);
    memcpy(&v, s->value, 1);
    *out = v != 0;
    return NULL;
}

static cfq_xla_error *cfq_xla_attr_float(const cfq_xla_ctx *c, const char *name, float *out)
{
    cfq_xla_error *err;
    const cfq_xla_scalar *s = cfq_xla_find_attr(c, name, &err);
    if (s == NULL)
        return err;
    if (s->dtype != CFQ_XLA_DTYPE_F32)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                            "attribute %s must be a float32, got XLA dtype %d", name, s->dtype);
    memcpy(out, s->value, sizeof *out);
    return NULL;
}

/* num_bits and narrow_range, which every op takes, and the attribute count. */
static cfq_xla_error *cfq_xla_quant_attrs(const cfq_xla_ctx *c, int expected, int *num_bits,
                                          int *narrow_range)
{
    int64_t bits = 0;
    cfq_xla_error *err;
    if (c->frame->attrs.size != expected)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "expected %d attributes, got %ld",
                            expected, (long)c->frame->attrs.size);
    if ((err = cfq_xla_attr_int(c, "num_bits", &bits)) ||
        (err = cfq_xla_attr_bool(c, "narrow_range", narrow_range)))
        return err;
    /* cfq checks 2..16 itself; this only keeps the value an int. */
    *num_bits = bits < INT_MIN ? INT_MIN : bits > INT_MAX ? INT_MAX : (int)bits;
    return NULL;
}

/* ---- Batch layout ------------------------------------------------------------
 * The results' first k axes are batch axes B[0..k); an operand's first k
 * axes are each 1 (shared) or B[i].  `strides` give each operand's element
 * step per batch axis (0 where it is shared).  Axes j..k-1 over which every
 * range operand (min, max) is shared and every data operand is not form the
 * inner block of E examples that one cfq call covers. */

typedef struct cfq_xla_batch {
    int k, j;
    const int64_t *B;
    size_t outer, E;
} cfq_xla_batch;

/* Element strides of `a`'s first k axes (0 for a shared axis), checking each
 * is 1 or B[i] and that its trailing axes (from axis k) are `core` (rank
 * core_rank) when core is not NULL. */
static cfq_xla_error *cfq_xla_batch_strides(const cfq_xla_ctx *c, const cfq_xla_array *a,
                                            const char *what, const int64_t *B, int k,
                                            const int64_t *core, int core_rank, size_t *strides)
{
    size_t step = 1;
    int i;
    if (a->rank != k + core_rank)
        return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "%s has rank %d, expected %d", what,
                            a->rank, k + core_rank);
    for (i = a->rank - 1; i >= 0; i--) {
        const int64_t d = a->dims[i];
        if (i >= k) {
            if (core != NULL && d != core[i - k])
                return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                                    "%s has dimension %ld at axis %d, expected %ld", what,
                                    (long)d, i, (long)core[i - k]);
        } else {
            if (d != 1 && d != B[i])
                return cfq_xla_fail(c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                                    "%s has batch dimension %ld at axis %d, expected 1 or %ld",
                                    what, (long)d, i, (long)B[i]);
            strides[i] = d == 1 ? 0 : step;
        }
        step *= (size_t)d; /* no overflow: the buffer's count was checked */
    }
    return NULL;
}

/* The inner block: the trailing batch axes where data operands are full and
 * range operands shared.  data_strides/range_strides: nd and nr operands'
 * strides, k each. */
static void cfq_xla_batch_split(cfq_xla_batch *bt, const int64_t *B, int k, size_t (*data)[CFQ_XLA_MAX_RANK],
                                int nd, size_t (*range)[CFQ_XLA_MAX_RANK], int nr)
{
    int i, o, ok;
    bt->k = k;
    bt->B = B;
    bt->j = k;
    while (bt->j > 0) {
        i = bt->j - 1;
        ok = 1;
        for (o = 0; o < nd; o++)
            ok &= data[o][i] != 0 || B[i] == 1;
        for (o = 0; o < nr; o++)
            ok &= range[o][i] == 0;
        if (!ok)
            break;
        bt->j--;
    }
    bt->outer = 1;
    bt->E = 1;
    for (i = 0; i < k; i++) {
        if (i < bt->j)
            bt->outer *= (size_t)B[i];
        else
            bt->E *= (size_t)B[i];
    }
}

/* Element `off` of a buffer, where an empty buffer may have no data (NULL +
 * 0 is not C). */
static void *cfq_xla_at(const cfq_xla_array *a, size_t off)
{
    return a->data != NULL ? (char *)a->data + off * a->elsize : NULL;
}

/* Offset of outer example `index` in an operand with the given strides. */
static size_t cfq_xla_offset(const cfq_xla_batch *bt, size_t index, const size_t *strides)
{
    size_t off = 0;
    int i;
    for (i = bt->j - 1; i >= 0; i--) {
        const size_t d = (size_t)bt->B[i];
        off += (index % d) * strides[i];
        index /= d;
    }
    return off;
}

/* ---- The ops ---------------------------------------------------------------- */

#define E_ CFQ_XLA_ELEMENTS
#define R_ CFQ_XLA_RANGE
static const char *const cfq_xla_fwd_args[] = {"inputs", "min", "max"};
static const char *const cfq_xla_grad_args[] = {"gradients", "inputs", "min", "max"};
static const char *const cfq_xla_fwd_rets[] = {"outputs"};
static const char *const cfq_xla_grad_rets[] = {"backprops_wrt_input", "backprop_wrt_min",
                                                "backprop_wrt_max"};
static const char *const cfq_xla_args_grad_rets[] = {"backprops"};
static const cfq_xla_kind cfq_xla_fwd_kinds[] = {E_, R_, R_};
static const cfq_xla_kind cfq_xla_grad_kinds[] = {E_, E_, R_, R_};
static const cfq_xla_kind cfq_xla_ret_kinds[] = {E_, R_, R_};
#undef E_
#undef R_

/* Operands and results of the vars and per-channel ops: forward, gradient. */
static const cfq_xla_signature cfq_xla_range_signatures[] = {
    {3, 1, cfq_xla_fwd_args, cfq_xla_fwd_rets, cfq_xla_fwd_kinds, cfq_xla_ret_kinds},
    {4, 3, cfq_xla_grad_args, cfq_xla_grad_rets, cfq_xla_grad_kinds, cfq_xla_ret_kinds},
};

/* The args ops' (min and max are attributes). */
static const cfq_xla_signature cfq_xla_args_signatures[] = {
    {1, 1, cfq_xla_fwd_args, cfq_xla_fwd_rets, cfq_xla_fwd_kinds, cfq_xla_ret_kinds},
    {2, 1, cfq_xla_grad_args, cfq_xla_args_grad_rets, cfq_xla_grad_kinds, cfq_xla_ret_kinds},
};

/* The vars and per-channel ops.  min and max are of rank k (per channel k
 * + 1, the last axis their channels), the sums likewise; gradients, inputs
 * and element results of rank k + the op's rank.  Per channel, `axis`
 * counts in the un-batched inputs, so the channel axis of the element
 * buffers is k + axis. */
static cfq_xla_error *cfq_xla_range_op(cfq_xla_call_frame *frame, int grad, int per_channel,
                                       const char *op)
{
    const cfq_xla_signature *sig = &cfq_xla_range_signatures[grad];
    const int nd = grad ? 2 : 1;           /* element operands before min, max */
    const int crank = per_channel ? 1 : 0; /* rank of min, max and the sums, un-batched */
    size_t ds[2][CFQ_XLA_MAX_RANK], rs[2][CFQ_XLA_MAX_RANK], os[CFQ_XLA_MAX_RANK];
    cfq_xla_array a[4], r[3];
    cfq_xla_ctx c;
    cfq_xla_batch bt;
    cfq_xla_error *err;
    float *scratch = NULL;
    int go, dtype = CFQ_FLOAT32, bits = 0, narrow = 0, k, core_rank, o, rc = CFQ_OK;
    int64_t axis = 0, C = 1;
    size_t n = 1, core_outer = 1, core_inner = 1, idx;
    err = cfq_xla_enter(&c, frame, op, &go);
    if (err != NULL || !go)
        return err;
    if ((err = cfq_xla_operands(&c, sig, a, r, &dtype)) ||
        (err = cfq_xla_quant_attrs(&c, per_channel ? 3 : 2, &bits, &narrow)) ||
        (per_channel && (err = cfq_xla_attr_int(&c, "axis", &axis))))
        return err;
    k = a[nd].rank - crank;
    if (k < 0)
        return cfq_xla_fail(&c, CFQ_XLA_ERROR_INVALID_ARGUMENT, "min must have a channel axis");
    if (per_channel)
        C = a[nd].dims[k];
    core_rank = r[0].rank - k;
    if (core_rank < 0)
        return cfq_xla_fail(&c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                            "min has rank %d, more than the outputs' %d", k, r[0].rank);
    if (per_channel && (core_rank < 1 || axis < 0 || axis >= core_rank || r[0].dims[k + axis] != C))
        return cfq_xla_fail(&c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                            "axis %ld does not name a channel axis of %ld channels", (long)axis,
                            (long)C);
    for (o = 0; o < nd; o++)
        if ((err = cfq_xla_batch_strides(&c, &a[o], sig->arg_names[o], r[0].dims, k,
                                         r[0].dims + k, core_rank, ds[o])))
            return err;
    if ((err = cfq_xla_batch_strides(&c, &a[nd], "min", r[0].dims, k, &C, crank, rs[0])) ||
        (err = cfq_xla_batch_strides(&c, &a[nd + 1], "max", r[0].dims, k, &C, crank, rs[1])) ||
        (err = cfq_xla_batch_strides(&c, &r[0], sig->ret_names[0], r[0].dims, k, NULL, core_rank,
                                     os)))
        return err;
    if (grad) {
        size_t ms[CFQ_XLA_MAX_RANK];
        int i;
        for (o = 1; o < 3; o++) {
            if ((err = cfq_xla_batch_strides(&c, &r[o], sig->ret_names[o], r[0].dims, k, &C, crank,
                                             ms)))
                return err;
            for (i = 0; i < k; i++)
                if (r[o].dims[i] != r[0].dims[i])
                    return cfq_xla_fail(&c, CFQ_XLA_ERROR_INVALID_ARGUMENT,
                                        "%s must have the batch shape of the outputs",
                                        sig->ret_names[o]);
        }
    }
    for (o = k; o < r[0].rank; o++) {
        n *= (size_t)r[0].dims[o];
        if (o < k + axis)
            core_outer *= (size_t)r[0].dims[o];
        else if (o > k + axis)
            core_inner *= (size_t)r[0].dims[o];
    }
    cfq_xla_batch_split(&bt, r[0].dims, k, ds, nd, rs, 2);
    if (grad && !per_channel && bt.E > 1) {
        /* min and max repeated per example, for the per-channel gradient */
        scratch = (float *)malloc(2 * bt.E * sizeof(float));
        if (scratch == NULL)
            return cfq_xla_rc(&c, CFQ_ENOMEM, 0, 0);
    }
    for (idx = 0; idx < bt.outer && rc == CFQ_OK; idx++) {
        const void *x = cfq_xla_at(&a[nd - 1], cfq_xla_offset(&bt, idx, ds[nd - 1]));
        const void *g = grad ? cfq_xla_at(&a[0], cfq_xla_offset(&bt, idx, ds[0])) : NULL;
        const float *lo = (const float *)cfq_xla_at(&a[nd], cfq_xla_offset(&bt, idx, rs[0]));
        const float *hi = (const float *)cfq_xla_at(&a[nd + 1], cfq_xla_offset(&bt, idx, rs[1]));
        void *out = cfq_xla_at(&r[0], cfq_xla_offset(&bt, idx, os));
        float *dmin = grad ? (float *)r[1].data + idx * bt.E * (size_t)C : NULL;
        float *dmax = grad ? (float *)r[2].data + idx * bt.E * (size_t)C : NULL;
        const size_t total = bt.E * n;
        if (!grad) {
            /* Shared min/max: the inner examples are more elements (per
             * channel: more outer slices). */
            cfq_exec ex = cfq_xla_exec(total);
            rc = per_channel ? cfq_fq_per_channel_typed(dtype, x, bt.E * core_outer, (size_t)C,
                                                        core_inner, lo, hi, bits, narrow, out, &ex)
                             : cfq_fq_vars_typed(dtype, x, total, *lo, *hi, bits, narrow, out, &ex);
            if (rc != CFQ_OK)
                err = cfq_xla_rc(&c, rc, k > 0, idx * bt.E);
        } else if (!per_channel) {
            cfq_exec ex = cfq_xla_exec(total);
            if (bt.E == 1) {
                rc = cfq_fq_vars_grad_typed(dtype, g, x, n, *lo, *hi, bits, narrow, out, dmin, dmax,
                                            &ex);
            } else {
                /* Per-example sums: the examples as the channels of one
                 * call, whose per-channel sums are the scalar gradient's
                 * bits. */
                size_t e;
                for (e = 0; e < bt.E; e++) {
                    scratch[e] = *lo;
                    scratch[bt.E + e] = *hi;
                }
                rc = cfq_fq_per_channel_grad_typed(dtype, g, x, 1, bt.E, n, scratch, scratch + bt.E,
                                                   bits, narrow, out, dmin, dmax, &ex);
            }
            if (rc != CFQ_OK)
                err = cfq_xla_rc(&c, rc, k > 0, idx * bt.E);
        } else {
            /* Per-channel sums per example: one call per example. */
            cfq_exec ex = cfq_xla_exec(n);
            const size_t step = n * r[0].elsize; /* bytes per example, one dtype for all */
            size_t e;
            for (e = 0; e < bt.E && rc == CFQ_OK; e++) {
                rc = cfq_fq_per_channel_grad_typed(
                    dtype, g != NULL ? (const char *)g + e * step : NULL,
                    x != NULL ? (const char *)x + e * step : NULL, core_outer, (size_t)C,
                    core_inner, lo, hi, bits, narrow, out != NULL ? (char *)out + e * step : NULL,
                    dmin + e * (size_t)C, dmax + e * (size_t)C, &ex);
                if (rc != CFQ_OK)
                    err = cfq_xla_rc(&c, rc, k > 0, idx * bt.E + e);
            }
        }
    }
    free(scratch);
    return err;
}

cfq_xla_error *cfq_xla_fq_vars(cfq_xla_call_frame *frame)
{
    return cfq_xla_range_op(frame, 0, 0, "fake_quant_with_min_max_vars");
}

cfq_xla_error *cfq_xla_fq_vars_grad(cfq_xla_call_frame *frame)
{
    return cfq_xla_range_op(frame, 1, 0, "fake_quant_with_min_max_vars_gradient");
}

cfq_xla_error *cfq_xla_fq_per_channel(cfq_xla_call_frame *frame)
{
    return cfq_xla_range_op(frame, 0, 1, "fake_quant_with_min_max_vars_per_channel");
}

cfq_xla_error *cfq_xla_fq_per_channel_grad(cfq_xla_call_frame *frame)
{
    return cfq_xla_range_op(frame, 1, 1, "fake_quant_with_min_max_vars_per_channel_gradient");
}

/* Args ops: min and max are attributes; every axis may be a batch axis. */
static cfq_xla_error *cfq_xla_args_op(cfq_xla_call_frame *frame, int grad)
{
    const cfq_xla_signature *sig = &cfq_xla_args_signatures[grad];
    const int nd = sig->nargs;
    size_t ds[2][CFQ_XLA_MAX_RANK], os[CFQ_XLA_MAX_RANK];
    cfq_xla_array a[2], r[1];
    cfq_xla_ctx c;
    cfq_xla_batch bt;
    cfq_xla_error *err;
    int go, dtype = CFQ_FLOAT32, bits = 0, narrow = 0, k, o, rc = CFQ_OK;
    float lo = 0.0f, hi = 0.0f;
    size_t idx;
    err = cfq_xla_enter(&c, frame, grad ? "fake_quant_with_min_max_args_gradient"
                                        : "fake_quant_with_min_max_args", &go);
    if (err != NULL || !go)
        return err;
    if ((err = cfq_xla_operands(&c, sig, a, r, &dtype)) ||
        (err = cfq_xla_quant_attrs(&c, 4, &bits, &narrow)) ||
        (err = cfq_xla_attr_float(&c, "min", &lo)) || (err = cfq_xla_attr_float(&c, "max", &hi)))
        return err;
    k = r[0].rank;
    for (o = 0; o < nd; o++)
        if ((err = cfq_xla_batch_strides(&c, &a[o], sig->arg_names[o], r[0].dims, k, NULL, 0,
                                         ds[o])))
            return err;
    if ((err = cfq_xla_batch_strides(&c, &r[0], sig->ret_names[0], r[0].dims, k, NULL, 0, os)))
        return err;
    cfq_xla_batch_split(&bt, r[0].dims, k, ds, nd, NULL, 0);
    for (idx = 0; idx < bt.outer && rc == CFQ_OK; idx++) {
        const void *x = cfq_xla_at(&a[nd - 1], cfq_xla_offset(&bt, idx, ds[nd - 1]));
        void *out = cfq_xla_at(&r[0], cfq_xla_offset(&bt, idx, os));
        cfq_exec ex = cfq_xla_exec(bt.E);
        if (grad)
            rc = cfq_fq_args_grad_typed(dtype, cfq_xla_at(&a[0], cfq_xla_offset(&bt, idx, ds[0])), x,
                                        bt.E, lo, hi, bits, narrow, out, &ex);
        else
            rc = cfq_fq_args_typed(dtype, x, bt.E, lo, hi, bits, narrow, out, &ex);
        if (rc != CFQ_OK)
            err = cfq_xla_rc(&c, rc, 0, 0);
    }
    return err;
}

cfq_xla_error *cfq_xla_fq_args(cfq_xla_call_frame *frame) { return cfq_xla_args_op(frame, 0); }

cfq_xla_error *cfq_xla_fq_args_grad(cfq_xla_call_frame *frame) { return cfq_xla_args_op(frame, 1); }
