/*
 * cfq_reference.h -- the reference arithmetic, one element at a time: TF's
 * formulas as the scalar kernels (cfq_scalar.c) run them, and the tails
 * every SIMD kernel finishes with, so vector body and tail follow one
 * definition.  Also the sums' accumulation order, which every path keeps.
 */
#ifndef CFQ_REFERENCE_H
#define CFQ_REFERENCE_H

#include <math.h>

#include "cfq_internal.h"

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

static inline void cfq_args_grad_range(const float *g, const float *x, size_t i, size_t n,
                                       const cfq_params *p, float *dx)
{
    const float lo = p->nudged_min, hi = p->nudged_max;
    for (; i < n; i++) {
        const float xi = x[i];
        dx[i] = g[i] * ((xi >= lo && xi <= hi) ? p->one : p->zero);
    }
}

/* Channels [j, m) of one row of the per-channel forward op. */
static inline void cfq_per_channel_forward_row(const float *x, size_t j, size_t m,
                                      const cfq_channel_params *cp, float *out)
{
    for (; j < m; j++) {
        const float v = cfq_forward_mul_one(x[j], cp->nudged_min[j], cp->nudged_max[j],
                                            cp->scale[j], cp->inv_scale[j], cp->quant_zero[j]);
        out[j] = cp->keep[j] ? v : 0.0f;
    }
}

/* Channels [j, m) of one row of the per-channel gradient. */
static inline void cfq_per_channel_grad_row(const float *g, const float *x, size_t j, size_t m,
                                   const cfq_channel_params *cp, float *dx, cfq_channel_sums *acc)
{
    for (; j < m; j++) {
        const float gj = g[j], xj = x[j];
        const float lo = cp->nudged_min[j], hi = cp->nudged_max[j];
        if (!cp->keep[j]) {
            dx[j] = gj; /* TF copies: no arithmetic, no flushing */
            continue;
        }
        dx[j] = gj * ((xj >= lo && xj <= hi) ? cp->one : cp->zero);
        cfq_twosum_add(&acc->below_s[j], &acc->below_c[j],
                       (double)(gj * ((xj < lo) ? cp->one : cp->zero)));
        cfq_twosum_add(&acc->above_s[j], &acc->above_c[j],
                       (double)(gj * ((xj > hi) ? cp->one : cp->zero)));
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

#endif /* CFQ_REFERENCE_H */
