/*
 * avx512_emulated.h -- test builds only (make ctest-avx512-emu and friends):
 * SIMDe's portable AVX-512 lets src/cfq_avx512.c run on a CPU without
 * AVX-512.  Force-included (-include) before that file, which then skips
 * <immintrin.h>.  SIMDe 0.7 lacks a few intrinsics the file uses; they are
 * built here from ones it has.
 */
#ifndef CFQ_AVX512_EMULATED_H
#define CFQ_AVX512_EMULATED_H

#define CFQ_AVX512_EMULATED 1
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* From two AVX conversions. */
static inline __m512d cfq_emulated_cvtps_pd(__m256 a)
{
    return _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_cvtps_pd(_mm256_castps256_ps128(a))),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), 1);
}
#define _mm512_cvtps_pd cfq_emulated_cvtps_pd

/* The aligned streaming store, as a store; checks the alignment the CPU's
 * would fault on. */
static inline void cfq_emulated_stream_ps(float *dst, __m512 v)
{
    if ((uintptr_t)dst % 64 != 0)
        abort();
    _mm512_storeu_ps(dst, v);
}
#undef _mm512_stream_ps
#define _mm512_stream_ps cfq_emulated_stream_ps

/* The masked store, lane by lane, copying bits. */
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

/* 128-bit byte compares into masks (AVX512BW+VL), from SSE2 byte compares. */
static inline __mmask16 cfq_emulated_cmpeq_epi8_mask(__m128i a, __m128i b)
{
    return (__mmask16)_mm_movemask_epi8(_mm_cmpeq_epi8(a, b));
}
static inline __mmask16 cfq_emulated_test_epi8_mask(__m128i a, __m128i b)
{
    return (__mmask16)~_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(a, b), _mm_setzero_si128()));
}
static inline __mmask16 cfq_emulated_cmpgt_epu8_mask(__m128i a, __m128i b)
{
    const __m128i flip = _mm_set1_epi8((char)0x80);
    return (__mmask16)_mm_movemask_epi8(_mm_cmpgt_epi8(_mm_xor_si128(a, flip), _mm_xor_si128(b, flip)));
}
#undef _mm_cmpeq_epi8_mask
#undef _mm_test_epi8_mask
#undef _mm_cmpgt_epu8_mask
#define _mm_cmpeq_epi8_mask cfq_emulated_cmpeq_epi8_mask
#define _mm_test_epi8_mask cfq_emulated_test_epi8_mask
#define _mm_cmpgt_epu8_mask cfq_emulated_cmpgt_epu8_mask

/* 256-bit 16-bit-lane compares into masks (AVX512BW+VL), from AVX2 ones:
 * the all-ones/zero words packed to bytes, then their top bits. */
static inline __mmask16 cfq_emulated_words_mask(__m256i words)
{
    return (__mmask16)_mm_movemask_epi8(
        _mm_packs_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1)));
}
static inline __mmask16 cfq_emulated_cmpeq_epi16_mask(__m256i a, __m256i b)
{
    return cfq_emulated_words_mask(_mm256_cmpeq_epi16(a, b));
}
static inline __mmask16 cfq_emulated_test_epi16_mask(__m256i a, __m256i b)
{
    return (__mmask16)~cfq_emulated_words_mask(_mm256_cmpeq_epi16(_mm256_and_si256(a, b), _mm256_setzero_si256()));
}
static inline __mmask16 cfq_emulated_cmpge_epi16_mask(__m256i a, __m256i b)
{
    return (__mmask16)~cfq_emulated_words_mask(_mm256_cmpgt_epi16(b, a));
}
static inline __mmask16 cfq_emulated_cmple_epi16_mask(__m256i a, __m256i b)
{
    return (__mmask16)~cfq_emulated_words_mask(_mm256_cmpgt_epi16(a, b));
}
#undef _mm256_cmpeq_epi16_mask
#undef _mm256_test_epi16_mask
#undef _mm256_cmpge_epi16_mask
#undef _mm256_cmple_epi16_mask
#define _mm256_cmpeq_epi16_mask cfq_emulated_cmpeq_epi16_mask
#define _mm256_test_epi16_mask cfq_emulated_test_epi16_mask
#define _mm256_cmpge_epi16_mask cfq_emulated_cmpge_epi16_mask
#define _mm256_cmple_epi16_mask cfq_emulated_cmple_epi16_mask

/* Half-precision conversions from two F16C halves. */
static inline __m512 cfq_emulated_cvtph_ps(__m256i h)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castps_pd(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm256_castsi256_si128(h)))),
        _mm256_castps_pd(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1))), 1));
}
static inline __m256i cfq_emulated_cvtps_ph(__m512 v, int rounding)
{
    (void)rounding; /* the file asks for nearest even only */
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return _mm256_set_m128i(_mm256_cvtps_ph(high, _MM_FROUND_TO_NEAREST_INT),
                            _mm256_cvtps_ph(_mm512_castps512_ps256(v), _MM_FROUND_TO_NEAREST_INT));
}
#undef _mm512_cvtph_ps
#undef _mm512_cvtps_ph
#define _mm512_cvtph_ps cfq_emulated_cvtph_ps
#define _mm512_cvtps_ph cfq_emulated_cvtps_ph

/* 16-bit widening and narrowing, element by element. */
static inline __m512i cfq_emulated_cvtepu16_epi32(__m256i a)
{
    unsigned short h[16];
    int v[16], k;
    _mm256_storeu_si256((__m256i *)(void *)h, a);
    for (k = 0; k < 16; k++)
        v[k] = h[k];
    return _mm512_loadu_si512((const void *)v);
}
static inline __m256i cfq_emulated_cvtepi32_epi16(__m512i a)
{
    unsigned short h[16];
    int v[16], k;
    _mm512_storeu_si512((void *)v, a);
    for (k = 0; k < 16; k++)
        h[k] = (unsigned short)v[k];
    return _mm256_loadu_si256((const __m256i *)(const void *)h);
}
#undef _mm512_cvtepu16_epi32
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepu16_epi32 cfq_emulated_cvtepu16_epi32
#define _mm512_cvtepi32_epi16 cfq_emulated_cvtepi32_epi16

#endif /* CFQ_AVX512_EMULATED_H */
