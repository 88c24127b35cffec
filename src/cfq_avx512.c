/*
 * cfq_avx512.c -- AVX-512F kernels (16 floats a step, mask registers).
 * Built with -mavx512f on this file only; elsewhere the table stays empty.
 */
#include "cfq_internal.h"

#if defined(__AVX512F__) || defined(CFQ_AVX512_EMULATED)
#ifdef CFQ_AVX512_EMULATED
#include <string.h>
/* Test builds only: SIMDe's portable AVX-512 lets this file's logic run on
 * a CPU without AVX-512 (see Makefile target ctest-avx512-emu). */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
/* SIMDe 0.7 lacks this one: build it from two AVX conversions. */
static inline __m512d cfq_emulated_cvtps_pd(__m256 a)
{
    return _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_cvtps_pd(_mm256_castps256_ps128(a))),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), 1);
}
#define _mm512_cvtps_pd cfq_emulated_cvtps_pd
/* Nor these two byte conversions: element by element. */
static inline __m128i cfq_emulated_cvtepi32_epi8(__m512i a)
{
    int v[16], k;
    unsigned char b[16];
    _mm512_storeu_si512((void *)v, a);
    for (k = 0; k < 16; k++)
        b[k] = (unsigned char)v[k];
    return _mm_loadu_si128((const __m128i *)(const void *)b);
}
static inline __m512i cfq_emulated_cvtepu8_epi32(__m128i a)
{
    int v[16], k;
    unsigned char b[16];
    _mm_storeu_si128((__m128i *)(void *)b, a);
    for (k = 0; k < 16; k++)
        v[k] = b[k];
    return _mm512_loadu_si512((const void *)v);
}
#define _mm512_cvtepi32_epi8 cfq_emulated_cvtepi32_epi8
#define _mm512_cvtepu8_epi32 cfq_emulated_cvtepu8_epi32
/* Nor the masked store: lane by lane, copying bits. */
static inline void cfq_emulated_mask_storeu_ps(float *dst, __mmask16 k, __m512 v)
{
    float f[16];
    int l;
    _mm512_storeu_ps(f, v);
    for (l = 0; l < 16; l++)
        if (k >> l & 1)
            memcpy(dst + l, f + l, sizeof(float));
}
#define _mm512_mask_storeu_ps cfq_emulated_mask_storeu_ps
#else
#include <immintrin.h>
#endif

/* TwoSum on 8 sum lanes whose errors go to 4 error lanes: lanes 0-3 first,
 * then 4-7 (as element order puts them). */
static inline void cfq_lanes_step_avx512(__m512d *s, __m256d *c, __m512d v)
{
    const __m512d t = _mm512_add_pd(*s, v);
    const __m512d v_part = _mm512_sub_pd(t, *s);
    const __m512d err = _mm512_add_pd(_mm512_sub_pd(*s, _mm512_sub_pd(t, v_part)),
                                      _mm512_sub_pd(v, v_part));
    *c = _mm256_add_pd(*c, _mm512_castpd512_pd256(err));
    *c = _mm256_add_pd(*c, _mm512_extractf64x4_pd(err, 1));
    *s = t;
}

/* 16 float terms: elements 0-7, then 8-15, into the partials of lanes 0-7
 * (see cfq_lanes). */
static inline void cfq_lanes_add16_avx512(__m512d *part, __m512 terms)
{
    const __m256 low = _mm512_castps512_ps256(terms);
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(terms), 1));
    *part = _mm512_add_pd(*part, _mm512_cvtps_pd(low));
    *part = _mm512_add_pd(*part, _mm512_cvtps_pd(high));
}

/* The block's end: its partials into the compensated sums. */
static inline void cfq_lanes_block_end_avx512(__m512d *s, __m256d *c, __m512d *part)
{
    cfq_lanes_step_avx512(s, c, *part);
    *part = _mm512_setzero_pd();
}

/* Whether the step of 16 at i is the last of its block. */
static inline int cfq_block_last16(size_t i)
{
    return (i & (CFQ_BLOCK - 1)) == CFQ_BLOCK - 16;
}

static void cfq_lanes_store_avx512(cfq_lanes *a, __m512d s, __m256d c, __m512d part)
{
    _mm512_storeu_pd(a->s, s);
    _mm256_storeu_pd(a->c, c);
    _mm512_storeu_pd(a->p, part);
}

/* Stores 16 floats; with `stream`, past the caches as 4 x 16 bytes (the
 * caller checked that dst is 16-byte aligned, not 64). */
static inline void cfq_store16_avx512(float *dst, __m512 v, int stream)
{
    if (stream) {
        const __m256 low = _mm512_castps512_ps256(v);
        const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        _mm_stream_ps(dst, _mm256_castps256_ps128(low));
        _mm_stream_ps(dst + 4, _mm256_extractf128_ps(low, 1));
        _mm_stream_ps(dst + 8, _mm256_castps256_ps128(high));
        _mm_stream_ps(dst + 12, _mm256_extractf128_ps(high, 1));
    } else {
        _mm512_storeu_ps(dst, v);
    }
}

/* The input gradient of 16 elements; returns whether any of their sum
 * terms can be nonzero (x outside, or g not finite: g * 0 is then NaN). */
static inline int cfq_vars_grad_dx16_avx512(__m512 vg, __m512 vx, __m512 lo, __m512 hi, __m512 one,
                                            float *dx, int stream)
{
    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
    const __mmask16 inside = _mm512_cmp_ps_mask(vx, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(vx, hi, _CMP_LE_OQ);
    const __mmask16 g_nonfinite = _mm512_cmpeq_epi32_mask(
        _mm512_and_si512(_mm512_castps_si512(vg), exp_mask), exp_mask);
    cfq_store16_avx512(dx, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(inside, one)), stream);
    return (__mmask16)(inside & ~g_nonfinite) != (__mmask16)0xffff;
}

/* The sum terms of 16 elements into the lanes' partials. */
static inline void cfq_vars_grad_terms16_avx512(__m512 vg, __m512 vx, __m512 lo, __m512 hi, __m512 one,
                                                __m512d *below_p, __m512d *above_p)
{
    cfq_lanes_add16_avx512(below_p, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vx, lo, _CMP_LT_OQ), one)));
    cfq_lanes_add16_avx512(above_p, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vx, hi, _CMP_GT_OQ), one)));
}

/* Pass 1 of a block: its input gradient; bit k of the result: step k is
 * busy. */
static inline int cfq_vars_grad_pass1_avx512(const float *g, const float *x, __m512 lo, __m512 hi,
                                             __m512 one, float *dx, int stream)
{
    int k, busy = 0;
    for (k = 0; k < CFQ_BLOCK / 16; k++)
        busy |= cfq_vars_grad_dx16_avx512(_mm512_loadu_ps(g + 16 * k), _mm512_loadu_ps(x + 16 * k), lo, hi,
                                          one, dx + 16 * k, stream) << k;
    return busy;
}

/* Block by block, two passes (see cfq_fq_vars_grad_avx2), except in place. */
static void cfq_fq_vars_grad_avx512(const float *g, const float *x, size_t n,
                                    const cfq_params *p, float *dx,
                                    double sums[2])
{
    const __m512 lo = _mm512_set1_ps(p->nudged_min);
    const __m512 hi = _mm512_set1_ps(p->nudged_max);
    const __m512 one = _mm512_set1_ps(p->one); /* run time: see cfq_fq_vars_grad_avx2 */
    const int stream = p->stream;
    __m512d below_s = _mm512_setzero_pd(), above_s = _mm512_setzero_pd();
    __m512d below_p = _mm512_setzero_pd(), above_p = _mm512_setzero_pd();
    __m256d below_c = _mm256_setzero_pd(), above_c = _mm256_setzero_pd();
    cfq_lanes below, above;
    size_t i = 0, j, n_blocks = n;
    int busy;

    if (cfq_overlap(dx, g, n) || cfq_overlap(dx, x, n))
        n_blocks = 0;
    for (; i + CFQ_BLOCK <= n_blocks; i += CFQ_BLOCK) {
        /* stream a literal at each call: no store-kind branch per step */
        busy = stream ? cfq_vars_grad_pass1_avx512(g + i, x + i, lo, hi, one, dx + i, 1)
                      : cfq_vars_grad_pass1_avx512(g + i, x + i, lo, hi, one, dx + i, 0);
        if (busy == 0)
            continue; /* partials still 0: nothing to end (see cfq_fq_vars_grad_avx2) */
        for (; busy != 0; busy &= busy - 1) { /* the busy steps only, in order */
            j = i + 16 * (size_t)cfq_lowest_bit8[busy];
            cfq_vars_grad_terms16_avx512(_mm512_loadu_ps(g + j), _mm512_loadu_ps(x + j), lo, hi, one,
                                         &below_p, &above_p);
        }
        cfq_lanes_block_end_avx512(&below_s, &below_c, &below_p);
        cfq_lanes_block_end_avx512(&above_s, &above_c, &above_p);
    }
    for (; i + 16 <= n; i += 16) {
        const __m512 vg = _mm512_loadu_ps(g + i), vx = _mm512_loadu_ps(x + i);
        if (cfq_vars_grad_dx16_avx512(vg, vx, lo, hi, one, dx + i, stream))
            cfq_vars_grad_terms16_avx512(vg, vx, lo, hi, one, &below_p, &above_p);
        if (cfq_block_last16(i)) {
            cfq_lanes_block_end_avx512(&below_s, &below_c, &below_p);
            cfq_lanes_block_end_avx512(&above_s, &above_c, &above_p);
        }
    }
    if (stream)
        _mm_sfence();
    cfq_lanes_store_avx512(&below, below_s, below_c, below_p);
    cfq_lanes_store_avx512(&above, above_s, above_c, above_p);
    cfq_vars_grad_range(g, x, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

/* TF's clamp, std::max(std::min(x, hi), lo): vminps returns its second
 * operand when either is NaN, so min(hi, x) keeps a NaN x as std::min does. */
static inline __m512 cfq_clamp_avx512(__m512 x, __m512 lo, __m512 hi)
{
    return _mm512_max_ps(lo, _mm512_min_ps(hi, x));
}

/* Round toward -inf.  Without _MM_FROUND_NO_EXC: the inexact flag it would
 * suppress is dropped anyway when the caller's MXCSR is restored, and SIMDe's
 * emulation (ctest-avx512-emu) mis-rounds with it. */
static inline __m512 cfq_floor_avx512(__m512 v)
{
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF);
}

static void cfq_fq_vars_avx512(const float *x, size_t n, const cfq_params *p, float *out)
{
    const __m512 lo = _mm512_set1_ps(p->nudged_min), hi = _mm512_set1_ps(p->nudged_max);
    const __m512 scale = _mm512_set1_ps(p->scale), quant_zero = _mm512_set1_ps(p->quant_zero);
    const __m512 half = _mm512_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 shifted = _mm512_sub_ps(cfq_clamp_avx512(_mm512_loadu_ps(x + i), lo, hi), lo);
        const __m512 q = _mm512_add_ps(_mm512_sub_ps(_mm512_div_ps(shifted, scale), quant_zero), half);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(cfq_floor_avx512(q), scale));
    }
    cfq_vars_forward_range(x, i, n, p, out);
}

static void cfq_fq_args_avx512(const float *x, size_t n, const cfq_params *p, float *out)
{
    const __m512 lo = _mm512_set1_ps(p->nudged_min), hi = _mm512_set1_ps(p->nudged_max);
    const __m512 scale = _mm512_set1_ps(p->scale), inv_scale = _mm512_set1_ps(p->inv_scale);
    const __m512 quant_zero = _mm512_set1_ps(p->quant_zero), half = _mm512_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 shifted = _mm512_sub_ps(cfq_clamp_avx512(_mm512_loadu_ps(x + i), lo, hi), lo);
        const __m512 q = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(shifted, inv_scale), quant_zero), half);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(cfq_floor_avx512(q), scale));
    }
    cfq_args_forward_range(x, i, n, p, out);
}

static void cfq_fq_mask_grad_avx512(const float *g, const float *x, size_t n,
                                    const cfq_params *p, float *dx)
{
    const __m512 lo = _mm512_set1_ps(p->nudged_min), hi = _mm512_set1_ps(p->nudged_max);
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 vx = _mm512_loadu_ps(x + i);
        const __mmask16 inside = _mm512_cmp_ps_mask(vx, lo, _CMP_GE_OQ) &
                                 _mm512_cmp_ps_mask(vx, hi, _CMP_LE_OQ);
        _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(g + i), _mm512_maskz_mov_ps(inside, one)));
    }
    cfq_mask_grad_range(g, x, i, n, p, dx);
}

static inline __mmask16 cfq_keep_mask_avx512(const cfq_pc_params *pp, size_t j)
{
    const __m512i keep = _mm512_loadu_si512((const void *)(pp->keep + j));
    return _mm512_test_epi32_mask(keep, keep);
}

static void cfq_fq_pc_avx512(const float *x, size_t rows, size_t stride, size_t m,
                             const cfq_pc_params *pp, float *out)
{
    const __m512 half = _mm512_set1_ps(0.5f);
    size_t r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * stride;
        float *outr = out + r * stride;
        for (j = 0; j + 16 <= m; j += 16) {
            const __m512 lo = _mm512_loadu_ps(pp->nudged_min + j);
            const __m512 hi = _mm512_loadu_ps(pp->nudged_max + j);
            const __m512 shifted = _mm512_sub_ps(cfq_clamp_avx512(_mm512_loadu_ps(xr + j), lo, hi), lo);
            const __m512 q = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(shifted, _mm512_loadu_ps(pp->inv_scale + j)),
                                                         _mm512_loadu_ps(pp->quant_zero + j)), half);
            const __m512 v = _mm512_mul_ps(cfq_floor_avx512(q), _mm512_loadu_ps(pp->scale + j));
            _mm512_storeu_ps(outr + j, _mm512_maskz_mov_ps(cfq_keep_mask_avx512(pp, j), v));
        }
        cfq_pc_forward_row(xr, j, m, pp, outr);
    }
}

/* cfq_twosum_add() on 8 lanes at once. */
static inline void cfq_twosum_add_avx512(__m512d *s, __m512d *c, __m512d v)
{
    const __m512d t = _mm512_add_pd(*s, v);
    const __m512d v_part = _mm512_sub_pd(t, *s);
    const __m512d err = _mm512_add_pd(_mm512_sub_pd(*s, _mm512_sub_pd(t, v_part)),
                                      _mm512_sub_pd(v, v_part));
    *c = _mm512_add_pd(*c, err);
    *s = t;
}

/* Adds 16 float terms to the per-channel sums of channels [j, j + 16). */
static inline void cfq_pc_add16_avx512(double *s, double *c, size_t j, __m512 terms)
{
    const __m256 low = _mm512_castps512_ps256(terms);
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(terms), 1));
    __m512d s0 = _mm512_loadu_pd(s + j), s1 = _mm512_loadu_pd(s + j + 8);
    __m512d c0 = _mm512_loadu_pd(c + j), c1 = _mm512_loadu_pd(c + j + 8);
    cfq_twosum_add_avx512(&s0, &c0, _mm512_cvtps_pd(low));
    cfq_twosum_add_avx512(&s1, &c1, _mm512_cvtps_pd(high));
    _mm512_storeu_pd(s + j, s0);
    _mm512_storeu_pd(s + j + 8, s1);
    _mm512_storeu_pd(c + j, c0);
    _mm512_storeu_pd(c + j + 8, c1);
}

static void cfq_fq_pc_grad_avx512(const float *g, const float *x, size_t rows, size_t stride,
                                  size_t m, const cfq_pc_params *pp, float *dx,
                                  cfq_pc_sums *acc)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
    size_t r, j;
    for (r = 0; r < rows; r++) {
        const float *gr = g + r * stride, *xr = x + r * stride;
        float *dxr = dx + r * stride;
        for (j = 0; j + 16 <= m; j += 16) {
            const __m512 lo = _mm512_loadu_ps(pp->nudged_min + j);
            const __m512 hi = _mm512_loadu_ps(pp->nudged_max + j);
            const __mmask16 keep = cfq_keep_mask_avx512(pp, j);
            const __m512 vg = _mm512_loadu_ps(gr + j), vx = _mm512_loadu_ps(xr + j);
            const __mmask16 inside = _mm512_cmp_ps_mask(vx, lo, _CMP_GE_OQ) &
                                     _mm512_cmp_ps_mask(vx, hi, _CMP_LE_OQ);
            const __mmask16 g_nonfinite = _mm512_cmpeq_epi32_mask(
                _mm512_and_si512(_mm512_castps_si512(vg), exp_mask), exp_mask);
            const __m512 masked = _mm512_mul_ps(vg, _mm512_maskz_mov_ps(inside, one));
            /* Channels with min == max == 0 copy g untouched. */
            _mm512_storeu_ps(dxr + j, _mm512_mask_blend_ps(keep, vg, masked));
            if ((__mmask16)(keep & ~(inside & ~g_nonfinite)) != 0) {
                const __mmask16 is_below = _mm512_cmp_ps_mask(vx, lo, _CMP_LT_OQ);
                const __mmask16 is_above = _mm512_cmp_ps_mask(vx, hi, _CMP_GT_OQ);
                cfq_pc_add16_avx512(acc->below_s, acc->below_c, j,
                                    _mm512_maskz_mov_ps(keep, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(is_below, one))));
                cfq_pc_add16_avx512(acc->above_s, acc->above_c, j,
                                    _mm512_maskz_mov_ps(keep, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(is_above, one))));
            }
        }
        cfq_pc_grad_row(gr, xr, j, m, pp, dxr, acc);
    }
}

/* Region codes of 16 inputs as 16 bytes (see cfq_region_of). */
static inline __m128i cfq_region_codes_avx512(__m512 vx, __m512 lo, __m512 hi)
{
    const __mmask16 is_below = _mm512_cmp_ps_mask(vx, lo, _CMP_LT_OQ);
    const __mmask16 is_above = _mm512_cmp_ps_mask(vx, hi, _CMP_GT_OQ);
    const __mmask16 inside = _mm512_cmp_ps_mask(vx, lo, _CMP_GE_OQ) &
                             _mm512_cmp_ps_mask(vx, hi, _CMP_LE_OQ);
    const __mmask16 none = (__mmask16)~(inside | is_below | is_above);
    __m512i code = _mm512_maskz_mov_epi32(is_below, _mm512_set1_epi32(CFQ_REGION_BELOW));
    code = _mm512_or_si512(code, _mm512_maskz_mov_epi32(is_above, _mm512_set1_epi32(CFQ_REGION_ABOVE)));
    code = _mm512_or_si512(code, _mm512_maskz_mov_epi32(none, _mm512_set1_epi32(CFQ_REGION_NONE)));
    return _mm512_cvtepi32_epi8(code);
}

static void cfq_fq_vars_region_avx512(const float *x, size_t n, const cfq_params *p,
                                      float *out, unsigned char *region)
{
    const __m512 lo = _mm512_set1_ps(p->nudged_min), hi = _mm512_set1_ps(p->nudged_max);
    const __m512 scale = _mm512_set1_ps(p->scale), quant_zero = _mm512_set1_ps(p->quant_zero);
    const __m512 half = _mm512_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 vx = _mm512_loadu_ps(x + i);
        const __m512 shifted = _mm512_sub_ps(cfq_clamp_avx512(vx, lo, hi), lo);
        const __m512 q = _mm512_add_ps(_mm512_sub_ps(_mm512_div_ps(shifted, scale), quant_zero), half);
        _mm_storeu_si128((__m128i *)(void *)(region + i), cfq_region_codes_avx512(vx, lo, hi));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(cfq_floor_avx512(q), scale));
    }
    cfq_region_forward_range(x, i, n, p, out, region);
}

/* The region gradient's input gradient of 16 elements (pass-through codes
 * are fixed by the terms step); returns whether that step is needed. */
static inline int cfq_region_grad_dx16_avx512(__m512 vg, __m512i code, __m512 one, float *dx, int stream)
{
    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
    const __mmask16 inside = _mm512_cmpeq_epi32_mask(code, _mm512_setzero_si512());
    const __mmask16 g_nonfinite = _mm512_cmpeq_epi32_mask(
        _mm512_and_si512(_mm512_castps_si512(vg), exp_mask), exp_mask);
    /* through the cache where the terms step rewrites pass-through lanes
     * (see cfq_region_grad_dx8_avx2) */
    const __mmask16 pass = _mm512_cmpeq_epi32_mask(code, _mm512_set1_epi32(CFQ_REGION_PASS));
    cfq_store16_avx512(dx, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(inside, one)), stream && pass == 0);
    return (__mmask16)(inside & ~g_nonfinite) != (__mmask16)0xffff;
}

/* The sum terms of 16 elements into the lanes' partials; notes bad bytes
 * and rewrites dx where a code is pass-through (dx = g). */
static inline void cfq_region_grad_terms16_avx512(__m512 vg, __m512i code, __m512 one, float *dx,
                                                  __m512d *below_p, __m512d *above_p, __mmask16 *bad)
{
    const __m512i below_bit = _mm512_set1_epi32(CFQ_REGION_BELOW);
    const __m512i above_bit = _mm512_set1_epi32(CFQ_REGION_ABOVE);
    const __mmask16 pass = _mm512_cmpeq_epi32_mask(code, _mm512_set1_epi32(CFQ_REGION_PASS));
    const __mmask16 is_below = _mm512_cmpeq_epi32_mask(_mm512_and_si512(code, below_bit), below_bit);
    const __mmask16 is_above = _mm512_cmpeq_epi32_mask(_mm512_and_si512(code, above_bit), above_bit);
    *bad |= (__mmask16)(_mm512_cmpgt_epi32_mask(code, _mm512_set1_epi32(CFQ_REGION_NONE)) & ~pass);
    /* A masked store of g itself (see cfq_region_grad_terms8_avx2). */
    if (pass != 0)
        _mm512_mask_storeu_ps(dx, pass, vg);
    cfq_lanes_add16_avx512(below_p, _mm512_maskz_mov_ps(
        (__mmask16)~pass, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(is_below, one))));
    cfq_lanes_add16_avx512(above_p, _mm512_maskz_mov_ps(
        (__mmask16)~pass, _mm512_mul_ps(vg, _mm512_maskz_mov_ps(is_above, one))));
}

static inline __m512i cfq_load_codes16_avx512(const unsigned char *region)
{
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)region));
}

/* Pass 1 of a block (see cfq_vars_grad_pass1_avx512). */
static inline int cfq_region_grad_pass1_avx512(const float *g, const unsigned char *region, __m512 one,
                                               float *dx, int stream)
{
    int k, busy = 0;
    for (k = 0; k < CFQ_BLOCK / 16; k++)
        busy |= cfq_region_grad_dx16_avx512(_mm512_loadu_ps(g + 16 * k), cfq_load_codes16_avx512(region + 16 * k),
                                            one, dx + 16 * k, stream) << k;
    return busy;
}

/* As cfq_fq_vars_grad_avx512: block by block, two passes, except in place. */
static int cfq_fq_region_grad_avx512(const float *g, const unsigned char *region, size_t n,
                                     const cfq_params *p, float *dx, double sums[2])
{
    const __m512 one = _mm512_set1_ps(p->one); /* run time: see cfq_fq_vars_grad_avx2 */
    const int stream = p->stream;
    __m512d below_s = _mm512_setzero_pd(), above_s = _mm512_setzero_pd();
    __m512d below_p = _mm512_setzero_pd(), above_p = _mm512_setzero_pd();
    __m256d below_c = _mm256_setzero_pd(), above_c = _mm256_setzero_pd();
    __mmask16 bad = 0;
    cfq_lanes below, above;
    size_t i = 0, j, n_blocks = n;
    int busy, bad_tail;

    if (cfq_overlap(dx, g, n))
        n_blocks = 0;
    for (; i + CFQ_BLOCK <= n_blocks; i += CFQ_BLOCK) {
        busy = stream ? cfq_region_grad_pass1_avx512(g + i, region + i, one, dx + i, 1)
                      : cfq_region_grad_pass1_avx512(g + i, region + i, one, dx + i, 0);
        if (busy == 0)
            continue;
        for (; busy != 0; busy &= busy - 1) {
            j = i + 16 * (size_t)cfq_lowest_bit8[busy];
            cfq_region_grad_terms16_avx512(_mm512_loadu_ps(g + j), cfq_load_codes16_avx512(region + j), one,
                                           dx + j, &below_p, &above_p, &bad);
        }
        cfq_lanes_block_end_avx512(&below_s, &below_c, &below_p);
        cfq_lanes_block_end_avx512(&above_s, &above_c, &above_p);
    }
    for (; i + 16 <= n; i += 16) {
        const __m512 vg = _mm512_loadu_ps(g + i);
        const __m512i code = cfq_load_codes16_avx512(region + i);
        if (cfq_region_grad_dx16_avx512(vg, code, one, dx + i, stream))
            cfq_region_grad_terms16_avx512(vg, code, one, dx + i, &below_p, &above_p, &bad);
        if (cfq_block_last16(i)) {
            cfq_lanes_block_end_avx512(&below_s, &below_c, &below_p);
            cfq_lanes_block_end_avx512(&above_s, &above_c, &above_p);
        }
    }
    if (stream)
        _mm_sfence();
    cfq_lanes_store_avx512(&below, below_s, below_c, below_p);
    cfq_lanes_store_avx512(&above, above_s, above_c, above_p);
    bad_tail = cfq_region_grad_range(g, region, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
    return bad_tail | (bad != 0);
}

const cfq_kernels cfq_kernels_avx512 = {
    "avx512",
    cfq_fq_vars_grad_avx512,
    cfq_fq_vars_avx512,
    cfq_fq_args_avx512,
    cfq_fq_mask_grad_avx512,
    cfq_fq_pc_avx512,
    cfq_fq_pc_grad_avx512,
    cfq_fq_vars_region_avx512,
    cfq_fq_region_grad_avx512,
};

#else /* !__AVX512F__ */

const cfq_kernels cfq_kernels_avx512 = {"avx512", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

#endif
