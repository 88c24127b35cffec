/*
 * cfq_internal.h -- what the core's files share: constants, the parameter
 * and accumulator types, the kernel table and the internal prototypes.  The
 * arithmetic itself is in cfq_reference.h (scalar) and cfq_simd_kernels.h
 * (written once over each ISA file's vocabulary).
 */
#ifndef CFQ_INTERNAL_H
#define CFQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cfq.h"

#if defined(__GNUC__) && !defined(_WIN32)
#define CFQ_HIDDEN __attribute__((visibility("hidden")))
#else
#define CFQ_HIDDEN
#endif

/* For the kernels' building blocks, whose constant arguments (which op,
 * which store) must be folded into each caller. */
#if defined(__GNUC__)
#define CFQ_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define CFQ_INLINE static __forceinline
#else
#define CFQ_INLINE static inline
#endif

/* Elements per chunk.  Sums restart their lanes at every chunk and chunks
 * are combined in index order, so results never depend on how chunks are
 * shared among threads. */
#define CFQ_CHUNK ((size_t)16384)

/* Elements from which an op's output is written past the caches (about the
 * last-level cache of a desktop CPU at 12 bytes per element). */
#define CFQ_STREAM_MIN ((size_t)1 << 22)
/* A kernel's stream argument where its output is also aligned to a whole
 * vector (1: streamed, 16-byte aligned; 0: through the caches). */
#define CFQ_STREAM_WHOLE 2

/* Double accumulator lanes per sum: element i of a chunk goes to lane i % 8
 * on every ISA (one zmm, two ymm, four NEON q registers, or 8 scalars).  A
 * lane adds the terms of one 256-element sum block (32 terms) in plain
 * double, the cheap part that runs on every vector step; at the sum block's
 * end that partial is added to the lane's compensated sum with TwoSum, its
 * exact rounding error going to error lane i % 4 (half as many registers:
 * AVX2 has 16 in all).  TwoSum on every term cost twice the time of the
 * whole gradient on inputs mostly outside the range; once every 64
 * elements it still cost 15% of it there (AVX-512, 64K elements, half the
 * inputs outside), once every 256 about 4%.  Every path adds the same
 * numbers in the same order.  The kernels walk 64-element blocks (their
 * busy steps, see cfq_grad_chunk), four to a sum block. */
#define CFQ_LANES 8
#define CFQ_ERR_LANES 4
#define CFQ_SUM_BLOCK 256
#define CFQ_BLOCK 64

/* Element types inside the core: cfq.h's CFQ_FLOAT32, CFQ_FLOAT16 and
 * CFQ_BFLOAT16, plus bfloat16 stored with AVX512-BF16's conversion, which
 * the entry points choose where the table has it and the CPU runs it. */
#define CFQ_BFLOAT16_NATIVE 3

/* Bytes of one element of a dtype. */
#define CFQ_ELEMENT_SIZE(dt) ((dt) == CFQ_FLOAT32 ? (size_t)4 : (size_t)2)

/* TensorFlow's Nudge() result, plus what the forward ops derive from it. */
typedef struct cfq_params {
    float nudged_min;
    float nudged_max;
    float scale;
    float inv_scale;  /* (qmax - qmin) / (max - min), not 1 / scale */
    float quant_zero; /* floor(-nudged_min * inv_scale + 0.5f) */
    /* 0.5f - quant_zero; where offset_exact (cfq_offset_exact()), the
     * SIMD forward adds it once in place of TF's - quant_zero + 0.5f. */
    float offset;
    int offset_exact;
    int passthrough;  /* min == max == 0: TF's special case */
    /* 1.0f and 0.0f, read at run time: with literal constants the compiler
     * folds g * 1.0f into g and loses TF's flush of denormal gradients. */
    float one;
    float zero;
    /* Outputs too big for the caches, 16-byte aligned: kernels may store them
     * with non-temporal stores. */
    int stream;
    int dtype; /* of the gradients, inputs and outputs */
    /* 16-bit types, once cfq_params_keys() has run (keyed): the inputs x
     * with nudged_min <= x <= nudged_max, compared as floats in the flushed
     * FP environment, are those whose key lies in [key_lo, key_hi], so a
     * kernel can test the words without converting them.  The key of bits
     * b: b with the sign bit clear, -1 - (b & 0x7fff) with it set; as
     * signed 16-bit integers, keys are in the values' order (-0 just below
     * +0, the NaNs beyond the infinities). */
    int keyed;
    int key_lo, key_hi;
} cfq_params;

/* Sums of float terms: p holds each lane's partial of the current block,
 * s + c the compensated sum of its finished blocks (about 106 bits).  So
 * {3e38, -3e38, 1, 1} as neighbours (four lanes) sums to 2, but a 1 that
 * shares a lane and block with a 3e38 cancelled later is lost (the block's
 * partial rounds it away), as in any plain double sum. */
typedef struct cfq_lanes {
    double s[CFQ_LANES];
    double c[CFQ_ERR_LANES];
    double p[CFQ_LANES];
} cfq_lanes;

/* A compensated sum of chunk or lane totals. */
typedef struct cfq_sum {
    double s, c;
} cfq_sum;

/* Channels per block of the per-channel kernels over the last axis. */
#define CFQ_CHANNEL_BLOCK 256

/* Nudged parameters of up to CFQ_CHANNEL_BLOCK channels, one array per
 * field so SIMD loops load 8 or 16 channels at once.  keep[c] is all ones,
 * or 0 for a channel with min == max == 0 (forward writes +0, gradient
 * copies g). */
typedef struct cfq_channel_params {
    float nudged_min[CFQ_CHANNEL_BLOCK];
    float nudged_max[CFQ_CHANNEL_BLOCK];
    float scale[CFQ_CHANNEL_BLOCK];
    float inv_scale[CFQ_CHANNEL_BLOCK];
    float quant_zero[CFQ_CHANNEL_BLOCK];
    float offset[CFQ_CHANNEL_BLOCK]; /* see cfq_params.offset */
    uint32_t keep[CFQ_CHANNEL_BLOCK];
    int offset_exact; /* cfq_offset_exact() holds for every channel kept */
    float one; /* see cfq_params.one */
    float zero;
    int stream; /* see cfq_params.stream (rows 16-byte aligned too) */
    int dtype;
} cfq_channel_params;

/* Rows per stretch of the per-channel sums over the last axis: channel c
 * adds one term per row, in row order, in plain double over each stretch of
 * 32 rows (rows [32k, 32k + 32) of the kernel call); at the stretch's end
 * that partial goes into the channel's compensated sum with TwoSum, as a
 * lane's block partial does (see CFQ_LANES): 32 terms each, so the same
 * error bound, on every ISA.  TwoSum on every term, as before, cost the
 * gradient on inputs half outside the range 4x the vars gradient's time
 * (64K, AVX-512: 0.60 against 0.14 ns per element; now 0.22): each row's
 * TwoSum waited on the last one's, through memory. */
#define CFQ_ROW_STRETCH 32

/* Per-channel sums: s + c the compensated sum of the finished stretches, p
 * the open stretch's partial. */
typedef struct cfq_channel_sums {
    double below_s[CFQ_CHANNEL_BLOCK];
    double below_c[CFQ_CHANNEL_BLOCK];
    double above_s[CFQ_CHANNEL_BLOCK];
    double above_c[CFQ_CHANNEL_BLOCK];
    double below_p[CFQ_CHANNEL_BLOCK];
    double above_p[CFQ_CHANNEL_BLOCK];
} cfq_channel_sums;

/* ---- The kernel table: one per ISA file ---------------------------------- */

/* Arrays are of p->dtype (cp->dtype): float, or the 16-bit types' bits. */

/* A chunk of FakeQuantWithMinMaxVarsGradient (n <= CFQ_CHUNK): writes
 * dx[0..n) and the chunk's two sums (below min, above max). */
typedef void (*cfq_vars_grad_fn)(const void *g, const void *x, size_t n, const cfq_params *p,
                                 void *dx, double sums[2]);
/* A chunk of the region-code gradient (n <= CFQ_CHUNK): the same bits as
 * cfq_vars_grad_fn on the inputs that made the codes (CFQ_REGION_* in
 * cfq.h).  Returns nonzero if it met a byte that is not a region code. */
typedef int (*cfq_region_grad_fn)(const void *g, const unsigned char *region, size_t n,
                                  const cfq_params *p, void *dx, double sums[2]);
/* Forward fake quantization of x[0..n) with one set of parameters, and the
 * region codes, one byte per element, where region is not NULL. */
typedef void (*cfq_forward_fn)(const void *x, size_t n, const cfq_params *p, void *out,
                               unsigned char *region);
/* dx = g * inside, without sums (the args gradient). */
typedef void (*cfq_args_grad_fn)(const void *g, const void *x, size_t n, const cfq_params *p,
                                 void *dx);
/* Per-channel ops over the last axis: `rows` rows `stride` elements apart,
 * each with channels [0, m) of the block described by cp; codes and sums
 * as above. */
typedef void (*cfq_per_channel_forward_fn)(const void *x, size_t rows, size_t stride, size_t m,
                                           const cfq_channel_params *cp, void *out,
                                           unsigned char *region);
typedef void (*cfq_per_channel_grad_fn)(const void *g, const void *x, size_t rows,
                                        size_t stride, size_t m, const cfq_channel_params *cp,
                                        void *dx, cfq_channel_sums *acc);
typedef int (*cfq_per_channel_region_grad_fn)(const void *g, const unsigned char *region,
                                              size_t rows, size_t stride, size_t m,
                                              const cfq_channel_params *cp, void *dx,
                                              cfq_channel_sums *acc);

/* TF's nudge of channels [0, m) (m <= CFQ_CHANNEL_BLOCK; min and max
 * finite, already checked) into cp's arrays, keep words and offset_exact;
 * cp's other fields are left as they are. */
typedef void (*cfq_channel_nudge_fn)(const float *min, const float *max, size_t m, int num_bits,
                                      int narrow_range, cfq_channel_params *cp);

/* Field names are the kernels' stems: cfq_scalar.c and cfq_simd_kernels.h
 * define cfq_<stem> for each.  An ISA file compiled for another target
 * leaves them NULL. */
typedef struct cfq_kernels {
    const char *name;
    cfq_vars_grad_fn vars_grad;
    cfq_region_grad_fn region_grad;
    cfq_forward_fn vars_forward; /* divides by scale, as TF's vars op */
    cfq_forward_fn args_forward; /* multiplies by inv_scale, as TF's args op */
    cfq_args_grad_fn args_grad;
    cfq_per_channel_forward_fn per_channel_forward;
    cfq_per_channel_grad_fn per_channel_grad;
    cfq_per_channel_region_grad_fn per_channel_region_grad;
    cfq_channel_nudge_fn channel_nudge;
    int bf16_native; /* handles CFQ_BFLOAT16_NATIVE */
    int keys;        /* vars_grad reads cfq_params' keys (CFQ_VH_KEYS) */
} cfq_kernels;

extern CFQ_HIDDEN const cfq_kernels cfq_kernels_scalar;
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_avx2;
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_avx512;
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_neon;

/* ---- Internal prototypes ------------------------------------------------- */

/* Kernel table for an exec request (NULL exec = active path), or NULL with
 * *err set. */
CFQ_HIDDEN const cfq_kernels *cfq_resolve(const cfq_exec *exec, int *err);
/* The kernel table for a call, after checking exec (NULL: active, 1 thread). */
CFQ_HIDDEN const cfq_kernels *cfq_exec_kernels(const cfq_exec *exec, int *rc);

/* cfq_fq_vars_grad_typed() on a given table, arguments already checked for
 * NULL (tests use it to run a table the dispatcher would not pick). */
CFQ_HIDDEN int cfq_vars_grad_run(const cfq_kernels *k, int dtype, const void *gradients,
                                 const void *inputs, size_t n, float min, float max,
                                 int num_bits, int narrow_range, void *backprops_wrt_input,
                                 float *backprop_wrt_min, float *backprop_wrt_max, int threads);
/* The dtype the kernels of table k get for a public dtype (bfloat16 with
 * the native conversion where k has it and the CPU runs AVX512-BF16), or -1
 * for a dtype that is not one of cfq.h's. */
CFQ_HIDDEN int cfq_kernel_dtype(const cfq_kernels *k, int dtype);

/* Whether an output of n elements at out is stored past the caches. */
CFQ_HIDDEN int cfq_should_stream(size_t n, const void *out);
/* outer * channels * inner, or CFQ_ESHAPE if it overflows. */
CFQ_HIDDEN int cfq_count(size_t outer, size_t channels, size_t inner, size_t *total);

/* TF's nudge into *p, after the checks every op shares (num_bits, finite
 * min/max); must run inside cfq_fpenv_enter(). */
CFQ_HIDDEN int cfq_params_check_make(float min, float max, int num_bits, int narrow_range,
                                     cfq_params *p);
/* TF's nudge into *p without checks (for values already checked). */
CFQ_HIDDEN void cfq_params_make(float min, float max, int num_bits, int narrow_range,
                                cfq_params *p);
/* p->key_lo and p->key_hi for p->dtype (keyed set; nothing for float32),
 * from p's nudged range, where table k reads them and a run of n elements
 * has a whole block (else keyed 0: 15-40 ns a call saved); must run inside
 * cfq_fpenv_enter(). */
CFQ_HIDDEN void cfq_params_keys(cfq_params *p, const cfq_kernels *k, size_t n);
/* TF's nudge of channels [j0, m) of min/max into cp, one at a time: the
 * reference every table's channel_nudge matches.  Returns whether
 * cfq_offset_exact() holds for each of them but the pass-through ones
 * (cp->offset_exact is the caller's). */
CFQ_HIDDEN int cfq_channel_params_range(const float *min, const float *max, size_t j0, size_t m,
                                         int num_bits, int narrow_range, cfq_channel_params *cp);
/* Parameters of channels [c0, c0 + m), m <= CFQ_CHANNEL_BLOCK, already
 * checked. */
CFQ_HIDDEN void cfq_channel_params_make(const float *min, const float *max, size_t c0, size_t m,
                                        int num_bits, int narrow_range, cfq_channel_params *cp);

/* Runs fn(ctx, 0..tasks-1) on up to `threads` threads, the caller
 * included, each inside cfq_fpenv_enter(); returns when all are done.  Tasks
 * must not depend on which thread runs them. */
typedef void (*cfq_task_fn)(void *ctx, size_t task);
CFQ_HIDDEN void cfq_parallel_for(int threads, size_t tasks, cfq_task_fn fn, void *ctx);
/* Sets *flag to 1, atomically: tasks of one job may note the same flag. */
CFQ_HIDDEN void cfq_flag_set(int *flag);

/* The FP environment TF runs its kernels in: flush-to-zero and
 * denormals-are-zero, round to nearest, exceptions masked. */
typedef struct cfq_fpenv {
    unsigned long long saved;
} cfq_fpenv;
CFQ_HIDDEN void cfq_fpenv_enter(cfq_fpenv *env);
CFQ_HIDDEN void cfq_fpenv_leave(const cfq_fpenv *env);
/* The FP control register (MXCSR, FPCR; 0 elsewhere), for tests that check
 * cfq leaves it as it found it. */
CFQ_HIDDEN unsigned long long cfq_fp_control(void);

#endif /* CFQ_INTERNAL_H */
