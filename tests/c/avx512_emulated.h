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
#include <string.h>

/* From two AVX conversions. */
static inline __m512d cfq_emulated_cvtps_pd(__m256 a)
{
    return _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_cvtps_pd(_mm256_castps256_ps128(a))),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), 1);
}
#define _mm512_cvtps_pd cfq_emulated_cvtps_pd

/* Byte conversions, element by element. */
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

#endif /* CFQ_AVX512_EMULATED_H */
