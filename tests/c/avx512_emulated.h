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

#endif /* CFQ_AVX512_EMULATED_H */
