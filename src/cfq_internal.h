/*
 * cfq_internal.h -- what the ISA files share: the nudged parameters, the
 * kernel table, and the scalar element helpers every SIMD file uses for its
 * tail, so that body and tail follow one definition of the arithmetic.
 */
#ifndef CFQ_INTERNAL_H
#define CFQ_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "cfq.h"

#if defined(__GNUC__) && !defined(_WIN32)
#define CFQ_HIDDEN __attribute__((visibility("hidden")))
#else
#define CFQ_HIDDEN
#endif

/* Elements per chunk.  Sums restart their lanes at every chunk and chunks
 * are combined in index order, so results never depend on how chunks are
 * shared among threads. */
#define CFQ_CHUNK ((size_t)16384)

/* Elements from which an op's output is written past the caches (about the
 * last-level cache of a desktop CPU at 12 bytes per element). */
#define CFQ_STREAM_MIN ((size_t)1 << 22)

/* Double accumulator lanes per sum: element i of a chunk goes to lane i % 8
 * on every ISA (one zmm, two ymm, four NEON q registers, or 8 scalars).  A
 * lane adds the terms of one 64-element block (8 terms) in plain double, the
 * cheap part that runs on every vector step; at the block's end that partial
 * is added to the lane's compensated sum with TwoSum, its exact rounding
 * error going to error lane i % 4 (half as many registers: AVX2 has 16 in
 * all).  TwoSum on every term cost twice the time of the whole gradient on
 * inputs mostly outside the range.  Every path adds the same numbers in the
 * same order. */
#define CFQ_LANES 8
#define CFQ_ERR_LANES 4
#define CFQ_BLOCK 64

/* TensorFlow's Nudge() result, plus what the forward ops derive from it. */
typedef struct cfq_params {
    float nudged_min;
    float nudged_max;
    float scale;
    float inv_scale;  /* (qmax - qmin) / (max - min), not 1 / scale */
    float quant_zero; /* floor(-nudged_min * inv_scale + 0.5f) */
    int passthrough;  /* min == max == 0: TF's special case */
    /* 1.0f and 0.0f, read at run time: with literal constants the compiler
     * folds g * 1.0f into g and loses TF's flush of denormal gradients. */
    float one;
    float zero;
    /* Outputs too big for the caches, 16-byte aligned: kernels may store them
     * with non-temporal stores. */
    int stream;
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

/* Channels per block of the per-channel kernels over the last axis. */
#define CFQ_PC_BLOCK 256

/* Nudged parameters of up to CFQ_PC_BLOCK channels, one array per field so
 * SIMD loops load 8 or 16 channels at once.  keep[c] is all ones, or 0 for a
 * channel with min == max == 0 (forward writes +0, gradient copies g). */
typedef struct cfq_pc_params {
    float nudged_min[CFQ_PC_BLOCK];
    float nudged_max[CFQ_PC_BLOCK];
    float scale[CFQ_PC_BLOCK];
    float inv_scale[CFQ_PC_BLOCK];
    float quant_zero[CFQ_PC_BLOCK];
    unsigned keep[CFQ_PC_BLOCK];
    float one;
    float zero;
} cfq_pc_params;

/* Per-channel compensated sums: channel c adds one term per row, in row
 * order, on every ISA. */
typedef struct cfq_pc_sums {
    double below_s[CFQ_PC_BLOCK];
    double below_c[CFQ_PC_BLOCK];
    double above_s[CFQ_PC_BLOCK];
    double above_c[CFQ_PC_BLOCK];
} cfq_pc_sums;

/* A chunk kernel of FakeQuantWithMinMaxVarsGradient: n <= CFQ_CHUNK.
 * Writes dx[0..n) and the chunk's two sums (below min, above max). */
typedef void (*cfq_vars_grad_fn)(const float *g, const float *x, size_t n,
                                 const cfq_params *p, float *dx,
                                 double sums[2]);
/* Forward fake quantization of x[0..n) with one set of parameters. */
typedef void (*cfq_forward_fn)(const float *x, size_t n, const cfq_params *p, float *out);
/* dx = g * inside, without sums (the args gradient). */
typedef void (*cfq_mask_grad_fn)(const float *g, const float *x, size_t n,
                                 const cfq_params *p, float *dx);
/* Per-channel over the last axis: `rows` rows `stride` floats apart, each
 * with channels [0, m) of the block described by pp. */
typedef void (*cfq_pc_forward_fn)(const float *x, size_t rows, size_t stride, size_t m,
                                  const cfq_pc_params *pp, float *out);
typedef void (*cfq_pc_grad_fn)(const float *g, const float *x, size_t rows, size_t stride,
                               size_t m, const cfq_pc_params *pp, float *dx, cfq_pc_sums *acc);

/* The forward op with region codes (CFQ_REGION_* in cfq.h), one byte per
 * element, for the region-code gradient. */
typedef void (*cfq_region_forward_fn)(const float *x, size_t n, const cfq_params *p,
                                      float *out, unsigned char *region);
/* A chunk kernel of the region-code gradient (n <= CFQ_CHUNK): the same
 * bits as cfq_vars_grad_fn on the inputs that made the codes.  Returns
 * nonzero if it met a byte that is not a region code. */
typedef int (*cfq_region_grad_fn)(const float *g, const unsigned char *region, size_t n,
                                  const cfq_params *p, float *dx, double sums[2]);

typedef struct cfq_kernels {
    const char *name;
    cfq_vars_grad_fn vars_grad;
    cfq_forward_fn vars_forward; /* divides by scale, as TF's vars op */
    cfq_forward_fn args_forward; /* multiplies by inv_scale, as TF's args op */
    cfq_mask_grad_fn mask_grad;
    cfq_pc_forward_fn pc_forward;
    cfq_pc_grad_fn pc_grad;
    cfq_region_forward_fn region_forward;
    cfq_region_grad_fn region_grad;
} cfq_kernels;

/* One table per ISA file; a file compiled for another target leaves its
 * function pointers NULL. */
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_scalar;
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_avx2;
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_avx512;
extern CFQ_HIDDEN const cfq_kernels cfq_kernels_neon;

/* Kernel table for an exec request (NULL exec = active path), or NULL with
 * *err set. */
CFQ_HIDDEN const cfq_kernels *cfq_resolve(const cfq_exec *exec, int *err);

/* cfq_fq_vars_grad() on a given table, arguments already checked for NULL
 * (tests use it to run a table the dispatcher would not pick). */
CFQ_HIDDEN int cfq_vars_grad_run(const cfq_kernels *k, const float *gradients,
                                 const float *inputs, size_t n, float min, float max,
                                 int num_bits, int narrow_range, float *backprops_wrt_input,
                                 float *backprop_wrt_min, float *backprop_wrt_max, int threads);

/* A compensated sum of chunk or lane totals. */
typedef struct cfq_sum {
    double s, c;
} cfq_sum;
/* The float a compensated sum rounds to; NaN is always 0x7fc00000. */
CFQ_HIDDEN float cfq_sum_result(const cfq_sum *sum);
/* The kernel table for a call, after checking exec (NULL: active, 1 thread). */
CFQ_HIDDEN const cfq_kernels *cfq_exec_kernels(const cfq_exec *exec, int *rc);
/* outer * channels * inner, or CFQ_ESHAPE if it overflows. */
CFQ_HIDDEN int cfq_count(size_t outer, size_t channels, size_t inner, size_t *total);

/* TF's nudge into *p, after the checks every op shares (num_bits, finite
 * min/max); must run inside cfq_fpenv_enter(). */
CFQ_HIDDEN int cfq_params_check_make(float min, float max, int num_bits, int narrow_range,
                                     cfq_params *p);
/* TF's nudge into *p without checks (for values already checked). */
CFQ_HIDDEN void cfq_params_make(float min, float max, int num_bits, int narrow_range,
                                cfq_params *p);
/* Parameters of channels [c0, c0 + m), m <= CFQ_PC_BLOCK, already checked. */
CFQ_HIDDEN void cfq_pc_block_make(const float *min, const float *max, size_t c0, size_t m,
                                  int num_bits, int narrow_range, cfq_pc_params *pp);

/* Runs fn(ctx, 0..tasks-1) on up to `threads` threads, the caller
 * included, each inside cfq_fpenv_enter(); returns when all are done.  Tasks
 * must not depend on which thread runs them. */
typedef void (*cfq_task_fn)(void *ctx, size_t task);
CFQ_HIDDEN void cfq_parallel_for(int threads, size_t tasks, cfq_task_fn fn, void *ctx);

/* The FP environment TF runs its kernels in: flush-to-zero and
 * denormals-are-zero, round to nearest, exceptions masked. */
typedef struct cfq_fpenv {
    unsigned long long saved;
} cfq_fpenv;
CFQ_HIDDEN void cfq_fpenv_enter(cfq_fpenv *env);
CFQ_HIDDEN void cfq_fpenv_leave(const cfq_fpenv *env);

/* ---- Scalar helpers shared by every ISA file ---------------------------- */

/* Index of the lowest set bit of a nonzero byte (0 for 0): the SIMD
 * gradients walk a block's busy steps with it, portably (no ctz builtin). */
static const unsigned char cfq_lowest_bit8[256] = {
    0, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    6, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    7, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    6, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
};

/* Whether n floats at a and n at b share memory (an in-place call). */
static inline int cfq_overlap(const float *a, const float *b, size_t n)
{
    const uintptr_t pa = (uintptr_t)(const void *)a, pb = (uintptr_t)(const void *)b;
    const uintptr_t bytes = (uintptr_t)n * sizeof(float);
    return pa < pb + bytes && pb < pa + bytes;
}

static inline void cfq_lanes_zero(cfq_lanes *a)
{
    int l;
    for (l = 0; l < CFQ_LANES; l++)
        a->s[l] = 0.0;
    for (l = 0; l < CFQ_ERR_LANES; l++)
        a->c[l] = 0.0;
    for (l = 0; l < CFQ_LANES; l++)
        a->p[l] = 0.0;
}

/* One compensated step (Knuth's TwoSum, branch-free): c collects the exact
 * rounding error of every s + v, so s + c tracks the sum with about 106
 * bits.  A NaN or +-Inf poisons s, which the reductions return as is. */
static inline void cfq_twosum_add(double *s, double *c, double v)
{
    const double t = *s + v;
    const double v_part = t - *s;
    *c += (*s - (t - v_part)) + (v - v_part);
    *s = t;
}

/* Term v of element i (chunk-relative) into its lane; the lane's last
 * element of a block (i % 64 >= 56) hands the block's partial on.  Adding a
 * +-0 term is a no-op (a partial is never -0), so kernels may skip them. */
static inline void cfq_lanes_add(cfq_lanes *a, size_t i, double v)
{
    const int l = (int)(i % CFQ_LANES);
    a->p[l] += v;
    if (i % CFQ_BLOCK >= CFQ_BLOCK - CFQ_LANES) {
        cfq_twosum_add(&a->s[l], &a->c[l % CFQ_ERR_LANES], a->p[l]);
        a->p[l] = 0.0;
    }
}

/* Lanes to one double, in a fixed order: the open block's partials first. */
static inline double cfq_lanes_total(const cfq_lanes *a)
{
    double ls[CFQ_LANES], lc[CFQ_ERR_LANES];
    double s = 0.0, c = 0.0;
    int l;
    for (l = 0; l < CFQ_ERR_LANES; l++)
        lc[l] = a->c[l];
    for (l = 0; l < CFQ_LANES; l++) {
        ls[l] = a->s[l];
        cfq_twosum_add(&ls[l], &lc[l % CFQ_ERR_LANES], a->p[l]);
    }
    for (l = 0; l < CFQ_LANES; l++)
        cfq_twosum_add(&s, &c, ls[l]);
    if (!isfinite(s))
        return s;
    for (l = 0; l < CFQ_ERR_LANES; l++)
        c += lc[l];
    return s + c;
}

/* Elements [i, n) of the vars gradient, as TF writes it: masks are 1.0f or
 * 0.0f and multiply the gradient, so -0.0 and NaN come out as TF's do. */
static inline void cfq_vars_grad_range(const float *g, const float *x,
                                       size_t i, size_t n,
                                       const cfq_params *p, float *dx,
                                       cfq_lanes *below, cfq_lanes *above)
{
    const float lo = p->nudged_min, hi = p->nudged_max, one = p->one, zero = p->zero;
    for (; i < n; i++) {
        const float gi = g[i], xi = x[i];
        const float in_mask = (xi >= lo && xi <= hi) ? one : zero;
        const float below_mask = (xi < lo) ? one : zero;
        const float above_mask = (xi > hi) ? one : zero;
        dx[i] = gi * in_mask;
        cfq_lanes_add(below, i, (double)(gi * below_mask));
        cfq_lanes_add(above, i, (double)(gi * above_mask));
    }
}

/* TF's clamp: std::max(std::min(x, hi), lo).  A NaN x stays NaN (and so
 * does x against a NaN bound, as Eigen's operand order gives). */
static inline float cfq_clamp(float x, float lo, float hi)
{
    const float c = (hi < x) ? hi : x;
    return (c < lo) ? lo : c;
}

/* The vars op's forward value of one element: divides by scale. */
static inline float cfq_forward_div_one(float x, const cfq_params *p)
{
    const float shifted = cfq_clamp(x, p->nudged_min, p->nudged_max) - p->nudged_min;
    return floorf(shifted / p->scale - p->quant_zero + 0.5f) * p->scale;
}

/* The args and per-channel ops' forward value: multiplies by inv_scale. */
static inline float cfq_forward_mul_one(float x, float lo, float hi, float scale,
                                        float inv_scale, float quant_zero)
{
    const float shifted = cfq_clamp(x, lo, hi) - lo;
    return floorf(shifted * inv_scale - quant_zero + 0.5f) * scale;
}

static inline void cfq_vars_forward_range(const float *x, size_t i, size_t n,
                                          const cfq_params *p, float *out)
{
    for (; i < n; i++)
        out[i] = cfq_forward_div_one(x[i], p);
}

static inline void cfq_args_forward_range(const float *x, size_t i, size_t n,
                                          const cfq_params *p, float *out)
{
    for (; i < n; i++)
        out[i] = cfq_forward_mul_one(x[i], p->nudged_min, p->nudged_max, p->scale,
                                     p->inv_scale, p->quant_zero);
}

static inline void cfq_mask_grad_range(const float *g, const float *x, size_t i, size_t n,
                                       const cfq_params *p, float *dx)
{
    const float lo = p->nudged_min, hi = p->nudged_max;
    for (; i < n; i++) {
        const float xi = x[i];
        dx[i] = g[i] * ((xi >= lo && xi <= hi) ? p->one : p->zero);
    }
}

/* Channels [j, m) of one row of the per-channel forward op. */
static inline void cfq_pc_forward_row(const float *x, size_t j, size_t m,
                                      const cfq_pc_params *pp, float *out)
{
    for (; j < m; j++) {
        const float v = cfq_forward_mul_one(x[j], pp->nudged_min[j], pp->nudged_max[j],
                                            pp->scale[j], pp->inv_scale[j], pp->quant_zero[j]);
        out[j] = pp->keep[j] ? v : 0.0f;
    }
}

/* Channels [j, m) of one row of the per-channel gradient. */
static inline void cfq_pc_grad_row(const float *g, const float *x, size_t j, size_t m,
                                   const cfq_pc_params *pp, float *dx, cfq_pc_sums *acc)
{
    for (; j < m; j++) {
        const float gj = g[j], xj = x[j];
        const float lo = pp->nudged_min[j], hi = pp->nudged_max[j];
        if (!pp->keep[j]) {
            dx[j] = gj; /* TF copies: no arithmetic, no flushing */
            continue;
        }
        dx[j] = gj * ((xj >= lo && xj <= hi) ? pp->one : pp->zero);
        cfq_twosum_add(&acc->below_s[j], &acc->below_c[j],
                       (double)(gj * ((xj < lo) ? pp->one : pp->zero)));
        cfq_twosum_add(&acc->above_s[j], &acc->above_c[j],
                       (double)(gj * ((xj > hi) ? pp->one : pp->zero)));
    }
}

/* The region code of one input: bit 0 below nudged_min, bit 1 above
 * nudged_max (both only when nudged_min > nudged_max), 4 when no comparison
 * holds (a NaN), 0 inside. */
static inline unsigned char cfq_region_of(float x, float lo, float hi)
{
    if (x >= lo && x <= hi)
        return CFQ_REGION_INSIDE;
    if (x < lo || x > hi)
        return (unsigned char)((x < lo ? CFQ_REGION_BELOW : 0) | (x > hi ? CFQ_REGION_ABOVE : 0));
    return CFQ_REGION_NONE;
}

static inline void cfq_region_forward_range(const float *x, size_t i, size_t n,
                                            const cfq_params *p, float *out,
                                            unsigned char *region)
{
    for (; i < n; i++) {
        const float xi = x[i];
        region[i] = cfq_region_of(xi, p->nudged_min, p->nudged_max);
        out[i] = cfq_forward_div_one(xi, p);
    }
}

/* Elements [i, n) of the region-code gradient: the masks of
 * cfq_vars_grad_range() read from the codes.  Returns nonzero on a byte that
 * is no region code.  Only p->one and p->zero are used. */
static inline int cfq_region_grad_range(const float *g, const unsigned char *region,
                                        size_t i, size_t n, const cfq_params *p, float *dx,
                                        cfq_lanes *below, cfq_lanes *above)
{
    const float one = p->one, zero = p->zero;
    int bad = 0;
    for (; i < n; i++) {
        const float gi = g[i];
        const unsigned code = region[i];
        if (code == CFQ_REGION_PASS) {
            /* min == max == 0: TF copies the gradient; the terms are 0, but
             * a block ending here still hands its partials on */
            dx[i] = gi;
            cfq_lanes_add(below, i, 0.0);
            cfq_lanes_add(above, i, 0.0);
            continue;
        }
        bad |= code > CFQ_REGION_NONE;
        dx[i] = gi * (code == CFQ_REGION_INSIDE ? one : zero);
        cfq_lanes_add(below, i, (double)(gi * ((code & CFQ_REGION_BELOW) ? one : zero)));
        cfq_lanes_add(above, i, (double)(gi * ((code & CFQ_REGION_ABOVE) ? one : zero)));
    }
    return bad;
}

#endif /* CFQ_INTERNAL_H */
