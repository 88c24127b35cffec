/*
 * cfq_internal.h -- what the ISA files share: the nudged parameters, the
 * kernel table, and the scalar element helpers every SIMD file uses for its
 * tail, so that body and tail follow one definition of the arithmetic.
 */
#ifndef CFQ_INTERNAL_H
#define CFQ_INTERNAL_H

#include <math.h>
#include <stddef.h>

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

/* Double accumulator lanes per sum: element i of a chunk goes to lane i % 8
 * on every ISA (one zmm, two ymm, four NEON q registers, or 8 scalars). */
#define CFQ_LANES 8

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
} cfq_params;

/* Compensated (Neumaier) sums, one pair per lane. */
typedef struct cfq_lanes {
    double s[CFQ_LANES];
    double c[CFQ_LANES];
} cfq_lanes;

/* A chunk kernel of FakeQuantWithMinMaxVarsGradient: n <= CFQ_CHUNK.
 * Writes dx[0..n) and the chunk's two sums (below min, above max). */
typedef void (*cfq_vars_grad_fn)(const float *g, const float *x, size_t n,
                                 const cfq_params *p, float *dx,
                                 double sums[2]);

typedef struct cfq_kernels {
    const char *name;
    cfq_vars_grad_fn vars_grad;
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
                                 float *backprop_wrt_min, float *backprop_wrt_max);

/* The FP environment TF runs its kernels in: flush-to-zero and
 * denormals-are-zero, round to nearest, exceptions masked. */
typedef struct cfq_fpenv {
    unsigned long long saved;
} cfq_fpenv;
CFQ_HIDDEN void cfq_fpenv_enter(cfq_fpenv *env);
CFQ_HIDDEN void cfq_fpenv_leave(const cfq_fpenv *env);

/* ---- Scalar helpers shared by every ISA file ---------------------------- */

static inline void cfq_lanes_zero(cfq_lanes *a)
{
    int l;
    for (l = 0; l < CFQ_LANES; l++) {
        a->s[l] = 0.0;
        a->c[l] = 0.0;
    }
}

/* One Neumaier step: s + c tracks the sum with about 106 bits.  A NaN or
 * +-Inf term poisons s, which the final reduction returns as is. */
static inline void cfq_neumaier_add(double *s, double *c, double v)
{
    double t = *s + v;
    if (fabs(*s) >= fabs(v))
        *c += (*s - t) + v;
    else
        *c += (v - t) + *s;
    *s = t;
}

/* Lanes to one double, in a fixed order. */
static inline double cfq_lanes_total(const cfq_lanes *a)
{
    double s = 0.0, c = 0.0;
    int l;
    for (l = 0; l < CFQ_LANES; l++)
        cfq_neumaier_add(&s, &c, a->s[l]);
    if (!isfinite(s))
        return s;
    for (l = 0; l < CFQ_LANES; l++)
        c += a->c[l];
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
        const int l = (int)(i % CFQ_LANES);
        const float in_mask = (xi >= lo && xi <= hi) ? one : zero;
        const float below_mask = (xi < lo) ? one : zero;
        const float above_mask = (xi > hi) ? one : zero;
        dx[i] = gi * in_mask;
        cfq_neumaier_add(&below->s[l], &below->c[l], (double)(gi * below_mask));
        cfq_neumaier_add(&above->s[l], &above->c[l], (double)(gi * above_mask));
    }
}

#endif /* CFQ_INTERNAL_H */
