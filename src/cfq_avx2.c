/*
 * cfq_avx2.c -- AVX2 kernels (8 floats a step).  Built with -mavx2 on this
 * file only; elsewhere the body compiles away and the table stays empty.
 */
#include "cfq_internal.h"

#if defined(__AVX2__)
#include <immintrin.h>

/* cfq_twosum_add() on 4 lanes at once. */
static inline void cfq_twosum_add_avx2(__m256d *s, __m256d *c, __m256d v)
{
    const __m256d t = _mm256_add_pd(*s, v);
    const __m256d v_part = _mm256_sub_pd(t, *s);
    const __m256d err = _mm256_add_pd(_mm256_sub_pd(*s, _mm256_sub_pd(t, v_part)),
                                      _mm256_sub_pd(v, v_part));
    *c = _mm256_add_pd(*c, err);
    *s = t;
}

/* A sum's lanes in registers (see cfq_lanes): acc[0], acc[1] the sums of
 * lanes 0-3 and 4-7, acc[2] the error lanes 0-3, acc[3], acc[4] the open
 * block's partials of lanes 0-3 and 4-7. */
#define CFQ_ACC_AVX2 5

/* 8 float terms into the partials of lanes 0-7. */
static inline void cfq_lanes_add8_avx2(__m256d acc[CFQ_ACC_AVX2], __m256 terms)
{
    acc[3] = _mm256_add_pd(acc[3], _mm256_cvtps_pd(_mm256_castps256_ps128(terms)));
    acc[4] = _mm256_add_pd(acc[4], _mm256_cvtps_pd(_mm256_extractf128_ps(terms, 1)));
}

/* The block's end: partials into the compensated sums, lanes 0-3 first. */
static inline void cfq_lanes_block_end_avx2(__m256d acc[CFQ_ACC_AVX2])
{
    cfq_twosum_add_avx2(&acc[0], &acc[2], acc[3]);
    cfq_twosum_add_avx2(&acc[1], &acc[2], acc[4]);
    acc[3] = _mm256_setzero_pd();
    acc[4] = _mm256_setzero_pd();
}

/* Whether the step of 8 at i is the last of its block. */
static inline int cfq_block_last8(size_t i)
{
    return (i & (CFQ_BLOCK - 1)) == CFQ_BLOCK - 8;
}

static void cfq_lanes_store_avx2(cfq_lanes *a, const __m256d acc[CFQ_ACC_AVX2])
{
    _mm256_storeu_pd(a->s, acc[0]);
    _mm256_storeu_pd(a->s + 4, acc[1]);
    _mm256_storeu_pd(a->c, acc[2]);
    _mm256_storeu_pd(a->p, acc[3]);
    _mm256_storeu_pd(a->p + 4, acc[4]);
}

/* Stores 8 floats; with `stream`, past the caches (the caller checked that
 * dst is 16-byte aligned): big outputs then cost no read for ownership. */
static inline void cfq_store8_avx2(float *dst, __m256 v, int stream)
{
    if (stream) {
        _mm_stream_ps(dst, _mm256_castps256_ps128(v));
        _mm_stream_ps(dst + 4, _mm256_extractf128_ps(v, 1));
    } else {
        _mm256_storeu_ps(dst, v);
    }
}

/* The input gradient of 8 elements; returns whether any of their sum terms
 * can be nonzero (x outside, or g not finite: g * 0 is then NaN). */
static inline int cfq_vars_grad_dx8_avx2(__m256 vg, __m256 vx, __m256 lo, __m256 hi, __m256 one,
                                         float *dx, int stream)
{
    const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
    const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(vx, lo, _CMP_GE_OQ),
                                        _mm256_cmp_ps(vx, hi, _CMP_LE_OQ));
    const __m256 g_nonfinite = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
        _mm256_and_si256(_mm256_castps_si256(vg), exp_mask), exp_mask));
    cfq_store8_avx2(dx, _mm256_mul_ps(vg, _mm256_and_ps(inside, one)), stream);
    return _mm256_movemask_ps(_mm256_andnot_ps(g_nonfinite, inside)) != 0xff;
}

/* The sum terms of 8 elements into the lanes' partials. */
static inline void cfq_vars_grad_terms8_avx2(__m256 vg, __m256 vx, __m256 lo, __m256 hi, __m256 one,
                                             __m256d below_acc[CFQ_ACC_AVX2],
                                             __m256d above_acc[CFQ_ACC_AVX2])
{
    cfq_lanes_add8_avx2(below_acc, _mm256_mul_ps(vg, _mm256_and_ps(_mm256_cmp_ps(vx, lo, _CMP_LT_OQ), one)));
    cfq_lanes_add8_avx2(above_acc, _mm256_mul_ps(vg, _mm256_and_ps(_mm256_cmp_ps(vx, hi, _CMP_GT_OQ), one)));
}

/* Pass 1 of a block: its input gradient; returns which of its 8 steps are
 * busy (bit k: step k has a term that can be nonzero). */
static inline int cfq_vars_grad_pass1_avx2(const float *g, const float *x, __m256 lo, __m256 hi,
                                           __m256 one, float *dx, int stream)
{
    int k, busy = 0;
    for (k = 0; k < CFQ_BLOCK / 8; k++)
        busy |= cfq_vars_grad_dx8_avx2(_mm256_loadu_ps(g + 8 * k), _mm256_loadu_ps(x + 8 * k), lo, hi, one,
                                       dx + 8 * k, stream) << k;
    return busy;
}

/* Block by block: first the input gradient of all 64 elements, then, only
 * if some term can be nonzero, the sums (the block is still in L1).  One
 * branch per block rather than per step: with a few percent of inputs
 * outside, a per-step branch is a coin toss the CPU mispredicts.  In place
 * (dx over g or x) the second pass would read outputs: step by step then. */
static void cfq_fq_vars_grad_avx2(const float *g, const float *x, size_t n,
                                  const cfq_params *p, float *dx,
                                  double sums[2])
{
    const __m256 lo = _mm256_set1_ps(p->nudged_min);
    const __m256 hi = _mm256_set1_ps(p->nudged_max);
    /* 1.0f read at run time (see cfq_params.one): a literal lets the
     * compiler turn a mask select into g * 1.0f and back into g, losing the
     * flush of denormal gradients, or the reverse for pass-through. */
    const __m256 one = _mm256_set1_ps(p->one);
    const int stream = p->stream;
    __m256d below_acc[CFQ_ACC_AVX2], above_acc[CFQ_ACC_AVX2];
    cfq_lanes below, above;
    size_t i = 0, j, n_blocks = n;
    int k, busy;

    for (k = 0; k < CFQ_ACC_AVX2; k++) {
        below_acc[k] = _mm256_setzero_pd();
        above_acc[k] = _mm256_setzero_pd();
    }
    if (cfq_overlap(dx, g, n) || cfq_overlap(dx, x, n))
        n_blocks = 0;
    for (; i + CFQ_BLOCK <= n_blocks; i += CFQ_BLOCK) {
        /* stream a literal at each call, so the store kind is no branch
         * per step (the compiler will not unswitch it here by itself) */
        busy = stream ? cfq_vars_grad_pass1_avx2(g + i, x + i, lo, hi, one, dx + i, 1)
                      : cfq_vars_grad_pass1_avx2(g + i, x + i, lo, hi, one, dx + i, 0);
        /* A block with no busy step leaves its partials 0: nothing to end. */
        if (busy == 0)
            continue;
        if (busy == 0xff) { /* most inputs outside: every step, no lookups */
            for (j = i; j < i + CFQ_BLOCK; j += 8)
                cfq_vars_grad_terms8_avx2(_mm256_loadu_ps(g + j), _mm256_loadu_ps(x + j), lo, hi, one,
                                          below_acc, above_acc);
        } else {
            for (; busy != 0; busy &= busy - 1) { /* the busy steps only, in order */
                j = i + 8 * (size_t)cfq_lowest_bit8[busy];
                cfq_vars_grad_terms8_avx2(_mm256_loadu_ps(g + j), _mm256_loadu_ps(x + j), lo, hi, one,
                                          below_acc, above_acc);
            }
        }
        cfq_lanes_block_end_avx2(below_acc);
        cfq_lanes_block_end_avx2(above_acc);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 vg = _mm256_loadu_ps(g + i), vx = _mm256_loadu_ps(x + i);
        if (cfq_vars_grad_dx8_avx2(vg, vx, lo, hi, one, dx + i, stream))
            cfq_vars_grad_terms8_avx2(vg, vx, lo, hi, one, below_acc, above_acc);
        if (cfq_block_last8(i)) {
            cfq_lanes_block_end_avx2(below_acc);
            cfq_lanes_block_end_avx2(above_acc);
        }
    }
    cfq_lanes_store_avx2(&below, below_acc);
    cfq_lanes_store_avx2(&above, above_acc);
    if (stream)
        _mm_sfence();
    cfq_vars_grad_range(g, x, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

/* TF's clamp, std::max(std::min(x, hi), lo): minps returns its second
 * operand when either is NaN, so min(hi, x) keeps a NaN x as std::min does. */
static inline __m256 cfq_clamp_avx2(__m256 x, __m256 lo, __m256 hi)
{
    return _mm256_max_ps(lo, _mm256_min_ps(hi, x));
}

static void cfq_fq_vars_avx2(const float *x, size_t n, const cfq_params *p, float *out)
{
    const __m256 lo = _mm256_set1_ps(p->nudged_min), hi = _mm256_set1_ps(p->nudged_max);
    const __m256 scale = _mm256_set1_ps(p->scale), quant_zero = _mm256_set1_ps(p->quant_zero);
    const __m256 half = _mm256_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 shifted = _mm256_sub_ps(cfq_clamp_avx2(_mm256_loadu_ps(x + i), lo, hi), lo);
        const __m256 q = _mm256_add_ps(_mm256_sub_ps(_mm256_div_ps(shifted, scale), quant_zero), half);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_floor_ps(q), scale));
    }
    cfq_vars_forward_range(x, i, n, p, out);
}

static void cfq_fq_args_avx2(const float *x, size_t n, const cfq_params *p, float *out)
{
    const __m256 lo = _mm256_set1_ps(p->nudged_min), hi = _mm256_set1_ps(p->nudged_max);
    const __m256 scale = _mm256_set1_ps(p->scale), inv_scale = _mm256_set1_ps(p->inv_scale);
    const __m256 quant_zero = _mm256_set1_ps(p->quant_zero), half = _mm256_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 shifted = _mm256_sub_ps(cfq_clamp_avx2(_mm256_loadu_ps(x + i), lo, hi), lo);
        const __m256 q = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(shifted, inv_scale), quant_zero), half);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_floor_ps(q), scale));
    }
    cfq_args_forward_range(x, i, n, p, out);
}

static void cfq_fq_mask_grad_avx2(const float *g, const float *x, size_t n,
                                  const cfq_params *p, float *dx)
{
    const __m256 lo = _mm256_set1_ps(p->nudged_min), hi = _mm256_set1_ps(p->nudged_max);
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 vx = _mm256_loadu_ps(x + i);
        const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(vx, lo, _CMP_GE_OQ),
                                            _mm256_cmp_ps(vx, hi, _CMP_LE_OQ));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_and_ps(inside, one)));
    }
    cfq_mask_grad_range(g, x, i, n, p, dx);
}

static void cfq_fq_pc_avx2(const float *x, size_t rows, size_t stride, size_t m,
                           const cfq_pc_params *pp, float *out)
{
    const __m256 half = _mm256_set1_ps(0.5f);
    size_t r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * stride;
        float *outr = out + r * stride;
        for (j = 0; j + 8 <= m; j += 8) {
            const __m256 lo = _mm256_loadu_ps(pp->nudged_min + j);
            const __m256 hi = _mm256_loadu_ps(pp->nudged_max + j);
            const __m256 keep = _mm256_loadu_ps((const float *)(pp->keep + j));
            const __m256 shifted = _mm256_sub_ps(cfq_clamp_avx2(_mm256_loadu_ps(xr + j), lo, hi), lo);
            const __m256 q = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(shifted, _mm256_loadu_ps(pp->inv_scale + j)),
                                                         _mm256_loadu_ps(pp->quant_zero + j)), half);
            const __m256 v = _mm256_mul_ps(_mm256_floor_ps(q), _mm256_loadu_ps(pp->scale + j));
            _mm256_storeu_ps(outr + j, _mm256_and_ps(v, keep));
        }
        cfq_pc_forward_row(xr, j, m, pp, outr);
    }
}

/* Adds 8 float terms to the per-channel sums of channels [j, j + 8). */
static inline void cfq_pc_add8_avx2(double *s, double *c, size_t j, __m256 terms)
{
    __m256d s0 = _mm256_loadu_pd(s + j), s1 = _mm256_loadu_pd(s + j + 4);
    __m256d c0 = _mm256_loadu_pd(c + j), c1 = _mm256_loadu_pd(c + j + 4);
    cfq_twosum_add_avx2(&s0, &c0, _mm256_cvtps_pd(_mm256_castps256_ps128(terms)));
    cfq_twosum_add_avx2(&s1, &c1, _mm256_cvtps_pd(_mm256_extractf128_ps(terms, 1)));
    _mm256_storeu_pd(s + j, s0);
    _mm256_storeu_pd(s + j + 4, s1);
    _mm256_storeu_pd(c + j, c0);
    _mm256_storeu_pd(c + j + 4, c1);
}

static void cfq_fq_pc_grad_avx2(const float *g, const float *x, size_t rows, size_t stride,
                                size_t m, const cfq_pc_params *pp, float *dx,
                                cfq_pc_sums *acc)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
    size_t r, j;
    for (r = 0; r < rows; r++) {
        const float *gr = g + r * stride, *xr = x + r * stride;
        float *dxr = dx + r * stride;
        for (j = 0; j + 8 <= m; j += 8) {
            const __m256 lo = _mm256_loadu_ps(pp->nudged_min + j);
            const __m256 hi = _mm256_loadu_ps(pp->nudged_max + j);
            const __m256 keep = _mm256_loadu_ps((const float *)(pp->keep + j));
            const __m256 vg = _mm256_loadu_ps(gr + j), vx = _mm256_loadu_ps(xr + j);
            const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(vx, lo, _CMP_GE_OQ),
                                                _mm256_cmp_ps(vx, hi, _CMP_LE_OQ));
            const __m256 g_nonfinite = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
                _mm256_and_si256(_mm256_castps_si256(vg), exp_mask), exp_mask));
            const __m256 masked = _mm256_mul_ps(vg, _mm256_and_ps(inside, one));
            /* Channels with min == max == 0 copy g untouched. */
            _mm256_storeu_ps(dxr + j, _mm256_blendv_ps(vg, masked, keep));
            if (_mm256_movemask_ps(_mm256_andnot_ps(_mm256_andnot_ps(g_nonfinite, inside), keep)) != 0) {
                const __m256 is_below = _mm256_cmp_ps(vx, lo, _CMP_LT_OQ);
                const __m256 is_above = _mm256_cmp_ps(vx, hi, _CMP_GT_OQ);
                cfq_pc_add8_avx2(acc->below_s, acc->below_c, j,
                                 _mm256_and_ps(_mm256_mul_ps(vg, _mm256_and_ps(is_below, one)), keep));
                cfq_pc_add8_avx2(acc->above_s, acc->above_c, j,
                                 _mm256_and_ps(_mm256_mul_ps(vg, _mm256_and_ps(is_above, one)), keep));
            }
        }
        cfq_pc_grad_row(gr, xr, j, m, pp, dxr, acc);
    }
}

/* Region codes of 8 inputs as 8 bytes (see cfq_region_of). */
static inline __m128i cfq_region_codes_avx2(__m256 vx, __m256 lo, __m256 hi)
{
    const __m256 is_below = _mm256_cmp_ps(vx, lo, _CMP_LT_OQ);
    const __m256 is_above = _mm256_cmp_ps(vx, hi, _CMP_GT_OQ);
    const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(vx, lo, _CMP_GE_OQ),
                                        _mm256_cmp_ps(vx, hi, _CMP_LE_OQ));
    const __m256 none = _mm256_andnot_ps(_mm256_or_ps(inside, _mm256_or_ps(is_below, is_above)),
                                         _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    const __m256i code = _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(is_below), _mm256_set1_epi32(CFQ_REGION_BELOW)),
                        _mm256_and_si256(_mm256_castps_si256(is_above), _mm256_set1_epi32(CFQ_REGION_ABOVE))),
        _mm256_and_si256(_mm256_castps_si256(none), _mm256_set1_epi32(CFQ_REGION_NONE)));
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(code, code), _mm256_setzero_si256());
    return _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
}

static void cfq_fq_vars_region_avx2(const float *x, size_t n, const cfq_params *p,
                                    float *out, unsigned char *region)
{
    const __m256 lo = _mm256_set1_ps(p->nudged_min), hi = _mm256_set1_ps(p->nudged_max);
    const __m256 scale = _mm256_set1_ps(p->scale), quant_zero = _mm256_set1_ps(p->quant_zero);
    const __m256 half = _mm256_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 vx = _mm256_loadu_ps(x + i);
        const __m256 shifted = _mm256_sub_ps(cfq_clamp_avx2(vx, lo, hi), lo);
        const __m256 q = _mm256_add_ps(_mm256_sub_ps(_mm256_div_ps(shifted, scale), quant_zero), half);
        _mm_storel_epi64((__m128i *)(void *)(region + i), cfq_region_codes_avx2(vx, lo, hi));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_floor_ps(q), scale));
    }
    cfq_region_forward_range(x, i, n, p, out, region);
}

/* The region gradient's input gradient of 8 elements (pass-through codes
 * are fixed by the terms step); returns whether that step is needed: a code
 * other than inside, or a non-finite g.  A step with pass-through codes is
 * stored through the cache: the terms step rewrites those lanes, and a
 * masked store onto a line just streamed out costs ten times the step. */
static inline int cfq_region_grad_dx8_avx2(__m256 vg, __m256i code, __m256 one, float *dx, int stream)
{
    const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
    const __m256 inside = _mm256_castsi256_ps(_mm256_cmpeq_epi32(code, _mm256_setzero_si256()));
    const __m256 g_nonfinite = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
        _mm256_and_si256(_mm256_castps_si256(vg), exp_mask), exp_mask));
    const int pass_any = _mm256_movemask_ps(_mm256_castsi256_ps(
        _mm256_cmpeq_epi32(code, _mm256_set1_epi32(CFQ_REGION_PASS)))) != 0;
    cfq_store8_avx2(dx, _mm256_mul_ps(vg, _mm256_and_ps(inside, one)), stream && !pass_any);
    return _mm256_movemask_ps(_mm256_andnot_ps(g_nonfinite, inside)) != 0xff;
}

/* The sum terms of 8 elements into the lanes' partials; notes bad bytes and
 * rewrites dx where a code is pass-through (dx = g). */
static inline void cfq_region_grad_terms8_avx2(__m256 vg, __m256i code, __m256 one, float *dx,
                                               __m256d below_acc[CFQ_ACC_AVX2],
                                               __m256d above_acc[CFQ_ACC_AVX2], __m256i *bad)
{
    const __m256i below_bit = _mm256_set1_epi32(CFQ_REGION_BELOW);
    const __m256i above_bit = _mm256_set1_epi32(CFQ_REGION_ABOVE);
    const __m256i pass_i = _mm256_cmpeq_epi32(code, _mm256_set1_epi32(CFQ_REGION_PASS));
    const __m256 pass = _mm256_castsi256_ps(pass_i);
    const __m256 is_below = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(code, below_bit), below_bit));
    const __m256 is_above = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(code, above_bit), above_bit));
    *bad = _mm256_or_si256(*bad, _mm256_andnot_si256(
        pass_i, _mm256_cmpgt_epi32(code, _mm256_set1_epi32(CFQ_REGION_NONE))));
    /* A masked store of g itself: a blend of g and g * mask lets the
     * compiler rewrite it as g * blend(mask, 1.0f), flushing denormal g. */
    if (_mm256_movemask_ps(pass) != 0)
        _mm256_maskstore_ps(dx, pass_i, vg);
    cfq_lanes_add8_avx2(below_acc, _mm256_andnot_ps(pass, _mm256_mul_ps(vg, _mm256_and_ps(is_below, one))));
    cfq_lanes_add8_avx2(above_acc, _mm256_andnot_ps(pass, _mm256_mul_ps(vg, _mm256_and_ps(is_above, one))));
}

static inline __m256i cfq_load_codes8_avx2(const unsigned char *region)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)region));
}

/* Pass 1 of a block (see cfq_vars_grad_pass1_avx2). */
static inline int cfq_region_grad_pass1_avx2(const float *g, const unsigned char *region, __m256 one,
                                             float *dx, int stream)
{
    int k, busy = 0;
    for (k = 0; k < CFQ_BLOCK / 8; k++)
        busy |= cfq_region_grad_dx8_avx2(_mm256_loadu_ps(g + 8 * k), cfq_load_codes8_avx2(region + 8 * k), one,
                                         dx + 8 * k, stream) << k;
    return busy;
}

/* As cfq_fq_vars_grad_avx2: block by block, two passes, except in place. */
static int cfq_fq_region_grad_avx2(const float *g, const unsigned char *region, size_t n,
                                   const cfq_params *p, float *dx, double sums[2])
{
    const __m256 one = _mm256_set1_ps(p->one); /* see cfq_fq_vars_grad_avx2 */
    const int stream = p->stream;
    __m256d below_acc[CFQ_ACC_AVX2], above_acc[CFQ_ACC_AVX2];
    __m256i bad = _mm256_setzero_si256();
    cfq_lanes below, above;
    size_t i = 0, j, n_blocks = n;
    int k, busy, bad_tail;

    for (k = 0; k < CFQ_ACC_AVX2; k++) {
        below_acc[k] = _mm256_setzero_pd();
        above_acc[k] = _mm256_setzero_pd();
    }
    if (cfq_overlap(dx, g, n))
        n_blocks = 0;
    for (; i + CFQ_BLOCK <= n_blocks; i += CFQ_BLOCK) {
        busy = stream ? cfq_region_grad_pass1_avx2(g + i, region + i, one, dx + i, 1)
                      : cfq_region_grad_pass1_avx2(g + i, region + i, one, dx + i, 0);
        if (busy == 0)
            continue;
        if (busy == 0xff) {
            for (j = i; j < i + CFQ_BLOCK; j += 8)
                cfq_region_grad_terms8_avx2(_mm256_loadu_ps(g + j), cfq_load_codes8_avx2(region + j), one,
                                            dx + j, below_acc, above_acc, &bad);
        } else {
            for (; busy != 0; busy &= busy - 1) {
                j = i + 8 * (size_t)cfq_lowest_bit8[busy];
                cfq_region_grad_terms8_avx2(_mm256_loadu_ps(g + j), cfq_load_codes8_avx2(region + j), one,
                                            dx + j, below_acc, above_acc, &bad);
            }
        }
        cfq_lanes_block_end_avx2(below_acc);
        cfq_lanes_block_end_avx2(above_acc);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 vg = _mm256_loadu_ps(g + i);
        const __m256i code = cfq_load_codes8_avx2(region + i);
        if (cfq_region_grad_dx8_avx2(vg, code, one, dx + i, stream))
            cfq_region_grad_terms8_avx2(vg, code, one, dx + i, below_acc, above_acc, &bad);
        if (cfq_block_last8(i)) {
            cfq_lanes_block_end_avx2(below_acc);
            cfq_lanes_block_end_avx2(above_acc);
        }
    }
    if (stream)
        _mm_sfence();
    cfq_lanes_store_avx2(&below, below_acc);
    cfq_lanes_store_avx2(&above, above_acc);
    bad_tail = cfq_region_grad_range(g, region, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
    return bad_tail | (_mm256_movemask_ps(_mm256_castsi256_ps(bad)) != 0);
}

const cfq_kernels cfq_kernels_avx2 = {
    "avx2",
    cfq_fq_vars_grad_avx2,
    cfq_fq_vars_avx2,
    cfq_fq_args_avx2,
    cfq_fq_mask_grad_avx2,
    cfq_fq_pc_avx2,
    cfq_fq_pc_grad_avx2,
    cfq_fq_vars_region_avx2,
    cfq_fq_region_grad_avx2,
};

#else /* !__AVX2__ */

const cfq_kernels cfq_kernels_avx2 = {"avx2", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

#endif
