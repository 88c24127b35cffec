/*
 * cfq_avx2.c -- AVX2 kernels (8 floats a step).  Built with -mavx2 on this
 * file only; elsewhere the body compiles away and the table stays empty.
 */
#include "cfq_internal.h"

#if defined(__AVX2__)
#include <immintrin.h>

/* cfq_neumaier_add() on 4 lanes at once. */
static inline void cfq_neumaier_add_avx2(__m256d *s, __m256d *c, __m256d v)
{
    const __m256d abs_mask =
        _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256d t = _mm256_add_pd(*s, v);
    const __m256d if_s_big = _mm256_add_pd(_mm256_sub_pd(*s, t), v);
    const __m256d if_v_big = _mm256_add_pd(_mm256_sub_pd(v, t), *s);
    const __m256d s_big = _mm256_cmp_pd(_mm256_and_pd(*s, abs_mask),
                                        _mm256_and_pd(v, abs_mask), _CMP_GE_OQ);
    *c = _mm256_add_pd(*c, _mm256_blendv_pd(if_v_big, if_s_big, s_big));
    *s = t;
}

/* 8 float terms into lanes 0-3 (s0, c0) and 4-7 (s1, c1). */
static inline void cfq_lanes_add8_avx2(__m256d acc[4], __m256 terms)
{
    cfq_neumaier_add_avx2(&acc[0], &acc[2], _mm256_cvtps_pd(_mm256_castps256_ps128(terms)));
    cfq_neumaier_add_avx2(&acc[1], &acc[3], _mm256_cvtps_pd(_mm256_extractf128_ps(terms, 1)));
}

static void cfq_lanes_store_avx2(cfq_lanes *a, const __m256d acc[4])
{
    _mm256_storeu_pd(a->s, acc[0]);
    _mm256_storeu_pd(a->s + 4, acc[1]);
    _mm256_storeu_pd(a->c, acc[2]);
    _mm256_storeu_pd(a->c + 4, acc[3]);
}

static void cfq_fq_vars_grad_avx2(const float *g, const float *x, size_t n,
                                  const cfq_params *p, float *dx,
                                  double sums[2])
{
    const __m256 lo = _mm256_set1_ps(p->nudged_min);
    const __m256 hi = _mm256_set1_ps(p->nudged_max);
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
    __m256d below_acc[4], above_acc[4];
    cfq_lanes below, above;
    size_t i = 0;
    int k;

    for (k = 0; k < 4; k++) {
        below_acc[k] = _mm256_setzero_pd();
        above_acc[k] = _mm256_setzero_pd();
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 vg = _mm256_loadu_ps(g + i);
        const __m256 vx = _mm256_loadu_ps(x + i);
        const __m256 inside = _mm256_and_ps(_mm256_cmp_ps(vx, lo, _CMP_GE_OQ),
                                            _mm256_cmp_ps(vx, hi, _CMP_LE_OQ));
        /* A non-finite gradient makes a NaN term even where its mask is 0. */
        const __m256i g_exp = _mm256_and_si256(_mm256_castps_si256(vg), exp_mask);
        const __m256 g_nonfinite = _mm256_castsi256_ps(_mm256_cmpeq_epi32(g_exp, exp_mask));

        _mm256_storeu_ps(dx + i, _mm256_mul_ps(vg, _mm256_and_ps(inside, one)));
        /* Terms are +-0, a no-op on the sums, where x is inside and g finite:
         * the common step skips them. */
        if (_mm256_movemask_ps(_mm256_andnot_ps(g_nonfinite, inside)) != 0xff) {
            const __m256 is_below = _mm256_cmp_ps(vx, lo, _CMP_LT_OQ);
            const __m256 is_above = _mm256_cmp_ps(vx, hi, _CMP_GT_OQ);
            cfq_lanes_add8_avx2(below_acc, _mm256_mul_ps(vg, _mm256_and_ps(is_below, one)));
            cfq_lanes_add8_avx2(above_acc, _mm256_mul_ps(vg, _mm256_and_ps(is_above, one)));
        }
    }
    cfq_lanes_store_avx2(&below, below_acc);
    cfq_lanes_store_avx2(&above, above_acc);
    cfq_vars_grad_range(g, x, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

const cfq_kernels cfq_kernels_avx2 = {
    "avx2",
    cfq_fq_vars_grad_avx2,
};

#else /* !__AVX2__ */

const cfq_kernels cfq_kernels_avx2 = {"avx2", NULL};

#endif
