/*
 * cfq_avx512.c -- the AVX-512 vocabulary (16 floats a step; lane flags in
 * mask registers; region codes as 16 bytes) and its kernel table: F, BW and
 * VL, which every AVX-512 CPU since Skylake-SP has (Xeon Phi runs the AVX2
 * path).  Built with those flags on this file only; elsewhere the
 * table stays empty.  Test builds may run it through SIMDe instead
 * (tests/c/avx512_emulated.h).
 */
#include "cfq_internal.h"

#if defined(__AVX512F__) || defined(CFQ_AVX512_EMULATED)
#ifndef CFQ_AVX512_EMULATED
#include <immintrin.h>
#endif
#if defined(__AVX512BF16__)
#define CFQ_VF_BF16_NATIVE 1
#endif

#define CFQ_W 16
#define CFQ_REGISTER_BLOCKS 4 /* of 32 registers (cfq_per_channel_forward_blocks, _grad_blocks) */
typedef __m512 cfq_vf;
typedef __mmask16 cfq_vb;
typedef __m128i cfq_vi;
typedef __m256i cfq_vh;

CFQ_INLINE cfq_vf cfq_vf_set(float v) { return _mm512_set1_ps(v); }
CFQ_INLINE cfq_vf cfq_vf_load(const float *p) { return _mm512_loadu_ps(p); }
CFQ_INLINE void cfq_vf_store(float *p, cfq_vf v) { _mm512_storeu_ps(p, v); }
/* Past the caches, as 4 x 16 bytes (dst is 16-byte aligned, not 64). */
CFQ_INLINE void cfq_vf_stream(float *p, cfq_vf v)
{
    const __m256 low = _mm512_castps512_ps256(v);
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    _mm_stream_ps(p, _mm256_castps256_ps128(low));
    _mm_stream_ps(p + 4, _mm256_extractf128_ps(low, 1));
    _mm_stream_ps(p + 8, _mm256_castps256_ps128(high));
    _mm_stream_ps(p + 12, _mm256_extractf128_ps(high, 1));
}
/* dst 64-byte aligned: one store (the forward at 16M, its body aligned on
 * a 16-byte-aligned array, against 4 x 16 bytes: 0.82-0.95 of the time;
 * AVX2's 32-byte store against 2 x 16: 0.91-0.97). */
CFQ_INLINE void cfq_vf_stream_whole(float *p, cfq_vf v) { _mm512_stream_ps(p, v); }
CFQ_INLINE void cfq_vf_store_lanes(float *p, cfq_vb f, cfq_vf v) { _mm512_mask_storeu_ps(p, f, v); }
CFQ_INLINE void cfq_vfence(void) { _mm_sfence(); }

CFQ_INLINE cfq_vf cfq_vf_load_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
CFQ_INLINE cfq_vf cfq_vf_load_bf16(const uint16_t *p)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p)), 16));
}
/* 16 halves; streamed as 2 x 16 bytes (dst is 16-byte aligned), or as one
 * store where stream is CFQ_STREAM_WHOLE (the forward at 16M: float16
 * 0.81-0.84, bfloat16 0.79-0.82 of the time). */
CFQ_INLINE void cfq_vh_put(uint16_t *p, __m256i h, int stream)
{
    if (stream == CFQ_STREAM_WHOLE) {
        _mm256_stream_si256((__m256i *)(void *)p, h);
    } else if (stream) {
        _mm_stream_si128((__m128i *)(void *)p, _mm256_castsi256_si128(h));
        _mm_stream_si128((__m128i *)(void *)(p + 8), _mm256_extracti128_si256(h, 1));
    } else {
        _mm256_storeu_si256((__m256i *)(void *)p, h);
    }
}
CFQ_INLINE cfq_vh cfq_vh_load(const uint16_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }
/* Whether some lane's exponent bits are all set (+-Inf or NaN). */
CFQ_INLINE int cfq_vh_any_nonfinite(int dt, cfq_vh h)
{
    const __m256i exp_mask = _mm256_set1_epi16(dt == CFQ_FLOAT16 ? 0x7c00 : 0x7f80);
    return _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, exp_mask), exp_mask) != 0;
}
/* h where keep is set (but a bfloat16 subnormal's sign), its sign elsewhere. */
CFQ_INLINE cfq_vh cfq_vh_keep(int dt, cfq_vb keep, cfq_vh h)
{
    if (dt != CFQ_FLOAT16)
        keep = (cfq_vb)(keep & _mm256_test_epi16_mask(h, _mm256_set1_epi16(0x7f80)));
    return _mm256_mask_mov_epi16(_mm256_and_si256(h, _mm256_set1_epi16((short)0x8000)), keep, h);
}
#define CFQ_VH_KEYS 1
CFQ_INLINE cfq_vh cfq_vh_set(int v) { return _mm256_set1_epi16((short)v); }
/* Lanes whose key (see cfq_params.key_lo) is in [lo, hi]. */
CFQ_INLINE cfq_vb cfq_vh_keys_in(cfq_vh h, cfq_vh lo, cfq_vh hi)
{
    const __m256i key = _mm256_xor_si256(h, _mm256_and_si256(_mm256_srai_epi16(h, 15), _mm256_set1_epi16(0x7fff)));
    return (cfq_vb)(_mm256_cmpge_epi16_mask(key, lo) & _mm256_cmple_epi16_mask(key, hi));
}
CFQ_INLINE cfq_vh cfq_vh_magnitude_max(cfq_vh acc, cfq_vh h)
{
    return _mm256_max_epu16(acc, _mm256_and_si256(h, _mm256_set1_epi16(0x7fff)));
}
CFQ_INLINE void cfq_vf_store_f16(uint16_t *p, cfq_vf v, int stream)
{
    cfq_vh_put(p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT), stream);
}
/* To nearest even on the bits; NaN to the quiet NaN 0x7fc0 with its sign
 * (see cfq_f32_to_bf16). */
CFQ_INLINE void cfq_vf_store_bf16(uint16_t *p, cfq_vf v, int stream)
{
    const __m512i u = _mm512_castps_si512(v), top = _mm512_srli_epi32(u, 16);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), _mm512_and_si512(top, _mm512_set1_epi32(1))), 16);
    const __m512i quiet = _mm512_or_si512(_mm512_and_si512(top, _mm512_set1_epi32(0x8000)), _mm512_set1_epi32(0x7fc0));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    cfq_vh_put(p, _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet)), stream);
}
#ifdef CFQ_VF_BF16_NATIVE
/* AVX512-BF16's conversion (to nearest even); a NaN keeps payload bits. */
CFQ_INLINE cfq_vh cfq_vf_to_bf16_native(cfq_vf v) { return (__m256i)_mm512_cvtneps_pbh(v); }
/* The same with NaN lanes made quiet 0x7fc0 with their sign, as above. */
CFQ_INLINE void cfq_vf_store_bf16_native(uint16_t *p, cfq_vf v, int stream)
{
    const __m256i h = cfq_vf_to_bf16_native(v);
    const __m256i quiet = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16((short)0x8000)),
                                          _mm256_set1_epi16(0x7fc0));
    cfq_vh_put(p, _mm256_mask_mov_epi16(h, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), quiet), stream);
}
#endif

CFQ_INLINE cfq_vf cfq_vf_add(cfq_vf a, cfq_vf b) { return _mm512_add_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_sub(cfq_vf a, cfq_vf b) { return _mm512_sub_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_mul(cfq_vf a, cfq_vf b) { return _mm512_mul_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_div(cfq_vf a, cfq_vf b) { return _mm512_div_ps(a, b); }
/* Without _MM_FROUND_NO_EXC: the inexact flag it would suppress is dropped
 * anyway when the caller's MXCSR is restored, and SIMDe's emulation
 * mis-rounds with it. */
CFQ_INLINE cfq_vf cfq_vf_floor(cfq_vf v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF); }
/* vminps returns its second operand when either is NaN (see cfq_avx2.c). */
CFQ_INLINE cfq_vf cfq_vf_clamp(cfq_vf x, cfq_vf lo, cfq_vf hi)
{
    return _mm512_max_ps(lo, _mm512_min_ps(hi, x));
}
CFQ_INLINE cfq_vf cfq_vf_and(cfq_vb f, cfq_vf v) { return _mm512_maskz_mov_ps(f, v); }
CFQ_INLINE cfq_vf cfq_vf_andnot(cfq_vb f, cfq_vf v) { return _mm512_maskz_mov_ps((cfq_vb)~f, v); }

CFQ_INLINE cfq_vf cfq_vf_neg(cfq_vf v)
{
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)));
}
CFQ_INLINE cfq_vf cfq_vf_exp_max(cfq_vf acc, cfq_vf v)
{
    const __m512i e = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(_mm512_max_epu32(_mm512_castps_si512(acc), e));
}
CFQ_INLINE cfq_vf cfq_vf_blend(cfq_vb f, cfq_vf a, cfq_vf b) { return _mm512_mask_mov_ps(b, f, a); }
CFQ_INLINE cfq_vb cfq_vf_lt(cfq_vf a, cfq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
CFQ_INLINE cfq_vb cfq_vf_le(cfq_vf a, cfq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
CFQ_INLINE cfq_vb cfq_vf_gt(cfq_vf a, cfq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
CFQ_INLINE cfq_vb cfq_vf_ge(cfq_vf a, cfq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
/* All exponent bits set: +-Inf or NaN (vfpclassps measured 16% slower on
 * typical data, on Zen 4). */
CFQ_INLINE cfq_vb cfq_vf_nonfinite(cfq_vf v)
{
    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
    return _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), exp_mask), exp_mask);
}

/* Plain integer operations: the compiler may move flags to general
 * registers, which on Zen 4 beat mask-register logic (the k-register
 * intrinsics measured 12-20% slower in the region forward and the
 * gradients). */
CFQ_INLINE cfq_vb cfq_vb_and(cfq_vb a, cfq_vb b) { return (cfq_vb)(a & b); }
CFQ_INLINE cfq_vb cfq_vb_or(cfq_vb a, cfq_vb b) { return (cfq_vb)(a | b); }
CFQ_INLINE cfq_vb cfq_vb_andnot(cfq_vb a, cfq_vb b) { return (cfq_vb)(a & ~b); }
CFQ_INLINE cfq_vb cfq_vb_not(cfq_vb a) { return (cfq_vb)~a; }
CFQ_INLINE cfq_vb cfq_vb_none(void) { return 0; }
CFQ_INLINE int cfq_vb_all(cfq_vb f) { return f == (cfq_vb)0xffff; }
CFQ_INLINE int cfq_vb_any(cfq_vb f) { return f != 0; }
CFQ_INLINE unsigned cfq_vb_bits(cfq_vb f) { return f; }
CFQ_INLINE cfq_vb cfq_vb_load(const uint32_t *words)
{
    const __m512i w = _mm512_loadu_si512((const void *)words);
    return _mm512_test_epi32_mask(w, w);
}

/* Codes stay bytes: byte compares make the flags directly (the codes
 * widened to 32 bits took a conversion and 512-bit compares). */
CFQ_INLINE cfq_vi cfq_vi_load_codes(const unsigned char *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }
CFQ_INLINE void cfq_vi_store_codes(unsigned char *p, cfq_vi codes) { _mm_storeu_si128((__m128i *)(void *)p, codes); }
CFQ_INLINE int cfq_codes_plain64(const unsigned char *p)
{
    return _mm512_cmpgt_epu8_mask(_mm512_loadu_si512((const void *)p), _mm512_set1_epi8(CFQ_REGION_NONE)) == 0;
}
/* Region codes from their flags: 1 below, 2 above (3 both), 4 none. */
CFQ_INLINE cfq_vi cfq_vi_codes(cfq_vb below, cfq_vb above, cfq_vb none)
{
    const __m128i c = _mm_maskz_mov_epi8(below, _mm_set1_epi8(CFQ_REGION_BELOW));
    return _mm_mask_mov_epi8(_mm_mask_add_epi8(c, above, c, _mm_set1_epi8(CFQ_REGION_ABOVE)), none,
                             _mm_set1_epi8(CFQ_REGION_NONE));
}
/* f ? a : k. */
CFQ_INLINE cfq_vi cfq_vi_blend(cfq_vb f, cfq_vi a, int k) { return _mm_mask_blend_epi8(f, _mm_set1_epi8((char)k), a); }
CFQ_INLINE cfq_vb cfq_vi_eq(cfq_vi v, int k) { return _mm_cmpeq_epi8_mask(v, _mm_set1_epi8((char)k)); }
CFQ_INLINE cfq_vb cfq_vi_has(cfq_vi v, int bit) { return _mm_test_epi8_mask(v, _mm_set1_epi8((char)bit)); }
CFQ_INLINE cfq_vb cfq_vi_gt(cfq_vi v, int k) { return _mm_cmpgt_epu8_mask(v, _mm_set1_epi8((char)k)); }

/* The exact rounding error of s + v (TwoSum), with t = s + v. */
/* The sums' doubles: 8 a vector. */
#define CFQ_DW 8
typedef __m512d cfq_vd;
CFQ_INLINE cfq_vd cfq_vd_zero(void) { return _mm512_setzero_pd(); }
CFQ_INLINE cfq_vd cfq_vd_load(const double *p) { return _mm512_loadu_pd(p); }
CFQ_INLINE void cfq_vd_store(double *p, cfq_vd v) { _mm512_storeu_pd(p, v); }
CFQ_INLINE cfq_vd cfq_vd_add(cfq_vd a, cfq_vd b) { return _mm512_add_pd(a, b); }
CFQ_INLINE cfq_vd cfq_vd_sub(cfq_vd a, cfq_vd b) { return _mm512_sub_pd(a, b); }
CFQ_INLINE cfq_vd cfq_vd_of(cfq_vf v, int k)
{
    return _mm512_cvtps_pd(k == 0 ? _mm512_castps512_ps256(v)
                                  : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
/* g where f is set, nothing elsewhere (for finite g, where g * 0 = +-0
 * would change no partial): masked adds of g in double, converted once for
 * both sums: 2 operations a sum for the 5 of forming the terms
 * g * (f ? 1 : 0) and adding them. */
#define CFQ_VD_ADD_WHERE 1
CFQ_INLINE void cfq_vd_add_where(cfq_vd *p, cfq_vb f, cfq_vf g)
{
    p[0] = _mm512_mask_add_pd(p[0], (__mmask8)f, p[0], cfq_vd_of(g, 0));
    p[0] = _mm512_mask_add_pd(p[0], (__mmask8)(f >> 8), p[0], cfq_vd_of(g, 1));
}
/* p + d where lanes [8k, 8k + 8) of f are set, p elsewhere. */
#define CFQ_VD_ADD_WHERE_AT 1
CFQ_INLINE cfq_vd cfq_vd_add_where_at(cfq_vd p, cfq_vb f, int k, cfq_vd d)
{
    return _mm512_mask_add_pd(p, (__mmask8)(f >> (8 * k)), p, d);
}
/* The partials into the sums: one vector of 8 lanes, whose errors of lanes
 * 0-3, then of 4-7, go to the 4 error lanes. */
#define CFQ_VD_BLOCK_END 1
CFQ_INLINE void cfq_vd_block_end(cfq_vd *p, cfq_lanes *sums)
{
    const __m512d s = _mm512_loadu_pd(sums->s), t = _mm512_add_pd(s, p[0]), v_part = _mm512_sub_pd(t, s);
    const __m512d err = _mm512_add_pd(_mm512_sub_pd(s, _mm512_sub_pd(t, v_part)), _mm512_sub_pd(p[0], v_part));
    __m256d c = _mm256_loadu_pd(sums->c);
    c = _mm256_add_pd(c, _mm512_castpd512_pd256(err));
    c = _mm256_add_pd(c, _mm512_extractf64x4_pd(err, 1));
    _mm512_storeu_pd(sums->s, t);
    _mm256_storeu_pd(sums->c, c);
}

#include "cfq_simd_kernels.h"

const cfq_kernels cfq_kernels_avx512 = CFQ_SIMD_KERNELS("avx512");

#else

const cfq_kernels cfq_kernels_avx512 = {.name = "avx512"};

#endif
