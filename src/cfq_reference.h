/*
 * cfq_reference.h -- the reference arithmetic, one element at a time: TF's
 * formulas as the scalar kernels (cfq_scalar.c) run them, and the tails
 * every SIMD kernel finishes with, so vector body and tail follow one
 * definition.  Also the sums' accumulation order, which every path keeps.
 */
#ifndef CFQ_REFERENCE_H
#define CFQ_REFERENCE_H

#include <math.h>
#include <string.h>

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
 * element of a sum block (i % 256 >= 248) hands the block's partial on.
 * Adding a +-0 term is a no-op (a partial is never -0), so kernels may skip
 * them. */
static inline void cfq_lanes_add(cfq_lanes *a, size_t i, double v)
{
    const int l = (int)(i % CFQ_LANES);
    a->p[l] += v;
    if (i % CFQ_SUM_BLOCK >= CFQ_SUM_BLOCK - CFQ_LANES) {
        cfq_twosum_add(&a->s[l], &a->c[l % CFQ_ERR_LANES], a->p[l]);
        a->p[l] = 0.0;
    }
}

/* The lanes' compensated sums (their open partials already added) to one
 * double, in lane order. */
static inline double cfq_lanes_fold(const double ls[CFQ_LANES], const double lc[CFQ_ERR_LANES])
{
    double s = 0.0, c = 0.0;
    int l;
    for (l = 0; l < CFQ_LANES; l++)
        cfq_twosum_add(&s, &c, ls[l]);
    if (!isfinite(s))
        return s;
    for (l = 0; l < CFQ_ERR_LANES; l++)
        c += lc[l];
    return s + c;
}

/* Lanes to one double, in a fixed order: the open block's partials first
 * (as at a sum block's end), then cfq_lanes_fold(). */
static inline double cfq_lanes_total(const cfq_lanes *a)
{
    double ls[CFQ_LANES], lc[CFQ_ERR_LANES];
    int l;
    for (l = 0; l < CFQ_ERR_LANES; l++)
        lc[l] = a->c[l];
    for (l = 0; l < CFQ_LANES; l++) {
        ls[l] = a->s[l];
        cfq_twosum_add(&ls[l], &lc[l % CFQ_ERR_LANES], a->p[l]);
    }
    return cfq_lanes_fold(ls, lc);
}

/* ---- Element types: conversions written out -------------------------- */

/* float16 bits to float32, exactly (subnormals become normal floats; NaN
 * keeps its payload, signalling or not, as NumPy converts). */
static inline float cfq_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    float f;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float32 to float16 bits, rounding to nearest even as NumPy does:
 * subnormal results kept, overflow to +-Inf, NaN truncated to its top
 * payload bits (and kept a NaN). */
static inline uint16_t cfq_f32_to_f16(float f)
{
    uint32_t u, sign, exp, man;
    memcpy(&u, &f, sizeof u);
    sign = (u >> 16) & 0x8000u;
    exp = (u >> 23) & 0xffu;
    man = u & 0x7fffffu;
    if (exp == 0xffu) {
        uint32_t h = 0x7c00u | (man >> 13);
        if (man != 0 && h == 0x7c00u)
            h++;
        return (uint16_t)(sign | h);
    }
    if (exp > 142u) /* >= 2^16: past float16's largest, 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (exp >= 113u) { /* a normal float16; rounding may carry into the exponent, or to Inf */
        const uint32_t h = ((exp - 112u) << 10) | (man >> 13);
        const uint32_t rest = man & 0x1fffu;
        return (uint16_t)(sign | (h + (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))));
    }
    if (exp >= 102u) { /* a float16 subnormal (or rounds up to the smallest normal) */
        const uint32_t full = man | 0x800000u, shift = 126u - exp;
        const uint32_t h = full >> shift, rest = full & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        return (uint16_t)(sign | (h + (rest > halfway || (rest == halfway && (h & 1u)))));
    }
    return (uint16_t)sign; /* below half the smallest subnormal */
}

static inline float cfq_bf16_to_f32(uint16_t b)
{
    const uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float32 to bfloat16 bits, rounding to nearest even; NaN becomes the
 * quiet NaN 0x7fc0 with its sign, as ml_dtypes (Eigen) converts. */
static inline uint16_t cfq_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7fc0u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* The float a compensated sum rounds to.  NaN comes out as one fixed quiet
 * NaN, 0x7fc00000, so every path and thread count gives the same bits.
 * Inline: the per-channel gradient calls it twice a channel (not inlined,
 * 128 calls had been 9% of a call on 64 channels and 64 elements). */
CFQ_INLINE float cfq_sum_result(const cfq_sum *sum)
{
    if (isnan(sum->s)) {
        const uint32_t bits = 0x7fc00000u;
        float nan_value;
        memcpy(&nan_value, &bits, sizeof nan_value);
        return nan_value;
    }
    if (!isfinite(sum->s))
        return (float)sum->s;
    return (float)(sum->s + sum->c);
}

/* The address of element i of an array of dtype dt. */
CFQ_INLINE const void *cfq_in(int dt, const void *base, size_t i)
{
    return (const char *)base + i * CFQ_ELEMENT_SIZE(dt);
}
CFQ_INLINE void *cfq_out(int dt, void *base, size_t i)
{
    return (char *)base + i * CFQ_ELEMENT_SIZE(dt);
}

/* Element i of an array of dtype dt, as float32, and back (dt a constant at
 * each call: the switch folds away). */
CFQ_INLINE float cfq_load1(int dt, const void *base, size_t i)
{
    if (dt == CFQ_FLOAT16)
        return cfq_f16_to_f32(((const uint16_t *)base)[i]);
    if (dt != CFQ_FLOAT32)
        return cfq_bf16_to_f32(((const uint16_t *)base)[i]);
    return ((const float *)base)[i];
}

CFQ_INLINE void cfq_store1(int dt, void *base, size_t i, float v)
{
    if (dt == CFQ_FLOAT16)
        ((uint16_t *)base)[i] = cfq_f32_to_f16(v);
    else if (dt != CFQ_FLOAT32)
        ((uint16_t *)base)[i] = cfq_f32_to_bf16(v);
    else
        ((float *)base)[i] = v;
}

/* Element i passed through as TF's pass-through passes a float32 (no
 * arithmetic, no flushing): its bits, but for a bfloat16 NaN, which the
 * round trip cast(upcast(g)) makes the quiet NaN 0x7fc0 with its sign. */
CFQ_INLINE void cfq_copy1(int dt, void *dst, const void *src, size_t i)
{
    if (dt == CFQ_FLOAT32) {
        ((float *)dst)[i] = ((const float *)src)[i];
    } else {
        const uint16_t b = ((const uint16_t *)src)[i];
        ((uint16_t *)dst)[i] =
            dt != CFQ_FLOAT16 && (b & 0x7fffu) > 0x7f80u ? (uint16_t)((b & 0x8000u) | 0x7fc0u) : b;
    }
}

/* n elements passed through (see cfq_copy1); dst may be src. */
CFQ_INLINE void cfq_copy(int dt, void *dst, const void *src, size_t n)
{
    size_t i;
    if (dt == CFQ_FLOAT32 || dt == CFQ_FLOAT16) {
        if (dst != src)
            memmove(dst, src, n * CFQ_ELEMENT_SIZE(dt));
        return;
    }
    for (i = 0; i < n; i++)
        cfq_copy1(dt, dst, src, i);
}

/* ---- One element at a time ------------------------------------------- */

/* Elements [i, n) of the vars gradient, as TF writes it: masks are 1.0f or
 * 0.0f and multiply the gradient, so -0.0 and NaN come out as TF's do. */
CFQ_INLINE void cfq_vars_grad_range(int dt, const void *g, const void *x, size_t i, size_t n,
                                    const cfq_params *p, void *dx, cfq_lanes *below,
                                    cfq_lanes *above)
{
    const float lo = p->nudged_min, hi = p->nudged_max, one = p->one, zero = p->zero;
    for (; i < n; i++) {
        const float gi = cfq_load1(dt, g, i), xi = cfq_load1(dt, x, i);
        const float in_mask = (xi >= lo && xi <= hi) ? one : zero;
        const float below_mask = (xi < lo) ? one : zero;
        const float above_mask = (xi > hi) ? one : zero;
        cfq_store1(dt, dx, i, gi * in_mask);
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

/*
 * Whether floor(t + offset), offset = 0.5f - quant_zero, has the bits of
 * TF's floor(t - quant_zero + 0.5f) for every t = (clamp(x) - nudged_min)
 * / scale or * inv_scale the forward ops form.  One add for two took the
 * SIMD forward at 64K from 4 vector adds a vector to 3: 0.81-0.89 of its
 * time (C, args and vars, AVX-512 and AVX2; the per-channel forward
 * 0.84-0.97).  Those t lie in [0, T], T the
 * value at nudged_max (the steps are monotone), and the claim holds where q
 * = quant_zero is 0 or an integer in [2, 2^21] and T <= 2^21.  With w = t - q:
 * - t >= q/2: w is exact (Sterbenz, or t > 2q with ulp(t) <= 1), so both
 *   forms round w + 0.5 once (an exact 0 is +0 in both).
 * - t < q/2: w in (-q, -q/2], so |RN(w)| >= 1 and RN(w) + 0.5 is exact.  If
 *   w and w + 0.5 share a binade, 0.5 is an even number of its ulps and
 *   RN(w) + 0.5 = RN(w + 0.5); if not, both floors are the binade's edge
 *   -2^k, an integer for k >= 0.
 * q = 1 is the exception (k = -1): t = 0.5 - 2^-25 gives TF's
 * floor(RN(-0.5 - 2^-25) + 0.5) = floor(-0.5 + 0.5) = +0, but
 * floor(-2^-25) = -1.  An exhaustive check (every float t up to 2^17 for q
 * in {0..4, 255, 256, 32767, 32768, 65534, 65535}; t up to q/2 + 2 for q
 * up to 2047, and every 61st q to 65535) found that t and no other.  NaN or
 * infinite parameters fail the comparisons here.
 */
static inline int cfq_offset_exact(float quant_zero, float scale, float inv_scale, float lo,
                                   float hi)
{
    const float t_max = 2097152.0f, width = hi - lo;
    return (quant_zero == 0.0f || (quant_zero >= 2.0f && quant_zero <= t_max)) && scale > 0.0f &&
           inv_scale > 0.0f && width * inv_scale <= t_max && width / scale <= t_max;
}

/* The args and per-channel ops' forward value: multiplies by inv_scale. */
static inline float cfq_forward_mul_one(float x, float lo, float hi, float scale,
                                        float inv_scale, float quant_zero)
{
    const float shifted = cfq_clamp(x, lo, hi) - lo;
    return floorf(shifted * inv_scale - quant_zero + 0.5f) * scale;
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

/* Elements [i, n) of a forward op: the vars op's division or the args op's
 * multiplication, and the region codes where region is not NULL. */
CFQ_INLINE void cfq_forward_range(int dt, int divide, const void *x, size_t i, size_t n,
                                  const cfq_params *p, void *out, unsigned char *region)
{
    for (; i < n; i++) {
        const float xi = cfq_load1(dt, x, i);
        if (region != NULL)
            region[i] = cfq_region_of(xi, p->nudged_min, p->nudged_max);
        cfq_store1(dt, out, i,
                   divide ? cfq_forward_div_one(xi, p)
                          : cfq_forward_mul_one(xi, p->nudged_min, p->nudged_max, p->scale,
                                                p->inv_scale, p->quant_zero));
    }
}

CFQ_INLINE void cfq_args_grad_range(int dt, const void *g, const void *x, size_t i, size_t n,
                                    const cfq_params *p, void *dx)
{
    const float lo = p->nudged_min, hi = p->nudged_max;
    for (; i < n; i++) {
        const float xi = cfq_load1(dt, x, i);
        cfq_store1(dt, dx, i, cfq_load1(dt, g, i) * ((xi >= lo && xi <= hi) ? p->one : p->zero));
    }
}

/* Elements [i, n) of the region-code gradient: the masks of
 * cfq_vars_grad_range() read from the codes.  Returns nonzero on a byte that
 * is no region code.  Only p->one and p->zero are used. */
CFQ_INLINE int cfq_region_grad_range(int dt, const void *g, const unsigned char *region, size_t i,
                                     size_t n, const cfq_params *p, void *dx, cfq_lanes *below,
                                     cfq_lanes *above)
{
    const float one = p->one, zero = p->zero;
    int bad = 0;
    for (; i < n; i++) {
        const float gi = cfq_load1(dt, g, i);
        const unsigned code = region[i];
        if (code == CFQ_REGION_PASS) {
            /* min == max == 0: TF copies the gradient; the terms are 0, but
             * a block ending here still hands its partials on */
            cfq_copy1(dt, dx, g, i);
            cfq_lanes_add(below, i, 0.0);
            cfq_lanes_add(above, i, 0.0);
            continue;
        }
        bad |= code > CFQ_REGION_NONE;
        cfq_store1(dt, dx, i, gi * (code == CFQ_REGION_INSIDE ? one : zero));
        cfq_lanes_add(below, i, (double)(gi * ((code & CFQ_REGION_BELOW) ? one : zero)));
        cfq_lanes_add(above, i, (double)(gi * ((code & CFQ_REGION_ABOVE) ? one : zero)));
    }
    return bad;
}

/* ---- Per channel, over the last axis ----------------------------------- */

/* Channels [j, m) of one row of the per-channel forward op, with region
 * codes where region is not NULL (CFQ_REGION_PASS for a channel with
 * min == max == 0). */
CFQ_INLINE void cfq_per_channel_forward_row(int dt, const void *x, size_t j, size_t m,
                                            const cfq_channel_params *cp, void *out,
                                            unsigned char *region)
{
    for (; j < m; j++) {
        const float xj = cfq_load1(dt, x, j);
        const float v = cfq_forward_mul_one(xj, cp->nudged_min[j], cp->nudged_max[j],
                                            cp->scale[j], cp->inv_scale[j], cp->quant_zero[j]);
        cfq_store1(dt, out, j, cp->keep[j] ? v : 0.0f);
        if (region != NULL)
            region[j] = cp->keep[j] ? cfq_region_of(xj, cp->nudged_min[j], cp->nudged_max[j])
                                    : CFQ_REGION_PASS;
    }
}

/* A channel's sum terms into its partials, in row order (see
 * CFQ_ROW_STRETCH).  As in cfq_lanes_add, a +-0 term is a no-op, so
 * kernels may skip them. */
static inline void cfq_channel_sums_add(cfq_channel_sums *acc, size_t j, double below, double above)
{
    acc->below_p[j] += below;
    acc->above_p[j] += above;
}

/* The end of a stretch for channels [j, m): each partial into its
 * channel's compensated sum, the partials start again from 0 (a 0 partial
 * changes no sum, so a stretch with no terms may skip this). */
static inline void cfq_channel_sums_flush(cfq_channel_sums *acc, size_t j, size_t m)
{
    for (; j < m; j++) {
        cfq_twosum_add(&acc->below_s[j], &acc->below_c[j], acc->below_p[j]);
        cfq_twosum_add(&acc->above_s[j], &acc->above_c[j], acc->above_p[j]);
        acc->below_p[j] = 0.0;
        acc->above_p[j] = 0.0;
    }
}

/* Whether row r of a kernel call ends a stretch of the per-channel sums. */
static inline int cfq_stretch_end(size_t r)
{
    return r % CFQ_ROW_STRETCH == CFQ_ROW_STRETCH - 1;
}

/* Channels [j, m) of one row of the per-channel gradient. */
CFQ_INLINE void cfq_per_channel_grad_row(int dt, const void *g, const void *x, size_t j, size_t m,
                                         const cfq_channel_params *cp, void *dx,
                                         cfq_channel_sums *acc)
{
    for (; j < m; j++) {
        const float gj = cfq_load1(dt, g, j), xj = cfq_load1(dt, x, j);
        const float lo = cp->nudged_min[j], hi = cp->nudged_max[j];
        if (!cp->keep[j]) {
            cfq_copy1(dt, dx, g, j); /* TF copies: no arithmetic, no flushing */
            continue;
        }
        cfq_store1(dt, dx, j, gj * ((xj >= lo && xj <= hi) ? cp->one : cp->zero));
        cfq_channel_sums_add(acc, j, (double)(gj * ((xj < lo) ? cp->one : cp->zero)),
                             (double)(gj * ((xj > hi) ? cp->one : cp->zero)));
    }
}

/* Channels [j, m) of one row of the per-channel gradient from region codes:
 * the bits and sums of cfq_per_channel_grad_row() on the inputs that made
 * them.  Returns nonzero on a byte that is no region code. */
CFQ_INLINE int cfq_per_channel_region_grad_row(int dt, const void *g, const unsigned char *region,
                                               size_t j, size_t m, const cfq_channel_params *cp,
                                               void *dx, cfq_channel_sums *acc)
{
    int bad = 0;
    for (; j < m; j++) {
        const float gj = cfq_load1(dt, g, j);
        const unsigned code = region[j];
        if (code == CFQ_REGION_PASS) {
            cfq_copy1(dt, dx, g, j);
            continue;
        }
        bad |= code > CFQ_REGION_NONE;
        cfq_store1(dt, dx, j, gj * (code == CFQ_REGION_INSIDE ? cp->one : cp->zero));
        cfq_channel_sums_add(acc, j, (double)(gj * ((code & CFQ_REGION_BELOW) ? cp->one : cp->zero)),
                             (double)(gj * ((code & CFQ_REGION_ABOVE) ? cp->one : cp->zero)));
    }
    return bad;
}

#endif /* CFQ_REFERENCE_H */
