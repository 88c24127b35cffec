/*
 * test_core.c -- C tests of the cfq core.  Every kernel table this machine
 * can run is compared bit for bit with the scalar reference, which is itself
 * checked against a direct transcription of TF's formulas.  Prints
 * "N passed, N failed" and exits non-zero on any failure.  The 16-bit
 * element types are tested in test_half.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

/* Interesting floats around the nudged range [lo, hi]. */
static float pick_input(float lo, float hi)
{
    const float specials[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1.4e-45f, INFINITY, -INFINITY,
                              NAN, 3.4028235e38f, -3.4028235e38f};
    switch (rng_next() % 10) {
    case 0: return lo;
    case 1: return hi;
    case 2: return nextafterf(lo, -INFINITY);
    case 3: return nextafterf(lo, INFINITY);
    case 4: return nextafterf(hi, INFINITY);
    case 5: return nextafterf(hi, -INFINITY);
    case 6: return specials[rng_next() % 10];
    default: {
        float span = hi - lo;
        if (!(span > 0.0f) || !isfinite(span))
            span = 1.0f;
        return rng_uniform(lo - span, hi + span);
    }
    }
}

static float pick_gradient(int allow_nonfinite)
{
    const float specials[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e30f, -1e30f, 1e-30f,
                              INFINITY, -INFINITY, NAN};
    if (rng_next() % 16 == 0)
        return specials[rng_next() % (allow_nonfinite ? 10 : 7)];
    return rng_uniform(-4.0f, 4.0f);
}

typedef struct {
    float min, max;
    int num_bits, narrow;
} qcase;

/* TF's formulas written out directly (independent of cfq_internal.h). */
static void model_vars_grad(const float *g, const float *x, size_t n, qcase q, float *dx,
                            double *smin, double *smax)
{
    volatile float one_v = 1.0f, zero_v = 0.0f; /* keep g * 1.0f a real multiply */
    const float one = one_v, zero = zero_v;
    float nmin, nmax, scale;
    size_t i;
    cfq_fpenv env;
    cfq_nudge(q.min, q.max, q.num_bits, q.narrow, &nmin, &nmax, &scale);
    cfq_fpenv_enter(&env);
    *smin = 0.0;
    *smax = 0.0;
    for (i = 0; i < n; i++) {
        if (q.min == 0.0f && q.max == 0.0f) {
            dx[i] = g[i];
            continue;
        }
        dx[i] = g[i] * ((x[i] >= nmin && x[i] <= nmax) ? one : zero);
        *smin += (double)(g[i] * (x[i] < nmin ? one : zero));
        *smax += (double)(g[i] * (x[i] > nmax ? one : zero));
    }
    cfq_fpenv_leave(&env);
}

static int same_sum(float got, double model, double magnitude)
{
    if (isnan(model))
        return isnan(got);
    if (isinf(model))
        return got == (float)model;
    return fabs((double)got - model) <= 1e-6 * magnitude + 1e-37;
}

static void test_case(size_t n, qcase q, int allow_nonfinite)
{
    float *g = malloc((n + 1) * sizeof(float)), *x = malloc((n + 1) * sizeof(float));
    float *ref = malloc((n + 1) * sizeof(float)), *got = malloc((n + 1) * sizeof(float));
    float *model = malloc((n + 1) * sizeof(float)), *inplace = malloc((n + 1) * sizeof(float));
    float nmin, nmax, scale, rmin, rmax, gmin, gmax;
    double smin, smax, mag = 0.0;
    size_t i;
    int isa, rc;

    if (cfq_nudge(q.min, q.max, q.num_bits, q.narrow, &nmin, &nmax, &scale) != CFQ_OK) {
        nmin = -1.0f;
        nmax = 1.0f;
    }
    for (i = 0; i < n; i++) {
        g[i] = pick_gradient(allow_nonfinite);
        x[i] = pick_input(nmin, nmax);
        if (isfinite(g[i]))
            mag += fabs((double)g[i]);
    }
    rc = cfq_vars_grad_run(&cfq_kernels_scalar, CFQ_FLOAT32, g, x, n, q.min, q.max, q.num_bits, q.narrow,
                           ref, &rmin, &rmax, 1);
    CHECK(rc == CFQ_OK, "scalar rc %d", rc);

    model_vars_grad(g, x, n, q, model, &smin, &smax);
    for (i = 0; i < n && bits_of(ref[i]) == bits_of(model[i]); i++)
        ;
    CHECK(i == n, "scalar vs model n=%zu i=%zu g=%a x=%a got=%08x want=%08x", n, i,
          (double)g[i], (double)x[i], bits_of(ref[i]), bits_of(model[i]));
    CHECK(same_sum(rmin, smin, mag), "sum below n=%zu got %a model %a", n, (double)rmin, smin);
    CHECK(same_sum(rmax, smax, mag), "sum above n=%zu got %a model %a", n, (double)rmax, smax);

    for (isa = 1; isa < CFQ_ISA_COUNT; isa++) {
        if (!table_runs(isa))
            continue;
        rc = cfq_vars_grad_run(table_of(isa), CFQ_FLOAT32, g, x, n, q.min, q.max, q.num_bits, q.narrow,
                               got, &gmin, &gmax, 1);
        CHECK(rc == CFQ_OK, "%s rc %d", cfq_isa_name(isa), rc);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0, "%s dx differs, n=%zu", cfq_isa_name(isa), n);
        CHECK(bits_of(gmin) == bits_of(rmin) && bits_of(gmax) == bits_of(rmax),
              "%s sums differ n=%zu: %08x/%08x vs %08x/%08x", cfq_isa_name(isa), n, bits_of(gmin),
              bits_of(gmax), bits_of(rmin), bits_of(rmax));
        /* In place, over the gradients and over the inputs. */
        memcpy(inplace, g, n * sizeof(float));
        cfq_vars_grad_run(table_of(isa), CFQ_FLOAT32, inplace, x, n, q.min, q.max, q.num_bits, q.narrow,
                          inplace, &gmin, &gmax, 1);
        CHECK(memcmp(inplace, ref, n * sizeof(float)) == 0 && bits_of(gmin) == bits_of(rmin),
              "%s in place over gradients differs, n=%zu", cfq_isa_name(isa), n);
        memcpy(inplace, x, n * sizeof(float));
        cfq_vars_grad_run(table_of(isa), CFQ_FLOAT32, g, inplace, n, q.min, q.max, q.num_bits, q.narrow,
                          inplace, &gmin, &gmax, 1);
        CHECK(memcmp(inplace, ref, n * sizeof(float)) == 0 && bits_of(gmax) == bits_of(rmax),
              "%s in place over inputs differs, n=%zu", cfq_isa_name(isa), n);
    }
    free(g); free(x); free(ref); free(got); free(model); free(inplace);
}

static void test_sizes_and_ranges(void)
{
    const float ranges[][2] = {{-6.0f, 6.0f}, {-1.0f, 1.0f}, {0.0f, 1.0f}, {-0.3f, 2.7f},
                               {-2.5f, 0.0f}, {-1e-30f, 1e-30f}, {-3e38f, 3e38f}, {2.0f, 5.0f},
                               {-5.0f, -2.0f}, {1.0f, -1.0f}, {0.5f, 0.5f}, {-0.5f, -0.5f},
                               {0.0f, 0.0f}, {-0.0f, 0.0f}, {-1e-40f, 1.0f}, {-1.0f, 1e-40f}};
    const size_t big[] = {1000, CFQ_CHUNK - 1, CFQ_CHUNK, CFQ_CHUNK + 1, 3 * CFQ_CHUNK + 7};
    size_t n, r, k;
    int bits;
    for (n = 0; n <= 130; n++) {
        for (r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            qcase q = {ranges[r][0], ranges[r][1], 2 + (int)((n + r) % 15), (int)(n & 1)};
            test_case(n, q, n % 3 == 0);
        }
    }
    for (bits = 2; bits <= 16; bits++) {
        qcase q = {-1.7f, 3.1f, bits, bits & 1};
        test_case(67, q, 0);
    }
    for (k = 0; k < sizeof big / sizeof big[0]; k++) {
        qcase q = {-0.6f, 0.9f, 8, 0};
        test_case(big[k], q, 0);
        test_case(big[k], q, 1);
    }
}

static void test_nudge_values(void)
{
    float lo, hi, scale;
    CHECK(cfq_nudge(0.0f, 255.0f, 8, 0, &lo, &hi, &scale) == CFQ_OK && lo == 0.0f &&
              hi == 255.0f && scale == 1.0f,
          "nudge [0,255] -> %g %g %g", (double)lo, (double)hi, (double)scale);
    /* zero point 0.5 rounds away from zero: [-0.5, 254.5] -> [-1, 254]. */
    CHECK(cfq_nudge(-0.5f, 254.5f, 8, 0, &lo, &hi, &scale) == CFQ_OK && lo == -1.0f &&
              hi == 254.0f,
          "nudge half -> %g %g", (double)lo, (double)hi);
    CHECK(cfq_nudge(-0.1f, 0.2f, 8, 1, &lo, &hi, &scale) == CFQ_OK && lo <= 0.0f && hi >= 0.0f,
          "nudge narrow range");
    /* min == max != 0: scale 0, nudged range collapses to zero. */
    CHECK(cfq_nudge(0.5f, 0.5f, 8, 0, &lo, &hi, &scale) == CFQ_OK && scale == 0.0f && lo == 0.0f &&
              hi == 0.0f,
          "nudge min == max -> %g %g %g", (double)lo, (double)hi, (double)scale);
}

static void test_errors(void)
{
    float g[4] = {1, 2, 3, 4}, x[4] = {0, 1, 2, 3}, dx[4], a, b;
    cfq_exec ex = {CFQ_ISA_AUTO, 1};
    CHECK(cfq_fq_vars_grad(g, x, 4, -1, 1, 1, 0, dx, &a, &b, NULL) == CFQ_ENUMBITS, "num_bits 1");
    CHECK(cfq_fq_vars_grad(g, x, 4, -1, 1, 17, 0, dx, &a, &b, NULL) == CFQ_ENUMBITS, "num_bits 17");
    CHECK(cfq_fq_vars_grad(g, x, 4, NAN, 1, 8, 0, dx, &a, &b, NULL) == CFQ_ENONFINITE, "min NaN");
    CHECK(cfq_fq_vars_grad(g, x, 4, -1, INFINITY, 8, 0, dx, &a, &b, NULL) == CFQ_ENONFINITE, "max Inf");
    CHECK(cfq_fq_vars_grad(NULL, x, 4, -1, 1, 8, 0, dx, &a, &b, NULL) == CFQ_ENULL, "null g");
    CHECK(cfq_fq_vars_grad(g, x, 4, -1, 1, 8, 0, dx, NULL, &b, NULL) == CFQ_ENULL, "null dmin");
    CHECK(cfq_fq_vars_grad(NULL, NULL, 0, -1, 1, 8, 0, NULL, &a, &b, NULL) == CFQ_OK && a == 0.0f &&
              b == 0.0f,
          "empty arrays");
    ex.threads = 0;
    CHECK(cfq_fq_vars_grad(g, x, 4, -1, 1, 8, 0, dx, &a, &b, &ex) == CFQ_ETHREADS, "threads 0");
    ex.threads = 1;
    ex.isa = 99;
    CHECK(cfq_fq_vars_grad(g, x, 4, -1, 1, 8, 0, dx, &a, &b, &ex) == CFQ_EISA_UNKNOWN, "isa 99");
    CHECK(cfq_nudge(-1, 1, 8, 0, NULL, &a, &b) == CFQ_ENULL, "nudge null");
    CHECK(strcmp(cfq_strerror(CFQ_ENUMBITS), "num_bits must be between 2 and 16, inclusive") == 0,
          "strerror");
    CHECK(cfq_isa_from_name("avx2") == CFQ_ISA_AVX2 && cfq_isa_from_name("sse") == CFQ_EISA_UNKNOWN,
          "isa names");
    CHECK(cfq_isa_available(CFQ_ISA_SCALAR) && cfq_isa_available(cfq_active_isa()), "active isa");
}

static void test_special_semantics(void)
{
    /* Denormal gradients flush (TF multiplies by 1.0f under FTZ/DAZ); the
     * min == max == 0 pass-through copies them untouched. */
    float g[3] = {1e-40f, -1e-40f, -2.0f}, x[3] = {0.5f, 0.5f, 9.0f}, dx[3], a, b;
    CHECK(cfq_fq_vars_grad(g, x, 3, -1, 1, 8, 0, dx, &a, &b, NULL) == CFQ_OK &&
              bits_of(dx[0]) == 0u && bits_of(dx[1]) == 0x80000000u && bits_of(dx[2]) == 0x80000000u,
          "denormal flush / -0.0: %08x %08x %08x", bits_of(dx[0]), bits_of(dx[1]), bits_of(dx[2]));
    CHECK(b == -2.0f && bits_of(a) == 0u, "sums %g %g", (double)a, (double)b);
    CHECK(cfq_fq_vars_grad(g, x, 3, 0.0f, 0.0f, 8, 0, dx, &a, &b, NULL) == CFQ_OK &&
              memcmp(dx, g, sizeof g) == 0 && a == 0.0f && b == 0.0f,
          "pass-through");
    /* A NaN gradient inside poisons both sums; +Inf below gives +Inf min and NaN max. */
    {
        float g2[2] = {INFINITY, 1.0f}, x2[2] = {-5.0f, 0.0f};
        cfq_fq_vars_grad(g2, x2, 2, -1, 1, 8, 0, dx, &a, &b, NULL);
        CHECK(a == INFINITY && isnan(b) && bits_of(b) == 0x7fc00000u, "inf below: %g %g", (double)a, (double)b);
        CHECK(isnan(dx[0]) && dx[1] == 1.0f, "inf dx");
    }
    CHECK(float_of(0x7fc00000u) != float_of(0x7fc00000u), "nan helper");
    /* Cancelling giants must not swallow the small terms: every path, every
     * position, giants in one lane (in successive blocks) or in two lanes.
     * A lane's 32 terms of one 256-element sum block are summed in plain
     * double, so the giants' own lane-blocks hold no small terms. */
    {
        float gg[600], xx[600], dd[600];
        int isa, at, apart;
        for (apart = 1; apart <= CFQ_SUM_BLOCK; apart += CFQ_SUM_BLOCK - 1) {
            for (at = 0; at < 100; at++) {
                const int lanes[2] = {at, at + apart};
                int k, j, ones = 0;
                for (k = 0; k < 600; k++) {
                    int shares = 0;
                    for (j = 0; j < 2; j++)
                        shares |= k % 8 == lanes[j] % 8 && k / CFQ_SUM_BLOCK == lanes[j] / CFQ_SUM_BLOCK;
                    gg[k] = shares ? 0.0f : 1.0f;
                    ones += !shares;
                    xx[k] = 5.0f;
                }
                gg[at] = 3.4028235e38f;
                gg[at + apart] = -3.4028235e38f;
                for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
                    if (!table_runs(isa))
                        continue;
                    cfq_vars_grad_run(table_of(isa), CFQ_FLOAT32, gg, xx, 600, -1, 1, 8, 0, dd, &a, &b, 1);
                    CHECK(b == (float)ones && a == 0.0f, "%s giants at %d and %d: %g, want %d",
                          cfq_isa_name(isa), at, at + apart, (double)b, ones);
                }
            }
        }
    }
}

static void test_fpenv_restored(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    float g[2] = {1, 2}, x[2] = {0, 1}, dx[2], a, b;
    unsigned before = _mm_getcsr();
    cfq_fq_vars_grad(g, x, 2, -1, 1, 8, 0, dx, &a, &b, NULL);
    CHECK(_mm_getcsr() == before, "MXCSR %x -> %x", before, _mm_getcsr());
#endif
}

/* Elementwise op 0 (vars forward, with codes where codes is not NULL), 1
 * (args forward) or 2 (args gradient) on table k. */
static void run_elementwise(const cfq_kernels *k, int op, const void *g, const void *x, size_t n,
                            const cfq_params *p, void *out, unsigned char *codes)
{
    if (op == 0)
        k->vars_forward(x, n, p, out, codes);
    else if (op == 1)
        k->args_forward(x, n, p, out, NULL);
    else
        k->args_grad(g, x, n, p, out);
}

/* Forward ops and the args gradient: each table against the scalar one, and
 * the scalar one against TF's formulas written out here. */
static void test_family_case(size_t n, qcase q)
{
    float *x = malloc((n + 1) * sizeof(float)), *g = malloc((n + 1) * sizeof(float));
    float *ref = malloc((n + 1) * sizeof(float)), *got = malloc((n + 1) * sizeof(float));
    volatile float half_v = 0.5f;
    const float half = half_v;
    cfq_params p;
    cfq_fpenv env;
    size_t i;
    int isa, op;

    cfq_fpenv_enter(&env);
    if (cfq_params_check_make(q.min, q.max, q.num_bits, q.narrow, &p) != CFQ_OK) {
        cfq_fpenv_leave(&env);
        free(x); free(g); free(ref); free(got);
        return;
    }
    for (i = 0; i < n; i++) {
        x[i] = pick_input(p.nudged_min, p.nudged_max);
        g[i] = pick_gradient(1);
    }
    /* TF's formulas: vars divides by scale, args multiplies by inv_scale. */
    for (i = 0; i < n; i++) {
        /* std::max(std::min(x, nudged_max), nudged_min) */
        float c = (p.nudged_max < x[i]) ? p.nudged_max : x[i];
        c = (c < p.nudged_min) ? p.nudged_min : c;
        ref[i] = floorf((c - p.nudged_min) / p.scale - p.quant_zero + half) * p.scale;
    }
    cfq_kernels_scalar.vars_forward(x, n, &p, got, NULL);
    for (i = 0; i < n && bits_of(got[i]) == bits_of(ref[i]); i++)
        ;
    CHECK(i == n, "vars forward vs formula n=%zu i=%zu x=%a got %08x want %08x", n, i,
          i < n ? (double)x[i] : 0.0, i < n ? bits_of(got[i]) : 0u, i < n ? bits_of(ref[i]) : 0u);

    for (op = 0; op < 3; op++) {
        run_elementwise(&cfq_kernels_scalar, op, g, x, n, &p, ref, NULL);
        for (isa = 1; isa < CFQ_ISA_COUNT; isa++) {
            if (!table_runs(isa))
                continue;
            run_elementwise(table_of(isa), op, g, x, n, &p, got, NULL);
            CHECK(memcmp(got, ref, n * sizeof(float)) == 0, "%s op %d differs from scalar, n=%zu",
                  cfq_isa_name(isa), op, n);
        }
    }
    cfq_fpenv_leave(&env);
    free(x); free(g); free(ref); free(got);
}

/* Per-channel kernels over the last axis: every table against the scalar one.
 * kind 0: a min == max == 0 channel among ordinary ones, non-finite
 * gradients in places; 1: ordinary channels, finite gradients (the SIMD
 * gradient's lazy path); 2: as 1 but for one NaN gradient (its tile run
 * again with every test); 3: as 1 with the inputs inside the range but for
 * one in 97, so that most rows are not busy (no terms to add); 4: as 2 with
 * the last channel passing g through, denormal gradients among its own,
 * which sends the vector channels of a narrow row to the loop with every
 * test (cfq_channels_kept).  Where rows
 * stay 16-byte aligned the gradient runs with streamed stores too. */
static void test_pc_case(size_t rows, size_t m, int kind)
{
    const size_t n = rows * m;
    float *x = malloc((n + 1) * sizeof(float)), *g = malloc((n + 1) * sizeof(float));
    float *ref = malloc((n + 1) * sizeof(float)), *got = malloc((n + 1) * sizeof(float));
    unsigned char *codes = malloc(n + 1), *ref_codes = malloc(n + 1);
    float mins[CFQ_CHANNEL_BLOCK], maxs[CFQ_CHANNEL_BLOCK];
    static cfq_channel_params pp;
    static cfq_channel_sums ref_acc, got_acc;
    cfq_fpenv env;
    size_t i, j;
    int isa;

    for (j = 0; j < m; j++) {
        mins[j] = rng_uniform(-3.0f, 0.5f);
        maxs[j] = mins[j] + rng_uniform(0.0f, 4.0f);
        if ((kind == 0 && j % 5 == 3) || (kind == 4 && j == m - 1))
            mins[j] = maxs[j] = 0.0f;
    }
    cfq_fpenv_enter(&env);
    cfq_channel_params_make(mins, maxs, 0, m, 2 + (int)(m % 15), (int)(rows & 1), &pp);
    for (i = 0; i < n; i++) {
        x[i] = kind != 3 || i % 97 == 5 ? pick_input(pp.nudged_min[i % m], pp.nudged_max[i % m])
                                        : rng_uniform(pp.nudged_min[i % m], pp.nudged_max[i % m]);
        g[i] = pick_gradient(kind == 0 && i % 7 == 0);
        if (kind == 4 && i % m == m - 1 && i / m % 3 == 0) /* copied as they are; g * 1 would flush them */
            g[i] = i / m % 2 ? 1e-40f : -1e-40f;
    }
    if (kind == 2 || kind == 4)
        g[rng_next() % n] = NAN;
    cfq_kernels_scalar.per_channel_forward(x, rows, m, m, &pp, ref, NULL);
    for (i = 0; i < n; i++) {
        const size_t c = i % m;
        const float want = pp.keep[c] ? cfq_forward_mul_one(x[i], pp.nudged_min[c], pp.nudged_max[c],
                                                            pp.scale[c], pp.inv_scale[c], pp.quant_zero[c])
                                      : 0.0f;
        if (bits_of(ref[i]) != bits_of(want))
            break;
    }
    CHECK(i == n, "pc forward scalar vs formula rows=%zu m=%zu kind %d", rows, m, kind);
    memset(&ref_acc, 0, sizeof ref_acc);
    cfq_kernels_scalar.per_channel_grad(g, x, rows, m, m, &pp, ref, &ref_acc);
    for (isa = 1; isa < CFQ_ISA_COUNT; isa++) {
        const cfq_kernels *k = table_of(isa);
        if (!table_runs(isa))
            continue;
        k->per_channel_forward(x, rows, m, m, &pp, got, NULL);
        cfq_kernels_scalar.per_channel_forward(x, rows, m, m, &pp, ref, NULL);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0, "%s pc forward differs rows=%zu m=%zu",
              cfq_isa_name(isa), rows, m);
        memset(codes, 0xee, n);
        k->per_channel_forward(x, rows, m, m, &pp, got, codes);
        cfq_kernels_scalar.per_channel_forward(x, rows, m, m, &pp, ref, ref_codes);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0 && memcmp(codes, ref_codes, n) == 0,
              "%s pc forward with region codes differs rows=%zu m=%zu kind %d", cfq_isa_name(isa), rows, m,
              kind);
        memset(&got_acc, 0, sizeof got_acc);
        memset(&ref_acc, 0, sizeof ref_acc);
        cfq_kernels_scalar.per_channel_grad(g, x, rows, m, m, &pp, ref, &ref_acc);
        k->per_channel_grad(g, x, rows, m, m, &pp, got, &got_acc);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0, "%s pc grad dx differs rows=%zu m=%zu kind %d",
              cfq_isa_name(isa), rows, m, kind);
        CHECK(memcmp(&got_acc, &ref_acc, sizeof got_acc) == 0, "%s pc grad sums differ rows=%zu m=%zu kind %d",
              cfq_isa_name(isa), rows, m, kind);
        if (m % 4 == 0) { /* streamed stores (malloc's 16-byte alignment is theirs) */
            cfq_channel_params streamed = pp;
            streamed.stream = 1;
            memset(&got_acc, 0, sizeof got_acc);
            k->per_channel_grad(g, x, rows, m, m, &streamed, got, &got_acc);
            CHECK(memcmp(got, ref, n * sizeof(float)) == 0 && memcmp(&got_acc, &ref_acc, sizeof got_acc) == 0,
                  "%s pc grad with streamed stores differs rows=%zu m=%zu kind %d", cfq_isa_name(isa), rows, m,
                  kind);
        }
        /* from the forward's region codes: the same bits and sums (ref and
         * ref_acc still hold the scalar gradient from inputs) */
        cfq_kernels_scalar.per_channel_forward(x, rows, m, m, &pp, got, codes);
        memset(&got_acc, 0, sizeof got_acc);
        CHECK(k->per_channel_region_grad(g, codes, rows, m, m, &pp, got, &got_acc) == 0,
              "%s pc region grad flags a bad code rows=%zu m=%zu", cfq_isa_name(isa), rows, m);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0 && memcmp(&got_acc, &ref_acc, sizeof got_acc) == 0,
              "%s pc region grad differs rows=%zu m=%zu kind %d", cfq_isa_name(isa), rows, m, kind);
    }
    cfq_fpenv_leave(&env);
    free(x); free(g); free(ref); free(got); free(codes); free(ref_codes);
}

static void test_family(void)
{
    const float ranges[][2] = {{-6.0f, 6.0f}, {0.0f, 1.0f}, {-0.3f, 2.7f}, {-2.5f, 0.0f},
                               {2.0f, 5.0f}, {1.0f, -1.0f}, {0.5f, 0.5f}, {-3e38f, 3e38f},
                               {-1e-30f, 1e-30f}};
    const size_t ms[] = {1, 3, 4, 7, 8, 9, 16, 17, 33, 48, 64, 65, 80, 256};
    size_t n, r, k;
    for (n = 0; n <= 70; n++)
        for (r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            qcase q = {ranges[r][0], ranges[r][1], 2 + (int)((n + r) % 15), (int)(n & 1)};
            test_family_case(n, q);
        }
    for (k = 0; k < sizeof ms / sizeof ms[0]; k++) {
        test_pc_case(1, ms[k], 0);
        test_pc_case(13, ms[k], 0);
        test_pc_case(13, ms[k], 1);
        test_pc_case(13, ms[k], 2);
        test_pc_case(64, ms[k], 1);
        test_pc_case(64, ms[k], 2);
        test_pc_case(71, ms[k], 1); /* stretches of the sums end at rows 31 and 63, then single rows */
        test_pc_case(71, ms[k], 2);
        test_pc_case(71, ms[k], 3);
        test_pc_case(71, ms[k], 4);
    }
}

static void test_family_api(void)
{
    float x[6] = {-7.0f, -0.3f, 0.0f, 0.31f, 2.0f, NAN}, out[6], g[6] = {1, 2, 3, 4, 5, 6};
    float mn[3] = {-1.0f, 0.0f, -2.0f}, mx[3] = {1.0f, 0.0f, 2.0f}, dmin[3], dmax[3];
    CHECK(cfq_fq_args(x, 6, 1.0f, 1.0f, 8, 0, out, NULL) == CFQ_EMINMAX, "args min == max");
    CHECK(cfq_fq_args(x, 6, -1e-40f, 0.0f, 8, 0, out, NULL) == CFQ_EMINMAX, "args denormal range");
    CHECK(cfq_fq_args_grad(g, x, 6, NAN, 1.0f, 8, 0, out, NULL) == CFQ_ENONFINITE, "args grad NaN");
    CHECK(cfq_fq_vars(x, 6, 0.0f, 0.0f, 8, 0, out, NULL) == CFQ_OK && bits_of(out[5]) == 0u,
          "vars zero range writes +0 even for NaN");
    CHECK(cfq_fq_per_channel(x, 2, 3, 1, mn, mx, 8, 0, out, NULL) == CFQ_OK && out[1] == 0.0f &&
              out[4] == 0.0f,
          "per-channel zero channel");
    CHECK(cfq_fq_per_channel_grad(g, x, 2, 3, 1, mn, mx, 8, 0, out, dmin, dmax, NULL) == CFQ_OK &&
              out[1] == 2.0f && dmin[1] == 0.0f && dmin[0] == 1.0f,
          "per-channel grad: %g %g %g", (double)out[1], (double)dmin[1], (double)dmin[0]);
    mx[2] = INFINITY;
    CHECK(cfq_fq_per_channel(x, 2, 3, 1, mn, mx, 8, 0, out, NULL) == CFQ_ENONFINITE, "pc inf");
    CHECK(cfq_fq_per_channel(x, (size_t)1 << 62, 3, 1 << 20, mn, mx, 8, 0, out, NULL) == CFQ_ESHAPE,
          "pc size overflow");
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Region codes: the forward op writes the vars op's bits, and the gradient
 * from the codes gives vars_grad's bits, on every table. */
static void test_region_case(size_t n, qcase q)
{
    float *x = malloc((n + 1) * sizeof(float)), *g = malloc((n + 1) * sizeof(float));
    float *ref = malloc((n + 1) * sizeof(float)), *got = malloc((n + 1) * sizeof(float));
    unsigned char *codes = malloc(n + 1);
    double ref_sums[2], got_sums[2];
    cfq_params p;
    cfq_fpenv env;
    size_t i;
    int isa, bad;

    cfq_fpenv_enter(&env);
    if (cfq_params_check_make(q.min, q.max, q.num_bits, q.narrow, &p) != CFQ_OK || p.passthrough) {
        cfq_fpenv_leave(&env);
        free(x); free(g); free(ref); free(got); free(codes);
        return;
    }
    for (i = 0; i < n; i++) {
        x[i] = pick_input(p.nudged_min, p.nudged_max);
        g[i] = pick_gradient(i % 5 == 0);
    }
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
        const cfq_kernels *k = table_of(isa);
        if (!table_runs(isa))
            continue;
        cfq_kernels_scalar.vars_forward(x, n, &p, ref, NULL);
        k->vars_forward(x, n, &p, got, codes);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0, "%s region forward differs n=%zu",
              cfq_isa_name(isa), n);
        for (i = 0; i < n && codes[i] == cfq_region_of(x[i], p.nudged_min, p.nudged_max); i++)
            ;
        CHECK(i == n, "%s region code differs n=%zu i=%zu", cfq_isa_name(isa), n, i);
        cfq_kernels_scalar.vars_grad(g, x, n, &p, ref, ref_sums);
        bad = k->region_grad(g, codes, n, &p, got, got_sums);
        for (i = 0; i < n && bits_of(got[i]) == bits_of(ref[i]); i++)
            ;
        /* NaN sums may differ in sign or payload here: the entry points
         * return one canonical NaN. */
        CHECK(!bad && i == n && same_double(got_sums[0], ref_sums[0]) &&
                  same_double(got_sums[1], ref_sums[1]),
              "%s region grad differs n=%zu bad=%d i=%zu sums %a/%a vs %a/%a", cfq_isa_name(isa), n,
              bad, i, got_sums[0], got_sums[1], ref_sums[0], ref_sums[1]);
        if (n > 0) {
            codes[n / 2] = 5;
            CHECK(k->region_grad(g, codes, n, &p, got, got_sums) != 0, "%s bad code unseen n=%zu",
                  cfq_isa_name(isa), n);
            codes[n / 2] = CFQ_REGION_PASS;
            k->region_grad(g, codes, n, &p, got, got_sums);
            CHECK(bits_of(got[n / 2]) == bits_of(g[n / 2]), "%s pass code n=%zu", cfq_isa_name(isa), n);
        }
    }
    cfq_fpenv_leave(&env);
    free(x); free(g); free(ref); free(got); free(codes);
}

/* Region gradient on arbitrary valid codes (pass-through mixed in, as only
 * a hand-made array has them): every table against the scalar one, out of
 * place and in place over the gradients. */
static void test_region_mixed(size_t n)
{
    static const unsigned char valid[6] = {0, 1, 2, 3, 4, CFQ_REGION_PASS};
    float *g = malloc((n + 1) * sizeof(float)), *ref = malloc((n + 1) * sizeof(float));
    float *got = malloc((n + 1) * sizeof(float));
    unsigned char *codes = malloc(n + 1);
    double ref_sums[2], got_sums[2];
    cfq_params p;
    cfq_fpenv env;
    size_t i;
    int isa, bad, in_place;

    cfq_fpenv_enter(&env);
    cfq_params_check_make(-1.0f, 1.0f, 8, 0, &p);
    p.stream = 0;
    for (i = 0; i < n; i++) {
        g[i] = pick_gradient(i % 7 == 0);
        /* mostly inside, so both the skipped and the busy blocks occur */
        codes[i] = rng_next() % 4 == 0 ? valid[rng_next() % 6] : 0;
    }
    cfq_kernels_scalar.region_grad(g, codes, n, &p, ref, ref_sums);
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
        const cfq_kernels *k = table_of(isa);
        if (!table_runs(isa))
            continue;
        /* 0: out of place, 1: in place, 2: non-temporal stores (malloc'd
         * memory is 16-byte aligned, as streaming needs) */
        for (in_place = 0; in_place < 3; in_place++) {
            float *dst = got;
            const float *src = g;
            cfq_params q = p;
            if (in_place == 1) {
                memcpy(got, g, n * sizeof(float));
                src = got;
            }
            q.stream = in_place == 2;
            bad = k->region_grad(src, codes, n, &q, dst, got_sums);
            for (i = 0; i < n && bits_of(got[i]) == bits_of(ref[i]); i++)
                ;
            CHECK(!bad && i == n && same_double(got_sums[0], ref_sums[0]) &&
                      same_double(got_sums[1], ref_sums[1]),
                  "%s mixed region grad differs n=%zu in_place=%d i=%zu", cfq_isa_name(isa), n,
                  in_place, i);
        }
    }
    /* The vars gradient with non-temporal stores, on inputs made from the
     * codes: below, above or inside. */
    {
        float *x = malloc((n + 1) * sizeof(float));
        double vref[2];
        for (i = 0; i < n; i++)
            x[i] = (codes[i] & CFQ_REGION_BELOW) ? -2.0f : (codes[i] & CFQ_REGION_ABOVE) ? 2.0f : 0.5f;
        cfq_kernels_scalar.vars_grad(g, x, n, &p, ref, vref);
        for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
            cfq_params q = p;
            if (!table_runs(isa))
                continue;
            q.stream = 1;
            table_of(isa)->vars_grad(g, x, n, &q, got, got_sums);
            for (i = 0; i < n && bits_of(got[i]) == bits_of(ref[i]); i++)
                ;
            CHECK(i == n && same_double(got_sums[0], vref[0]) && same_double(got_sums[1], vref[1]),
                  "%s streamed vars grad differs n=%zu i=%zu", cfq_isa_name(isa), n, i);
        }
        free(x);
    }
    cfq_fpenv_leave(&env);
    free(g); free(ref); free(got); free(codes);
}

/* The gradients' block modes: runs of blocks with every step busy (one
 * pass), a few busy steps (two passes), none, and busy blocks with
 * non-finite or denormal gradients, in one chunk and across chunks; every
 * table against the scalar one, out of place, in place and streamed, from
 * inputs and from region codes. */
static void test_block_modes(void)
{
    const size_t n = 2 * CFQ_CHUNK + 3 * CFQ_BLOCK + 13;
    float *g = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    unsigned char *codes = malloc(n);
    double ref_sums[2], got_sums[2];
    cfq_params p;
    cfq_fpenv env;
    size_t i, c;
    int isa, mode, from_codes;

    cfq_fpenv_enter(&env);
    cfq_params_check_make(-1.0f, 1.0f, 8, 0, &p);
    for (i = 0; i < n; i++) {
        const size_t block = i / CFQ_BLOCK;
        /* runs of dense blocks (lengths 1..5), separated by sparse or quiet
         * ones */
        const int dense = (block * 7 / 3) % 6 < 3;
        g[i] = rng_uniform(-2.0f, 2.0f);
        x[i] = dense ? (rng_next() % 4 == 0 ? 0.25f : (rng_next() % 2 ? -3.0f : 3.0f))
                     : (block % 3 == 0 && rng_next() % 40 == 0 ? 5.0f : rng_uniform(-0.9f, 0.9f));
        if (dense && rng_next() % 97 == 0)
            g[i] = rng_next() % 2 ? INFINITY : NAN;
        if (rng_next() % 61 == 0)
            g[i] = float_of(0x00000123u | (uint32_t)(rng_next() % 2) << 31); /* denormal */
    }
    cfq_kernels_scalar.vars_forward(x, n, &p, got, codes);
    for (from_codes = 0; from_codes < 2; from_codes++) {
        for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
            const cfq_kernels *k = table_of(isa);
            if (!table_runs(isa))
                continue;
            /* 0: out of place, 1: in place over g, 2: streamed */
            for (mode = 0; mode < 3; mode++) {
                cfq_params q = p;
                int same = 1;
                q.stream = mode == 2;
                for (c = 0; c < n; c += CFQ_CHUNK) {
                    const size_t m = n - c < CFQ_CHUNK ? n - c : CFQ_CHUNK;
                    const float *src = g + c;
                    if (mode == 1) {
                        memcpy(got + c, g + c, m * sizeof(float));
                        src = got + c;
                    }
                    if (from_codes) {
                        cfq_kernels_scalar.region_grad(g + c, codes + c, m, &p, ref + c, ref_sums);
                        same &= k->region_grad(src, codes + c, m, &q, got + c, got_sums) == 0;
                    } else {
                        cfq_kernels_scalar.vars_grad(g + c, x + c, m, &p, ref + c, ref_sums);
                        k->vars_grad(src, x + c, m, &q, got + c, got_sums);
                    }
                    same &= same_double(got_sums[0], ref_sums[0]) && same_double(got_sums[1], ref_sums[1]);
                }
                for (i = 0; i < n && bits_of(got[i]) == bits_of(ref[i]); i++)
                    ;
                CHECK(same && i == n, "%s block modes differ (codes %d, mode %d) at %zu", cfq_isa_name(isa),
                      from_codes, mode, i);
            }
        }
    }
    /* The forward ops and the args gradient with streamed stores, the
     * output at each 16-byte offset from a 64-byte boundary (the body's
     * stores are whole vectors where it is aligned to one), and in place. */
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
        const cfq_kernels *k = table_of(isa);
        unsigned char *codes2 = malloc(n);
        float *raw = malloc((n + 32) * sizeof(float)), *aligned = line_aligned(raw);
        cfq_params q = p;
        int op, off;
        if (!table_runs(isa)) {
            free(codes2);
            free(raw);
            continue;
        }
        q.stream = 1;
        for (off = 0; off < 5; off++)
        for (op = 0; op < 4; op++) {
            /* off 4: in place over a copy of x 16 bytes past a 64-byte
             * boundary, so the body starts at 0, not on a whole vector:
             * 16-byte streams */
            float *out = off < 4 ? aligned + 4 * off : aligned + 4;
            const float *in = off < 4 ? x : out;
            if (off == 4)
                memcpy(out, x, n * sizeof(float));
            switch (op) {
            case 0: cfq_kernels_scalar.vars_forward(x, n, &p, ref, NULL); k->vars_forward(in, n, &q, out, NULL); break;
            case 1: cfq_kernels_scalar.args_forward(x, n, &p, ref, NULL); k->args_forward(in, n, &q, out, NULL); break;
            case 2: cfq_kernels_scalar.args_grad(g, x, n, &p, ref); k->args_grad(g, in, n, &q, out); break;
            default:
                cfq_kernels_scalar.vars_forward(x, n, &p, ref, codes);
                k->vars_forward(in, n, &q, out, codes2);
                break;
            }
            for (i = 0; i < n && bits_of(out[i]) == bits_of(ref[i]); i++)
                ;
            CHECK(i == n && (op < 3 || memcmp(codes, codes2, n) == 0), "%s streamed op %d offset %d differs at %zu",
                  cfq_isa_name(isa), op, off, i);
        }
        free(codes2);
        free(raw);
    }
    cfq_fpenv_leave(&env);
    free(g); free(x); free(ref); free(got); free(codes);
}

/* Threads: identical bits for 1, 2, 3 and 7 threads, wide dynamic range;
 * then a wide pool (64) serving narrow calls again. */
static void test_threads(void)
{
    const size_t n = 1000003;
    const int counts[] = {2, 3, 7, 64, 2, 1};
    const int ncounts = (int)(sizeof counts / sizeof counts[0]);
    float *g = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    float *ref2 = malloc(n * sizeof(float));
    float mins[5] = {-1, -2, 0, -0.5f, -3}, maxs[5] = {1, 2, 0, 0.5f, 3};
    float rmin[5], rmax[5], gmin[5], gmax[5];
    unsigned char *codes = malloc(n), *codes2 = malloc(n);
    size_t i;
    int t;
    for (i = 0; i < n; i++) {
        g[i] = rng_uniform(-1.0f, 1.0f) * powf(10.0f, rng_uniform(-30.0f, 30.0f));
        x[i] = rng_uniform(-3.0f, 3.0f);
    }
    cfq_fq_vars_grad(g, x, n, -1.0f, 1.0f, 8, 0, ref, &rmin[0], &rmax[0], NULL);
    cfq_fq_vars_and_region(x, n, -1.0f, 1.0f, 8, 0, got, codes, NULL);
    for (t = 0; t < ncounts; t++) {
        cfq_exec ex = {CFQ_ISA_AUTO, counts[t]};
        cfq_fq_vars_grad(g, x, n, -1.0f, 1.0f, 8, 0, got, &gmin[0], &gmax[0], &ex);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0 && bits_of(gmin[0]) == bits_of(rmin[0]) &&
                  bits_of(gmax[0]) == bits_of(rmax[0]),
              "vars_grad with %d threads differs", counts[t]);
        cfq_fq_vars_and_region(x, n, -1.0f, 1.0f, 8, 0, got, codes2, &ex);
        CHECK(memcmp(codes, codes2, n) == 0, "region codes with %d threads differ", counts[t]);
        cfq_fq_region_grad(g, codes2, n, got, &gmin[1], &gmax[1], &ex);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0 && bits_of(gmin[1]) == bits_of(rmin[0]) &&
                  bits_of(gmax[1]) == bits_of(rmax[0]),
              "region grad with %d threads differs", counts[t]);
    }
    /* The args op's region codes give its gradient's bits. */
    cfq_fq_args_grad(g, x, n, -1.0f, 1.0f, 8, 0, ref, NULL);
    cfq_fq_args(x, n, -1.0f, 1.0f, 8, 0, ref2, NULL);
    for (t = 0; t < ncounts; t++) {
        cfq_exec ex = {CFQ_ISA_AUTO, counts[t]};
        CHECK(cfq_fq_args_and_region(x, n, -1.0f, 1.0f, 8, 0, got, codes2, &ex) == CFQ_OK &&
                  memcmp(got, ref2, n * sizeof(float)) == 0,
              "args_and_region outputs with %d threads differ", counts[t]);
        cfq_fq_region_grad(g, codes2, n, got, &gmin[1], &gmax[1], &ex);
        CHECK(memcmp(got, ref, n * sizeof(float)) == 0, "args gradient from region codes, %d threads",
              counts[t]);
    }
    CHECK(cfq_fq_args_and_region(x, n, 1.0f, 1.0f, 8, 0, got, codes2, NULL) == CFQ_EMINMAX &&
              cfq_fq_args_and_region(x, n, -1.0f, 1.0f, 8, 0, got, NULL, NULL) == CFQ_ENULL,
          "args_and_region errors");
    /* Per channel, channels last (5) and channels first ([5, n / 5]). */
    cfq_fq_per_channel_grad(g, x, n / 5, 5, 1, mins, maxs, 8, 0, ref, rmin, rmax, NULL);
    for (t = 0; t < ncounts; t++) {
        cfq_exec ex = {CFQ_ISA_AUTO, counts[t]};
        cfq_fq_per_channel_grad(g, x, n / 5, 5, 1, mins, maxs, 8, 0, got, gmin, gmax, &ex);
        CHECK(memcmp(got, ref, (n / 5) * 5 * sizeof(float)) == 0 && memcmp(gmin, rmin, sizeof gmin) == 0 &&
                  memcmp(gmax, rmax, sizeof gmax) == 0,
              "per-channel grad with %d threads differs", counts[t]);
    }
    cfq_fq_per_channel_grad(g, x, 1, 5, n / 5, mins, maxs, 8, 0, ref, rmin, rmax, NULL);
    for (t = 0; t < ncounts; t++) {
        cfq_exec ex = {CFQ_ISA_AUTO, counts[t]};
        cfq_fq_per_channel_grad(g, x, 1, 5, n / 5, mins, maxs, 8, 0, got, gmin, gmax, &ex);
        CHECK(memcmp(got, ref, (n / 5) * 5 * sizeof(float)) == 0 && memcmp(gmin, rmin, sizeof gmin) == 0,
              "channels-first grad with %d threads differs", counts[t]);
    }
    codes[17] = 200;
    CHECK(cfq_fq_region_grad(g, codes, n, got, gmin, gmax, NULL) == CFQ_EREGION, "bad region code");
    free(g); free(x); free(ref); free(ref2); free(got); free(codes); free(codes2);
}

/* 64-bit index arithmetic beyond 2^32 elements without the memory: a fake
 * kernel table checks each chunk's offset and length and returns the
 * length and 1 as its "sums", so the totals count elements and chunks.
 * The pointers are never dereferenced. */
static float fake_base[16];
static int fake_bad;

static void fake_vars_grad(const void *g, const void *x, size_t n, const cfq_params *p, void *dx,
                           double sums[2])
{
    const size_t off = (size_t)((const float *)g - fake_base);
    (void)p;
    if (x != g || dx != g || off % CFQ_CHUNK != 0 || n == 0 || n > CFQ_CHUNK)
        fake_bad = 1;
    sums[0] = (double)n;
    sums[1] = 1.0;
}

static void test_huge_sizes(void)
{
    cfq_kernels fake = cfq_kernels_scalar;
    const size_t n = ((size_t)1 << 32) + 12345;
    const size_t chunks = n / CFQ_CHUNK + 1;
    float a, b;
    int t;
    if (sizeof(size_t) < 8)
        return;
    fake.vars_grad = fake_vars_grad;
    for (t = 1; t <= 3; t += 2) {
        fake_bad = 0;
        CHECK(cfq_vars_grad_run(&fake, CFQ_FLOAT32, fake_base, fake_base, n, -1.0f, 1.0f, 8, 0, fake_base, &a, &b, t) ==
                  CFQ_OK,
              "huge run");
        CHECK(!fake_bad && a == (float)n && b == (float)chunks,
              "huge sizes, %d threads: elements %.0f (want %.0f), chunks %.0f (want %.0f)", t, (double)a,
              (double)n, (double)b, (double)chunks);
    }
}

/* Every table's channel_nudge against the reference nudge, bit for bit:
 * random ranges, zero points on .5 ties, min > max, min == max (0/0 zero
 * points), ranges whose width overflows, denormal bounds, every width and
 * both narrow settings, with channel counts around the vector widths. */
static void test_channel_nudge(void)
{
    static float mins[CFQ_CHANNEL_BLOCK], maxs[CFQ_CHANNEL_BLOCK];
    static cfq_channel_params ref, got;
    int bits, narrow, isa;
    size_t m, c;
    for (bits = 2; bits <= 16; bits++) {
        for (narrow = 0; narrow <= 1; narrow++) {
            const float steps = (float)((1 << bits) - 1 - narrow);
            m = (size_t)(bits * 17 + narrow * 5) % CFQ_CHANNEL_BLOCK + 1;
            for (c = 0; c < m; c++) {
                switch (rng_next() % 8) {
                case 0: { /* a zero point on a tie: scale 1/16, min = -(k + 0.5) / 16 */
                    const float k = (float)(rng_next() % (uint64_t)steps);
                    mins[c] = -(k + 0.5f) / 16.0f;
                    maxs[c] = (steps - k - 0.5f) / 16.0f;
                    break;
                }
                case 1: mins[c] = maxs[c] = rng_uniform(-2.0f, 2.0f) * (float)(rng_next() % 2); break;
                case 2: mins[c] = rng_uniform(0.0f, 3.0f); maxs[c] = -rng_uniform(0.0f, 3.0f); break;
                case 3: mins[c] = -3e38f; maxs[c] = 3.2e38f; break;
                case 4: mins[c] = -1e-40f; maxs[c] = 2e-39f; break;
                case 5: mins[c] = rng_uniform(0.1f, 5.0f); maxs[c] = mins[c] + rng_uniform(0.0f, 5.0f); break;
                default: mins[c] = rng_uniform(-6.0f, 0.0f); maxs[c] = rng_uniform(0.0f, 6.0f); break;
                }
            }
            memset(&ref, 0x5a, sizeof ref);
            {
                cfq_fpenv env;
                cfq_fpenv_enter(&env);
                ref.offset_exact = cfq_channel_params_range(mins, maxs, 0, m, bits, narrow, &ref);
                cfq_fpenv_leave(&env);
            }
            for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
                const cfq_kernels *k = table_of(isa);
                if (!table_runs(isa))
                    continue;
                memset(&got, 0x5a, sizeof got);
                {
                    cfq_fpenv env;
                    cfq_fpenv_enter(&env); /* as the entry points run it */
                    k->channel_nudge(mins, maxs, m, bits, narrow, &got);
                    cfq_fpenv_leave(&env);
                }
                CHECK(memcmp(ref.nudged_min, got.nudged_min, m * 4) == 0 &&
                          memcmp(ref.nudged_max, got.nudged_max, m * 4) == 0 &&
                          memcmp(ref.scale, got.scale, m * 4) == 0 &&
                          memcmp(ref.inv_scale, got.inv_scale, m * 4) == 0 &&
                          memcmp(ref.quant_zero, got.quant_zero, m * 4) == 0 &&
                          memcmp(ref.offset, got.offset, m * 4) == 0 &&
                          memcmp(ref.keep, got.keep, m * 4) == 0 && ref.offset_exact == got.offset_exact,
                      "%s channel_nudge differs: bits %d narrow %d m %zu", cfq_isa_name(isa), bits, narrow, m);
            }
        }
    }
}

/* The SIMD forward's one add of 0.5f - quant_zero (cfq_offset_exact) against
 * the scalar reference's - quant_zero + 0.5f.  Parameters with nudged_min 0
 * and scale 1 make t = x, so x runs through the floats nearest the
 * half-integers below q/2 (where TF's t - quant_zero rounds), those nearest
 * 0.5 - 2^-25 (q = 1, where one add would differ and the two-add form must
 * run), powers of two and specials: args, vars and per-channel forward,
 * float32, each table against the scalar one. */
static void fill_offset_inputs(float *x, size_t n, float q, float hi)
{
    size_t i = 0;
    int j, d, k;
    const float ties[] = {0.5f - 0x1p-25f, 0.5f, 1.0f};
    for (j = 0; j <= 40 && i + 48 < n; j++) { /* the half-integers j + 0.5, j + q/2 - 20 + 0.5 */
        const float h = (j < 20 ? (float)j : floorf(q / 2) + (float)(j - 30)) + 0.5f;
        float up = h, down = h;
        if (h < 0.0f)
            continue;
        for (d = 0; d < 24; d++) {
            x[i++] = up;
            x[i++] = down;
            up = nextafterf(up, INFINITY);
            down = nextafterf(down, 0.0f);
        }
    }
    for (k = 0; k < 3; k++) {
        float up = ties[k], down = ties[k];
        for (d = 0; d < 24 && i + 2 <= n; d++) {
            x[i++] = up = nextafterf(up, INFINITY);
            x[i++] = down = nextafterf(down, 0.0f);
        }
    }
    for (k = -3; k <= 17 && i + 2 <= n; k++) {
        x[i++] = nextafterf(ldexpf(1.0f, k), 0.0f);
        x[i++] = ldexpf(1.0f, k);
    }
    {
        const float special[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY, 1e-40f, hi, hi + 1.0f};
        for (k = 0; k < 9 && i < n; k++)
            x[i++] = special[k];
    }
    while (i < n)
        x[i++] = rng_uniform(0.0f, hi);
}

static void test_forward_offset(void)
{
    enum { N = 4096, M = 32 };
    const float qs[] = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 7.0f, 64.0f, 255.0f, 256.0f, 4095.0f, 65535.0f};
    static float x[N], out[N], ref[N];
    static cfq_channel_params cp;
    cfq_fpenv env;
    size_t k, c;
    int isa, op, mixed;
    cfq_fpenv_enter(&env);
    for (k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        const float q = qs[k], hi = 2.0f * q + 8.0f;
        cfq_params p;
        cfq_params_make(-1.0f, 1.0f, 8, 0, &p); /* then t = x: */
        p.nudged_min = 0.0f;
        p.nudged_max = hi;
        p.scale = p.inv_scale = 1.0f;
        p.quant_zero = q;
        p.offset = 0.5f - q;
        p.offset_exact = cfq_offset_exact(q, 1.0f, 1.0f, 0.0f, hi);
        CHECK(p.offset_exact == (q != 1.0f), "cfq_offset_exact(q = %g) is %d", q, p.offset_exact);
        fill_offset_inputs(x, N, q, hi);
        for (mixed = 0; mixed < 2; mixed++) { /* every channel q, or every other one q = 1 */
            for (c = 0; c < M; c++) {
                const float qc = mixed && c % 2 ? 1.0f : q;
                cp.nudged_min[c] = 0.0f;
                cp.nudged_max[c] = hi;
                cp.scale[c] = cp.inv_scale[c] = 1.0f;
                cp.quant_zero[c] = qc;
                cp.offset[c] = 0.5f - qc;
                cp.keep[c] = 0xffffffffu;
            }
            cp.offset_exact = !mixed && p.offset_exact;
            cp.one = 1.0f;
            cp.zero = 0.0f;
            cp.stream = 0;
            cp.dtype = CFQ_FLOAT32;
            cfq_kernels_scalar.per_channel_forward(x, N / M, M, M, &cp, ref, NULL);
            for (isa = 1; isa < CFQ_ISA_COUNT; isa++) {
                const cfq_kernels *kt = table_of(isa);
                if (!table_runs(isa))
                    continue;
                kt->per_channel_forward(x, N / M, M, M, &cp, out, NULL);
                CHECK(memcmp(out, ref, sizeof out) == 0, "%s per-channel forward, q = %g, mixed %d differs",
                      cfq_isa_name(isa), q, mixed);
            }
        }
        for (op = 0; op < 2; op++) {
            (op ? cfq_kernels_scalar.vars_forward : cfq_kernels_scalar.args_forward)(x, N, &p, ref, NULL);
            for (isa = 1; isa < CFQ_ISA_COUNT; isa++) {
                const cfq_kernels *kt = table_of(isa);
                size_t i;
                if (!table_runs(isa))
                    continue;
                (op ? kt->vars_forward : kt->args_forward)(x, N, &p, out, NULL);
                for (i = 0; i < N && bits_of(out[i]) == bits_of(ref[i]); i++)
                    ;
                CHECK(i == N, "%s %s forward, q = %g: x = %a gives %a, not %a", cfq_isa_name(isa),
                      op ? "vars" : "args", q, i < N ? x[i] : 0.0f, i < N ? out[i] : 0.0f,
                      i < N ? ref[i] : 0.0f);
            }
        }
    }
    {   /* the fast form is the common one: a typical range, and zero points 0, 255 */
        cfq_params p;
        cfq_params_make(-3.0f, 3.0f, 8, 0, &p);
        CHECK(p.offset_exact, "cfq_params_make(-3, 3): offset not exact");
        cfq_params_make(0.0f, 6.0f, 8, 0, &p);
        CHECK(p.offset_exact && p.quant_zero == 0.0f, "cfq_params_make(0, 6): offset not exact");
        cfq_params_make(-6.0f, 0.0f, 16, 0, &p);
        CHECK(p.offset_exact && p.quant_zero == 65535.0f, "cfq_params_make(-6, 0): offset not exact");
        cfq_params_make(-1.0f, 254.0f, 8, 0, &p); /* scale 1, zero point 1 */
        CHECK(!p.offset_exact && p.quant_zero == 1.0f, "cfq_params_make(-1, 254): q %g", p.quant_zero);
    }
    {   /* a pass-through channel (min == max == 0, writes +0) does not clear offset_exact */
        float mins[40], maxs[40];
        for (c = 0; c < 40; c++) {
            mins[c] = c % 7 == 3 ? 0.0f : -1.0f - (float)c / 8.0f;
            maxs[c] = c % 7 == 3 ? 0.0f : 2.0f;
        }
        for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
            if (!table_runs(isa))
                continue;
            cp.offset_exact = -1;
            table_of(isa)->channel_nudge(mins, maxs, 40, 8, 0, &cp);
            CHECK(cp.offset_exact == 1, "%s channel_nudge: offset_exact %d with pass-through channels",
                  cfq_isa_name(isa), cp.offset_exact);
            mins[39] = -1.0f; /* and zero point 1 does */
            maxs[39] = 254.0f;
            table_of(isa)->channel_nudge(mins, maxs, 40, 8, 0, &cp);
            CHECK(cp.offset_exact == 0, "%s channel_nudge: offset_exact with zero point 1", cfq_isa_name(isa));
            maxs[39] = 2.0f;
            mins[39] = -1.0f - 39.0f / 8.0f;
        }
    }
    cfq_fpenv_leave(&env);
}

/* The elementwise ops at every output alignment (their vector body starts
 * where an output vector lies in one cache line, after one unaligned
 * vector), inputs at two offsets, and in place: each table against the
 * scalar one, for each element type. */
static void test_alignment(void)
{
    enum { N_MAX = 1000, PAD = 64 };
    const size_t ns[] = {31, 32, 33, 71, 300, N_MAX};
    const int dts[] = {CFQ_FLOAT32, CFQ_FLOAT16, CFQ_BFLOAT16, CFQ_BFLOAT16_NATIVE};
    unsigned char *mem = malloc(3 * (N_MAX + PAD) * 4 + 64);
    unsigned char *xb = mem + (64 - (uintptr_t)mem % 64) % 64, *gb = xb + (N_MAX + PAD) * 4;
    unsigned char *ob = gb + (N_MAX + PAD) * 4, *src_x = malloc(N_MAX * 4), *src_g = malloc(N_MAX * 4);
    unsigned char *ref = malloc(N_MAX * 4), *codes = malloc(N_MAX), *ref_codes = malloc(N_MAX);
    cfq_params p;
    cfq_fpenv env;
    size_t k, i, shift;
    int d, isa, op, t;

    cfq_fpenv_enter(&env);
    (void)cfq_params_check_make(-1.7f, 2.3f, 8, 0, &p);
    for (k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (d = 0; d < 4; d++)
            for (isa = 1; isa < CFQ_ISA_COUNT; isa++) {
                const cfq_kernels *kt = table_of(isa);
                const size_t n = ns[k], es = CFQ_ELEMENT_SIZE(dts[d]);
                const int ref_dt = dts[d] == CFQ_BFLOAT16_NATIVE ? CFQ_BFLOAT16 : dts[d];
                if (!table_runs(isa) || (dts[d] == CFQ_BFLOAT16_NATIVE && !kt->bf16_native))
                    continue;
                for (op = 0; op < 3; op++)
                    for (shift = 0; shift < 17; shift++)
                        for (t = 0; t < 3; t++) { /* inputs 0 or 5 elements in, or in place (2) */
                            unsigned char *x = xb + (t == 1 ? 5 : 0) * es, *g = gb + 3 * es;
                            unsigned char *out = ob + shift * es;
                            for (i = 0; i < n; i++) { /* values in and around the range, some any bits */
                                const uint32_t any = (uint32_t)rng_next();
                                if (dts[d] == CFQ_FLOAT32) {
                                    const uint32_t w = i % 7 == 0 ? any : bits_of(pick_input(p.nudged_min, p.nudged_max));
                                    memcpy(src_x + 4 * i, &w, 4);
                                } else if (i % 7 == 0) {
                                    memcpy(src_x + 2 * i, &any, 2);
                                } else {
                                    cfq_store1(ref_dt, src_x, i, pick_input(p.nudged_min, p.nudged_max));
                                }
                            }
                            for (i = 0; i < n * es; i++)
                                src_g[i] = (unsigned char)rng_next();
                            p.dtype = ref_dt;
                            run_elementwise(&cfq_kernels_scalar, op, src_g, src_x, n, &p, ref, ref_codes);
                            p.dtype = dts[d];
                            if (t == 2 && op < 2) /* the forward ops over x */
                                x = out;
                            if (t == 2 && op == 2) /* the gradient over g */
                                g = out;
                            memcpy(x, src_x, n * es);
                            memcpy(g, src_g, n * es);
                            run_elementwise(kt, op, g, x, n, &p, out, codes);
                            CHECK(memcmp(out, ref, n * es) == 0 && (op != 0 || memcmp(codes, ref_codes, n) == 0),
                                  "%s dtype %d op %d n=%zu output +%zu inputs %d differ", cfq_isa_name(isa),
                                  dts[d], op, n, shift, t);
                        }
            }
    cfq_fpenv_leave(&env);
    free(mem); free(src_x); free(src_g); free(ref); free(codes); free(ref_codes);
}

int main(void)
{
    int isa;
    printf("cfq %s C tests; active path %s; tables run:", cfq_version(),
           cfq_isa_name(cfq_active_isa()));
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++)
        if (table_runs(isa))
            printf(" %s", cfq_isa_name(isa));
    printf("\n");
    test_nudge_values();
    test_channel_nudge();
    test_errors();
    test_special_semantics();
    test_fpenv_restored();
    test_sizes_and_ranges();
    test_family();
    test_family_api();
    test_alignment();
    test_forward_offset();
    {
        size_t n;
        for (n = 0; n <= 70; n++) {
            qcase a = {-1.3f, 2.2f, 2 + (int)(n % 15), (int)(n & 1)}, b = {1.0f, -1.0f, 8, 0};
            qcase c = {-3e38f, 3e38f, 8, 0};
            test_region_case(n, a);
            test_region_case(n, b);
            test_region_case(n, c);
        }
        test_region_case(CFQ_CHUNK, (qcase){-0.7f, 0.7f, 8, 0});
        for (n = 0; n <= 300; n += 7)
            test_region_mixed(n);
        test_region_mixed(CFQ_CHUNK);
        test_region_mixed(CFQ_CHUNK - 3);
    }
    test_block_modes();
    test_half_dtypes();
    test_threads();
    test_huge_sizes();
    printf("%ld passed, %ld failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
