/*
 * cfq.h -- public C API of cfq, TensorFlow-exact fake quantization.
 *
 * Every entry point checks its own arguments and returns CFQ_OK (0) or a
 * negative CFQ_E* code; cfq_strerror() names it.  The core never aborts,
 * prints or allocates on the hot path.  Arrays are contiguous, indexed with
 * size_t; float32, or float16 / bfloat16 through the _typed entry points.
 * Arithmetic follows TensorFlow 2.21 on the CPU bit for bit: float32, no
 * FMA, denormals flushed to zero (inputs and results).
 */
#ifndef CFQ_H
#define CFQ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version, written here only (setup.py reads it; cfq.__version__ is
 * cfq_version()). */
#define CFQ_VERSION_MAJOR 0
#define CFQ_VERSION_MINOR 1
#define CFQ_VERSION_PATCH 0
#define CFQ_STR_(x) #x
#define CFQ_STR(x) CFQ_STR_(x)
#define CFQ_VERSION_STRING \
    CFQ_STR(CFQ_VERSION_MAJOR) "." CFQ_STR(CFQ_VERSION_MINOR) "." CFQ_STR(CFQ_VERSION_PATCH)

/* Error codes. */
#define CFQ_OK 0
#define CFQ_ENULL (-1)           /* a required pointer is NULL */
#define CFQ_ENUMBITS (-2)        /* num_bits outside 2..16 */
#define CFQ_ENONFINITE (-3)      /* min or max is NaN or +-Inf */
#define CFQ_EMINMAX (-4)         /* args ops: min >= max */
#define CFQ_EISA_UNKNOWN (-5)    /* ISA id or name not known */
#define CFQ_EISA_UNAVAILABLE (-6) /* ISA known, but not compiled in or not runnable on this CPU */
#define CFQ_ETHREADS (-7)        /* thread count out of range */
#define CFQ_ENOMEM (-8)          /* a threaded call could not allocate its partial sums */
#define CFQ_ESHAPE (-9)          /* sizes that overflow */
#define CFQ_EREGION (-10)        /* a region array holds a byte that is no region code */
#define CFQ_EDTYPE (-11)         /* dtype is not one of CFQ_FLOAT32, CFQ_FLOAT16, CFQ_BFLOAT16 */

/*
 * Element types of the _typed entry points; their arrays are `void *`:
 * float for CFQ_FLOAT32, the 16-bit patterns (uint16_t) for the others.
 * Every element is converted to float32 exactly, computed as the float32 op
 * computes it, and its result rounded back to the dtype to nearest even, as
 * NumPy (float16) and ml_dtypes (bfloat16) convert: each element output is
 * cast(op_float32(upcast(x)), dtype).  So a float16 subnormal input is its
 * (normal) float32 value, not flushed, and a result in float16's subnormal
 * range is a float16 subnormal; bfloat16 shares float32's exponents, so its
 * subnormals are flushed as float32's are.  NaN outputs: float16 keeps the
 * top payload bits, bfloat16 is the quiet NaN 0x7fc0 with the sign.  The
 * min/max sums and min/max themselves stay float32.  Pass-through (min ==
 * max == 0) copies the gradients' bits, in any dtype.
 */
#define CFQ_FLOAT32 0
#define CFQ_FLOAT16 1
#define CFQ_BFLOAT16 2

/* Region codes of cfq_fq_vars_and_region(), one uint8 per element. */
#define CFQ_REGION_INSIDE 0 /* nudged_min <= x <= nudged_max */
#define CFQ_REGION_BELOW 1  /* x < nudged_min */
#define CFQ_REGION_ABOVE 2  /* x > nudged_max (BELOW | ABOVE when nudged_min > nudged_max) */
#define CFQ_REGION_NONE 4   /* no comparison holds: x is NaN */
#define CFQ_REGION_PASS 8   /* min == max == 0: the gradient passes through */

/* Instruction-set paths.  CFQ_ISA_AUTO means "the active path". */
#define CFQ_ISA_AUTO (-1)
#define CFQ_ISA_SCALAR 0
#define CFQ_ISA_AVX2 1
#define CFQ_ISA_AVX512 2
#define CFQ_ISA_NEON 3
#define CFQ_ISA_COUNT 4

/* Per-call execution options; pass NULL for {CFQ_ISA_AUTO, 1}. */
typedef struct cfq_exec {
    int isa;     /* CFQ_ISA_AUTO or a CFQ_ISA_* id that is available */
    int threads; /* 1 = the calling thread only; up to CFQ_MAX_THREADS */
} cfq_exec;

#define CFQ_MAX_THREADS 256

const char *cfq_strerror(int code);
const char *cfq_version(void);

/* The path used when cfq_exec.isa is CFQ_ISA_AUTO: the best one this CPU
 * runs, or the one named by the environment variable CFQ_ISA at first use. */
int cfq_active_isa(void);
/* Why CFQ_ISA was not honoured: CFQ_OK if unset or honoured, else
 * CFQ_EISA_UNKNOWN or CFQ_EISA_UNAVAILABLE (the best path is used instead). */
int cfq_isa_env_status(void);
/* 1 if the path is compiled in and this CPU and OS run it, else 0. */
int cfq_isa_available(int isa);
/* "scalar", "avx2", "avx512", "neon"; NULL for an unknown id. */
const char *cfq_isa_name(int isa);
/* The id for a name, or CFQ_EISA_UNKNOWN. */
int cfq_isa_from_name(const char *name);

/*
 * TensorFlow's nudge of [min, max] onto the quantization grid
 * (quant_min = narrow_range ? 1 : 0, quant_max = 2^num_bits - 1).
 */
int cfq_nudge(float min, float max, int num_bits, int narrow_range,
              float *nudged_min, float *nudged_max, float *scale);

/*
 * FakeQuantWithMinMaxVarsGradient.
 * backprops_wrt_input[i] = gradients[i] * (nudged_min <= inputs[i] <= nudged_max)
 * *backprop_wrt_min = sum(gradients * (inputs < nudged_min))
 * *backprop_wrt_max = sum(gradients * (inputs > nudged_max))
 * The sums are accumulated in double (plain within 256-element blocks,
 * compensated across them), in an order fixed by the element index alone:
 * identical on every ISA path and thread count.
 * backprops_wrt_input may be gradients or inputs (in place); no other overlap.
 * min or max NaN/Inf is CFQ_ENONFINITE (TensorFlow silently zeroes everything).
 */
int cfq_fq_vars_grad(const float *gradients, const float *inputs, size_t n,
                     float min, float max, int num_bits, int narrow_range,
                     float *backprops_wrt_input, float *backprop_wrt_min,
                     float *backprop_wrt_max, const cfq_exec *exec);

/*
 * FakeQuantWithMinMaxVars: outputs[i] =
 *   floor((clamp(x, nudged_min, nudged_max) - nudged_min) / scale - quant_zero + 0.5f) * scale
 * with quant_zero = floor(-nudged_min * inv_scale + 0.5f) and
 * inv_scale = (qmax - qmin) / (max - min).  min == max == 0 writes +0.0.
 */
int cfq_fq_vars(const float *inputs, size_t n, float min, float max, int num_bits,
                int narrow_range, float *outputs, const cfq_exec *exec);

/* FakeQuantWithMinMaxArgs: as cfq_fq_vars, but multiplying by inv_scale where
 * vars divides by scale (TF's args and per-channel ops do this); min must be
 * smaller than max (CFQ_EMINMAX), as TF requires. */
int cfq_fq_args(const float *inputs, size_t n, float min, float max, int num_bits,
                int narrow_range, float *outputs, const cfq_exec *exec);

/* FakeQuantWithMinMaxArgsGradient: backprops = gradients * inside. */
int cfq_fq_args_grad(const float *gradients, const float *inputs, size_t n, float min,
                     float max, int num_bits, int narrow_range, float *backprops,
                     const cfq_exec *exec);

/*
 * Per-channel ops on a C-contiguous array viewed as [outer, channels, inner]
 * (the channel axis anywhere: inner = 1 is TF's last axis).  min and max hold
 * `channels` values each; a channel with min == max == 0 gives +0.0 (forward)
 * or copies its gradients (gradient).  Every channel's min and max must be
 * finite (CFQ_ENONFINITE); nothing is written otherwise.
 */
int cfq_fq_per_channel(const float *inputs, size_t outer, size_t channels, size_t inner,
                       const float *min, const float *max, int num_bits, int narrow_range,
                       float *outputs, const cfq_exec *exec);

/* Per-channel gradient; backprop_wrt_min/max hold `channels` sums each, with
 * the same accuracy and determinism as cfq_fq_vars_grad's. */
int cfq_fq_per_channel_grad(const float *gradients, const float *inputs, size_t outer,
                            size_t channels, size_t inner, const float *min, const float *max,
                            int num_bits, int narrow_range, float *backprops_wrt_input,
                            float *backprop_wrt_min, float *backprop_wrt_max,
                            const cfq_exec *exec);

/*
 * The region-code backward path.  cfq_fq_vars_and_region() is cfq_fq_vars()
 * that also writes each element's region (CFQ_REGION_*); then
 * cfq_fq_region_grad() gives the bits cfq_fq_vars_grad() gives on the same
 * inputs and min/max, reading 1 byte per element instead of 4.
 */
int cfq_fq_vars_and_region(const float *inputs, size_t n, float min, float max, int num_bits,
                           int narrow_range, float *outputs, unsigned char *region,
                           const cfq_exec *exec);
int cfq_fq_region_grad(const float *gradients, const unsigned char *region, size_t n,
                       float *backprops_wrt_input, float *backprop_wrt_min,
                       float *backprop_wrt_max, const cfq_exec *exec);
/* cfq_fq_args() that also writes each element's region against the args
 * op's nudged range; cfq_fq_region_grad()'s backprops_wrt_input on those
 * codes are cfq_fq_args_grad()'s bits (its sums are then unused). */
int cfq_fq_args_and_region(const float *inputs, size_t n, float min, float max, int num_bits,
                           int narrow_range, float *outputs, unsigned char *region,
                           const cfq_exec *exec);

/*
 * Per-channel region codes: cfq_fq_per_channel() that also writes each
 * element's region against its channel's nudged range (CFQ_REGION_PASS for
 * a channel with min == max == 0); then cfq_fq_per_channel_region_grad()
 * gives cfq_fq_per_channel_grad()'s bits, `channels` sums each.
 */
int cfq_fq_per_channel_and_region(const float *inputs, size_t outer, size_t channels, size_t inner,
                                  const float *min, const float *max, int num_bits, int narrow_range,
                                  float *outputs, unsigned char *region, const cfq_exec *exec);
int cfq_fq_per_channel_region_grad(const float *gradients, const unsigned char *region,
                                   size_t outer, size_t channels, size_t inner,
                                   float *backprops_wrt_input, float *backprop_wrt_min,
                                   float *backprop_wrt_max, const cfq_exec *exec);

/*
 * The same ops on a dtype (CFQ_FLOAT32, CFQ_FLOAT16 or CFQ_BFLOAT16, else
 * CFQ_EDTYPE): gradients, inputs and element outputs all of that dtype;
 * min, max and the sums float32.  The functions above are these with
 * CFQ_FLOAT32.
 */
int cfq_fq_vars_grad_typed(int dtype, const void *gradients, const void *inputs, size_t n,
                           float min, float max, int num_bits, int narrow_range,
                           void *backprops_wrt_input, float *backprop_wrt_min,
                           float *backprop_wrt_max, const cfq_exec *exec);
int cfq_fq_vars_typed(int dtype, const void *inputs, size_t n, float min, float max,
                      int num_bits, int narrow_range, void *outputs, const cfq_exec *exec);
int cfq_fq_args_typed(int dtype, const void *inputs, size_t n, float min, float max,
                      int num_bits, int narrow_range, void *outputs, const cfq_exec *exec);
int cfq_fq_args_grad_typed(int dtype, const void *gradients, const void *inputs, size_t n,
                           float min, float max, int num_bits, int narrow_range, void *backprops,
                           const cfq_exec *exec);
int cfq_fq_per_channel_typed(int dtype, const void *inputs, size_t outer, size_t channels,
                             size_t inner, const float *min, const float *max, int num_bits,
                             int narrow_range, void *outputs, const cfq_exec *exec);
int cfq_fq_per_channel_grad_typed(int dtype, const void *gradients, const void *inputs,
                                  size_t outer, size_t channels, size_t inner, const float *min,
                                  const float *max, int num_bits, int narrow_range,
                                  void *backprops_wrt_input, float *backprop_wrt_min,
                                  float *backprop_wrt_max, const cfq_exec *exec);
int cfq_fq_vars_and_region_typed(int dtype, const void *inputs, size_t n, float min, float max,
                                 int num_bits, int narrow_range, void *outputs,
                                 unsigned char *region, const cfq_exec *exec);
int cfq_fq_region_grad_typed(int dtype, const void *gradients, const unsigned char *region,
                             size_t n, void *backprops_wrt_input, float *backprop_wrt_min,
                             float *backprop_wrt_max, const cfq_exec *exec);
int cfq_fq_args_and_region_typed(int dtype, const void *inputs, size_t n, float min, float max,
                                 int num_bits, int narrow_range, void *outputs,
                                 unsigned char *region, const cfq_exec *exec);
int cfq_fq_per_channel_and_region_typed(int dtype, const void *inputs, size_t outer,
                                        size_t channels, size_t inner, const float *min,
                                        const float *max, int num_bits, int narrow_range,
                                        void *outputs, unsigned char *region,
                                        const cfq_exec *exec);
int cfq_fq_per_channel_region_grad_typed(int dtype, const void *gradients,
                                         const unsigned char *region, size_t outer,
                                         size_t channels, size_t inner,
                                         void *backprops_wrt_input, float *backprop_wrt_min,
                                         float *backprop_wrt_max, const cfq_exec *exec);

/*
 * The function table other Python extensions use (see cfq_import.h): the
 * cfq Python module exports it as the PyCapsule cfq._core._C_API, so an
 * extension calls cfq's dispatched SIMD kernels without compiling or
 * linking any of them.  Entries are only ever appended, each addition
 * bumping CFQ_CAPI_VERSION (2: the per-channel and args region ops and the
 * _typed entry points); an existing entry never changes.  So a cfq whose table has
 * at least the version and size an extension was built against serves it.
 */
#define CFQ_CAPI_VERSION 2

typedef struct cfq_capi {
    unsigned abi_version; /* CFQ_CAPI_VERSION of the library */
    unsigned size;        /* sizeof(cfq_capi) of the library */
    const char *(*version)(void);
    const char *(*strerror)(int code);
    int (*active_isa)(void);
    int (*isa_available)(int isa);
    const char *(*isa_name)(int isa);
    int (*nudge)(float min, float max, int num_bits, int narrow_range, float *nudged_min,
                 float *nudged_max, float *scale);
    int (*fq_vars_grad)(const float *gradients, const float *inputs, size_t n, float min,
                        float max, int num_bits, int narrow_range, float *backprops_wrt_input,
                        float *backprop_wrt_min, float *backprop_wrt_max, const cfq_exec *exec);
    int (*fq_vars)(const float *inputs, size_t n, float min, float max, int num_bits,
                   int narrow_range, float *outputs, const cfq_exec *exec);
    int (*fq_args)(const float *inputs, size_t n, float min, float max, int num_bits,
                   int narrow_range, float *outputs, const cfq_exec *exec);
    int (*fq_args_grad)(const float *gradients, const float *inputs, size_t n, float min,
                        float max, int num_bits, int narrow_range, float *backprops,
                        const cfq_exec *exec);
    int (*fq_per_channel)(const float *inputs, size_t outer, size_t channels, size_t inner,
                          const float *min, const float *max, int num_bits, int narrow_range,
                          float *outputs, const cfq_exec *exec);
    int (*fq_per_channel_grad)(const float *gradients, const float *inputs, size_t outer,
                               size_t channels, size_t inner, const float *min,
                               const float *max, int num_bits, int narrow_range,
                               float *backprops_wrt_input, float *backprop_wrt_min,
                               float *backprop_wrt_max, const cfq_exec *exec);
    int (*fq_vars_and_region)(const float *inputs, size_t n, float min, float max,
                              int num_bits, int narrow_range, float *outputs,
                              unsigned char *region, const cfq_exec *exec);
    int (*fq_region_grad)(const float *gradients, const unsigned char *region, size_t n,
                          float *backprops_wrt_input, float *backprop_wrt_min,
                          float *backprop_wrt_max, const cfq_exec *exec);
    /* Version 2. */
    int (*fq_per_channel_and_region)(const float *inputs, size_t outer, size_t channels,
                                     size_t inner, const float *min, const float *max,
                                     int num_bits, int narrow_range, float *outputs,
                                     unsigned char *region, const cfq_exec *exec);
    int (*fq_per_channel_region_grad)(const float *gradients, const unsigned char *region,
                                      size_t outer, size_t channels, size_t inner,
                                      float *backprops_wrt_input, float *backprop_wrt_min,
                                      float *backprop_wrt_max, const cfq_exec *exec);
    int (*fq_vars_grad_typed)(int dtype, const void *gradients, const void *inputs, size_t n,
                              float min, float max, int num_bits, int narrow_range,
                              void *backprops_wrt_input, float *backprop_wrt_min,
                              float *backprop_wrt_max, const cfq_exec *exec);
    int (*fq_vars_typed)(int dtype, const void *inputs, size_t n, float min, float max,
                         int num_bits, int narrow_range, void *outputs, const cfq_exec *exec);
    int (*fq_args_typed)(int dtype, const void *inputs, size_t n, float min, float max,
                         int num_bits, int narrow_range, void *outputs, const cfq_exec *exec);
    int (*fq_args_grad_typed)(int dtype, const void *gradients, const void *inputs, size_t n,
                              float min, float max, int num_bits, int narrow_range,
                              void *backprops, const cfq_exec *exec);
    int (*fq_per_channel_typed)(int dtype, const void *inputs, size_t outer, size_t channels,
                                size_t inner, const float *min, const float *max, int num_bits,
                                int narrow_range, void *outputs, const cfq_exec *exec);
    int (*fq_per_channel_grad_typed)(int dtype, const void *gradients, const void *inputs,
                                     size_t outer, size_t channels, size_t inner,
                                     const float *min, const float *max, int num_bits,
                                     int narrow_range, void *backprops_wrt_input,
                                     float *backprop_wrt_min, float *backprop_wrt_max,
                                     const cfq_exec *exec);
    int (*fq_vars_and_region_typed)(int dtype, const void *inputs, size_t n, float min,
                                    float max, int num_bits, int narrow_range, void *outputs,
                                    unsigned char *region, const cfq_exec *exec);
    int (*fq_region_grad_typed)(int dtype, const void *gradients, const unsigned char *region,
                                size_t n, void *backprops_wrt_input, float *backprop_wrt_min,
                                float *backprop_wrt_max, const cfq_exec *exec);
    int (*fq_per_channel_and_region_typed)(int dtype, const void *inputs, size_t outer,
                                           size_t channels, size_t inner, const float *min,
                                           const float *max, int num_bits, int narrow_range,
                                           void *outputs, unsigned char *region,
                                           const cfq_exec *exec);
    int (*fq_per_channel_region_grad_typed)(int dtype, const void *gradients,
                                            const unsigned char *region, size_t outer,
                                            size_t channels, size_t inner,
                                            void *backprops_wrt_input, float *backprop_wrt_min,
                                            float *backprop_wrt_max, const cfq_exec *exec);
    int (*fq_args_and_region)(const float *inputs, size_t n, float min, float max, int num_bits,
                              int narrow_range, float *outputs, unsigned char *region,
                              const cfq_exec *exec);
    int (*fq_args_and_region_typed)(int dtype, const void *inputs, size_t n, float min,
                                    float max, int num_bits, int narrow_range, void *outputs,
                                    unsigned char *region, const cfq_exec *exec);
} cfq_capi;

/* The table of this build. */
const cfq_capi *cfq_capi_table(void);

#ifdef __cplusplus
}
#endif

#endif /* CFQ_H */
