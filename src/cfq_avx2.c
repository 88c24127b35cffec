/*
 * cfq_avx2.c -- the AVX2 vocabulary (8 floats a step; lane flags are
 * all-ones/zero words in a vector; float16 through F16C) and its kernel
 * table.  Built with -mavx2 -mf16c on this file only; elsewhere the table
 * stays empty.
 */
#include "cfq_internal.h"

#if defined(__AVX2__)
#include <immintrin.h>

#define CFQ_W 8
typedef __m256 cfq_vf;
typedef __m256 cfq_vb;
typedef __m256i cfq_vi;
typedef __m128i cfq_vh;

CFQ_INLINE cfq_vf cfq_vf_set(float v) { return _mm256_set1_ps(v); }
CFQ_INLINE cfq_vf cfq_vf_load(const float *p) { return _mm256_loadu_ps(p); }
CFQ_INLINE void cfq_vf_store(float *p, cfq_vf v) { _mm256_storeu_ps(p, v); }
/* Past the caches: big outputs then cost no read for ownership. */
CFQ_INLINE void cfq_vf_stream(float *p, cfq_vf v)
{
    _mm_stream_ps(p, _mm256_castps256_ps128(v));
    _mm_stream_ps(p + 4, _mm256_extractf128_ps(v, 1));
}
/* dst 32-byte aligned: one store. */
CFQ_INLINE void cfq_vf_stream_whole(float *p, cfq_vf v) { _mm256_stream_ps(p, v); }
CFQ_INLINE void cfq_vf_store_lanes(float *p, cfq_vb f, cfq_vf v)
{
    _mm256_maskstore_ps(p, _mm256_castps_si256(f), v);
}
CFQ_INLINE void cfq_vfence(void) { _mm_sfence(); }

CFQ_INLINE cfq_vf cfq_vf_load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
CFQ_INLINE cfq_vf cfq_vf_load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16));
}
CFQ_INLINE void cfq_vh_put(uint16_t *p, __m128i h, int stream)
{
    if (stream)
        _mm_stream_si128((__m128i *)(void *)p, h);
    else
        _mm_storeu_si128((__m128i *)(void *)p, h);
}
CFQ_INLINE cfq_vh cfq_vh_load(const uint16_t *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }
/* Whether some lane's exponent bits are all set (+-Inf or NaN). */
CFQ_INLINE int cfq_vh_any_nonfinite(int dt, cfq_vh h)
{
    const __m128i exp_mask = _mm_set1_epi16(dt == CFQ_FLOAT16 ? 0x7c00 : 0x7f80);
    return _mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, exp_mask), exp_mask)) != 0;
}
/* h where keep is set (but a bfloat16 subnormal's sign), its sign elsewhere. */
CFQ_INLINE cfq_vh cfq_vh_keep(int dt, cfq_vb keep, cfq_vh h)
{
    const __m256i k32 = _mm256_castps_si256(keep);
    __m128i k = _mm_packs_epi32(_mm256_castsi256_si128(k32), _mm256_extracti128_si256(k32, 1));
    if (dt != CFQ_FLOAT16)
        k = _mm_andnot_si128(_mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7f80)), _mm_setzero_si128()), k);
    return _mm_blendv_epi8(_mm_and_si128(h, _mm_set1_epi16((short)0x8000)), h, k);
}
CFQ_INLINE void cfq_vf_store_f16(uint16_t *p, cfq_vf v, int stream)
{
    cfq_vh_put(p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT), stream);
}
/* To nearest even on the bits; NaN to the quiet NaN 0x7fc0 with its sign
 * (see cfq_f32_to_bf16). */
CFQ_INLINE void cfq_vf_store_bf16(uint16_t *p, cfq_vf v, int stream)
{
    const __m256i u = _mm256_castps_si256(v), top = _mm256_srli_epi32(u, 16);
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(top, _mm256_set1_epi32(1))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_and_si256(top, _mm256_set1_epi32(0x8000)), _mm256_set1_epi32(0x7fc0));
    const __m256i h = _mm256_blendv_epi8(rounded, quiet, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    cfq_vh_put(p, _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)), stream);
}

CFQ_INLINE cfq_vf cfq_vf_add(cfq_vf a, cfq_vf b) { return _mm256_add_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_sub(cfq_vf a, cfq_vf b) { return _mm256_sub_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_mul(cfq_vf a, cfq_vf b) { return _mm256_mul_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_div(cfq_vf a, cfq_vf b) { return _mm256_div_ps(a, b); }
CFQ_INLINE cfq_vf cfq_vf_floor(cfq_vf v) { return _mm256_floor_ps(v); }
/* minps returns its second operand when either is NaN, so min(hi, x) keeps
 * a NaN x as std::min(x, hi) does; max(lo, .) likewise. */
CFQ_INLINE cfq_vf cfq_vf_clamp(cfq_vf x, cfq_vf lo, cfq_vf hi)
{
    return _mm256_max_ps(lo, _mm256_min_ps(hi, x));
}
CFQ_INLINE cfq_vf cfq_vf_and(cfq_vb f, cfq_vf v) { return _mm256_and_ps(f, v); }
CFQ_INLINE cfq_vf cfq_vf_andnot(cfq_vb f, cfq_vf v) { return _mm256_andnot_ps(f, v); }

/* On the bits, as an integer operation the compiler will not fold into the
 * next one (see cfq_neon.c). */
CFQ_INLINE cfq_vf cfq_vf_neg(cfq_vf v)
{
    return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(v), _mm256_set1_epi32((int)0x80000000u)));
}
CFQ_INLINE cfq_vf cfq_vf_exp_max(cfq_vf acc, cfq_vf v)
{
    const __m256i e = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7f800000));
    return _mm256_castsi256_ps(_mm256_max_epu32(_mm256_castps_si256(acc), e));
}
CFQ_INLINE cfq_vf cfq_vf_blend(cfq_vb f, cfq_vf a, cfq_vf b) { return _mm256_blendv_ps(b, a, f); }
/* Operands swapped (a < b as b > a): the kernels compare data against
 * bounds, and a loaded operand folds into vcmpps only in second place (as
 * written, gcc loaded each input twice, 5% more instructions a block). */
CFQ_INLINE cfq_vb cfq_vf_lt(cfq_vf a, cfq_vf b) { return _mm256_cmp_ps(b, a, _CMP_GT_OQ); }
CFQ_INLINE cfq_vb cfq_vf_le(cfq_vf a, cfq_vf b) { return _mm256_cmp_ps(b, a, _CMP_GE_OQ); }
CFQ_INLINE cfq_vb cfq_vf_gt(cfq_vf a, cfq_vf b) { return _mm256_cmp_ps(b, a, _CMP_LT_OQ); }
CFQ_INLINE cfq_vb cfq_vf_ge(cfq_vf a, cfq_vf b) { return _mm256_cmp_ps(b, a, _CMP_LE_OQ); }
/* All exponent bits set: +-Inf or NaN. */
CFQ_INLINE cfq_vb cfq_vf_nonfinite(cfq_vf v)
{
    const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
    return _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), exp_mask), exp_mask));
}

CFQ_INLINE cfq_vb cfq_vb_and(cfq_vb a, cfq_vb b) { return _mm256_and_ps(a, b); }
CFQ_INLINE cfq_vb cfq_vb_or(cfq_vb a, cfq_vb b) { return _mm256_or_ps(a, b); }
CFQ_INLINE cfq_vb cfq_vb_andnot(cfq_vb a, cfq_vb b) { return _mm256_andnot_ps(b, a); }
CFQ_INLINE cfq_vb cfq_vb_not(cfq_vb a)
{
    return _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
}
CFQ_INLINE cfq_vb cfq_vb_none(void) { return _mm256_setzero_ps(); }
CFQ_INLINE int cfq_vb_all(cfq_vb f) { return _mm256_movemask_ps(f) == 0xff; }
CFQ_INLINE int cfq_vb_any(cfq_vb f) { return _mm256_movemask_ps(f) != 0; }
CFQ_INLINE unsigned cfq_vb_bits(cfq_vb f) { return (unsigned)_mm256_movemask_ps(f); }
CFQ_INLINE cfq_vb cfq_vb_load(const uint32_t *words)
{
    return _mm256_loadu_ps((const float *)(const void *)words);
}

CFQ_INLINE cfq_vi cfq_vi_load_codes(const unsigned char *p)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
}
CFQ_INLINE void cfq_vi_store_codes(unsigned char *p, cfq_vi codes)
{
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(codes, codes), _mm256_setzero_si256());
    _mm_storel_epi64((__m128i *)(void *)p,
                     _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1)));
}
CFQ_INLINE int cfq_codes_plain64(const unsigned char *p)
{
    const __m256i high = _mm256_max_epu8(_mm256_loadu_si256((const __m256i *)(const void *)p),
                                         _mm256_loadu_si256((const __m256i *)(const void *)(p + 32)));
    const __m256i over = _mm256_subs_epu8(high, _mm256_set1_epi8(CFQ_REGION_NONE));
    return _mm256_testz_si256(over, over);
}
/* Region codes from their flags: 1 below, 2 above (3 both), 4 none. */
CFQ_INLINE cfq_vi cfq_vi_codes(cfq_vb below, cfq_vb above, cfq_vb none)
{
    return _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(below), _mm256_set1_epi32(CFQ_REGION_BELOW)),
                        _mm256_and_si256(_mm256_castps_si256(above), _mm256_set1_epi32(CFQ_REGION_ABOVE))),
        _mm256_and_si256(_mm256_castps_si256(none), _mm256_set1_epi32(CFQ_REGION_NONE)));
}
/* f ? a : k. */
CFQ_INLINE cfq_vi cfq_vi_blend(cfq_vb f, cfq_vi a, int k)
{
    return _mm256_blendv_epi8(_mm256_set1_epi32(k), a, _mm256_castps_si256(f));
}
CFQ_INLINE cfq_vb cfq_vi_eq(cfq_vi v, int k)
{
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, _mm256_set1_epi32(k)));
}
CFQ_INLINE cfq_vb cfq_vi_has(cfq_vi v, int bit)
{
    const __m256i b = _mm256_set1_epi32(bit);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(v, b), b));
}
CFQ_INLINE cfq_vb cfq_vi_gt(cfq_vi v, int k)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(v, _mm256_set1_epi32(k)));
}

/* The sums' doubles: 4 a vector. */
#define CFQ_DW 4
typedef __m256d cfq_vd;
CFQ_INLINE cfq_vd cfq_vd_zero(void) { return _mm256_setzero_pd(); }
CFQ_INLINE cfq_vd cfq_vd_load(const double *p) { return _mm256_loadu_pd(p); }
CFQ_INLINE void cfq_vd_store(double *p, cfq_vd v) { _mm256_storeu_pd(p, v); }
CFQ_INLINE cfq_vd cfq_vd_add(cfq_vd a, cfq_vd b) { return _mm256_add_pd(a, b); }
CFQ_INLINE cfq_vd cfq_vd_sub(cfq_vd a, cfq_vd b) { return _mm256_sub_pd(a, b); }
CFQ_INLINE cfq_vd cfq_vd_of(cfq_vf v, int k)
{
    return _mm256_cvtps_pd(k == 0 ? _mm256_castps256_ps128(v) : _mm256_extractf128_ps(v, 1));
}

#include "cfq_simd_kernels.h"

const cfq_kernels cfq_kernels_avx2 = CFQ_SIMD_KERNELS("avx2");

#else

const cfq_kernels cfq_kernels_avx2 = {.name = "avx2"};

#endif
