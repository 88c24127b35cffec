/*
 * test_half.c -- the 16-bit element types.  The conversions against an
 * independent nearest-even search; then every op on float16 and bfloat16
 * (with AVX512-BF16's conversion where the CPU has it) against the float32
 * op between the two conversions, on every table this process runs, bit for
 * bit: every 16-bit pattern as an input (NaN, +-Inf, -0.0, subnormals),
 * ranges whose outputs round to infinity, pass-through, streamed stores.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* ---- Conversions ---------------------------------------------------------- */

/* The float16 nearest to d (finite), ties to the even pattern, by binary
 * search over the positive patterns as doubles; +-Inf past 65520. */
static uint16_t slow_f16(double d)
{
    const uint16_t sign = d < 0 || (d == 0 && signbit(d)) ? 0x8000u : 0;
    double a = fabs(d);
    unsigned lo = 0, hi = 0x7bffu;
    if (a >= 65520.0)
        return (uint16_t)(sign | 0x7c00u);
    while (hi - lo > 1) { /* largest pattern <= a in lo */
        const unsigned mid = (lo + hi) / 2;
        if ((double)cfq_f16_to_f32((uint16_t)mid) <= a)
            lo = mid;
        else
            hi = mid;
    }
    if ((double)cfq_f16_to_f32((uint16_t)hi) <= a)
        lo = hi;
    if (lo < 0x7bffu) {
        const double below = cfq_f16_to_f32((uint16_t)lo), above = cfq_f16_to_f32((uint16_t)(lo + 1));
        if (a - below > above - a || (a - below == above - a && (lo & 1u)))
            lo++;
    }
    return (uint16_t)(sign | lo);
}

static void test_conversions(void)
{
    unsigned h, bad16 = 0, badbf = 0, badnear = 0;
    int k;
    for (h = 0; h < 65536; h++) {
        const uint16_t b = (uint16_t)h;
        const uint16_t bf_back = cfq_f32_to_bf16(cfq_bf16_to_f32(b));
        const int bf_nan = (b & 0x7fffu) > 0x7f80u;
        bad16 += cfq_f32_to_f16(cfq_f16_to_f32(b)) != b;
        badbf += bf_nan ? bf_back != ((b & 0x8000u) | 0x7fc0u) : bf_back != b;
        if ((b & 0x7c00u) != 0x7c00u) { /* finite: the value itself, exactly */
            const double v = ldexp((double)((b & 0x3ffu) | ((b & 0x7c00u) ? 0x400u : 0)),
                                   (int)((b >> 10) & 0x1fu) - ((b & 0x7c00u) ? 25 : 24));
            bad16 += (double)cfq_f16_to_f32(b) != (b & 0x8000u ? -v : v);
        }
    }
    CHECK(bad16 == 0, "float16 round trips or values differ: %u", bad16);
    CHECK(badbf == 0, "bfloat16 round trips differ: %u", badbf);
    /* Nearest-even narrowing: random floats, and the neighbours of every
     * midpoint between float16 patterns. */
    for (k = 0; k < 200000; k++) {
        const float f = float_of((uint32_t)(rng_next() >> 32) & 0xbfffffffu); /* |f| < 2 * 2^127 */
        if (isfinite(f) && cfq_f32_to_f16(f) != slow_f16(f))
            badnear++;
    }
    for (h = 0; h < 0x7bff; h++) {
        const double mid = ((double)cfq_f16_to_f32((uint16_t)h) + (double)cfq_f16_to_f32((uint16_t)(h + 1))) / 2;
        const float m = (float)mid, up = nextafterf(m, INFINITY), down = nextafterf(m, 0.0f);
        badnear += cfq_f32_to_f16(m) != slow_f16(m);
        badnear += cfq_f32_to_f16(up) != slow_f16(up);
        badnear += cfq_f32_to_f16(down) != slow_f16(down);
    }
    CHECK(badnear == 0, "float16 narrowing is not nearest-even: %u", badnear);
    CHECK(cfq_f32_to_bf16(float_of(0x3f808000u)) == 0x3f80u && cfq_f32_to_bf16(float_of(0x3f818000u)) == 0x3f82u &&
              cfq_f32_to_bf16(float_of(0x7f7fffffu)) == 0x7f80u && cfq_f32_to_bf16(float_of(0xffc12345u)) == 0xffc0u,
          "bfloat16 narrowing: ties to even, overflow, NaN");
}

/* ---- Ops ------------------------------------------------------------------- */

/* Sums equal as the ops return them: NaN payloads inside the compensated
 * sums may differ between two compilations of the same arithmetic (which
 * operand of a NaN addition comes first), and the results make every NaN
 * 0x7fc00000. */
static int same_sum(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* The sums' results, after the last stretch's partials (as cfq_per_channel.c
 * finishes them). */
static int same_channel_sums(cfq_channel_sums *a, cfq_channel_sums *b, size_t m)
{
    size_t j;
    cfq_channel_sums_flush(a, 0, m);
    cfq_channel_sums_flush(b, 0, m);
    for (j = 0; j < m; j++) {
        const cfq_sum ab = {a->below_s[j], a->below_c[j]}, bb = {b->below_s[j], b->below_c[j]};
        const cfq_sum aa = {a->above_s[j], a->above_c[j]}, ba = {b->above_s[j], b->above_c[j]};
        if (bits_of(cfq_sum_result(&ab)) != bits_of(cfq_sum_result(&bb)) ||
            bits_of(cfq_sum_result(&aa)) != bits_of(cfq_sum_result(&ba)))
            return 0;
    }
    return 1;
}

static float up(int dt, uint16_t b)
{
    return dt == CFQ_FLOAT16 ? cfq_f16_to_f32(b) : cfq_bf16_to_f32(b);
}

static uint16_t down(int dt, float f)
{
    return dt == CFQ_FLOAT16 ? cfq_f32_to_f16(f) : cfq_f32_to_bf16(f);
}

/* The 16-bit results of an op (got) against its float32 results narrowed
 * (want32): bit for bit; pass-through lanes (the gradients copied) compare
 * to the gradients passed through. */
static size_t first_difference(int dt, const uint16_t *got, const float *want32, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (got[i] != down(dt, want32[i]))
            return i;
    return n;
}

/* Every op of table k on dtype kdt (CFQ_FLOAT16, CFQ_BFLOAT16 or
 * CFQ_BFLOAT16_NATIVE) against the scalar float32 op on the widened arrays. */
static void test_half_table(const cfq_kernels *k, int kdt, const char *what)
{
    const int dt = kdt == CFQ_FLOAT16 ? CFQ_FLOAT16 : CFQ_BFLOAT16;
    const size_t n = 65536 + 37, rows = 257, m = 70;
    static const float ranges[][2] = {{-1.0f, 1.0f}, {-6.0f, 6.0f}, {0.0f, 0.0f}, {0.5f, 0.5f},
                                      {-1e5f, 1e5f}, {2.0f, -2.0f}, {-3e38f, 3e38f}};
    uint16_t *xh = malloc(n * 2), *gall = malloc(n * 2), *gfin = malloc(n * 2), *outh = malloc(n * 2), *gh;
    uint16_t *oraw = malloc((n + 64) * 2), *aligned = line_aligned(oraw); /* outputs at chosen offsets */
    float *xf = malloc(n * 4), *gfall = malloc(n * 4), *gffin = malloc(n * 4), *outf = malloc(n * 4), *gf;
    unsigned char *codes = malloc(n), *codes32 = malloc(n);
    float mins[70], maxs[70], gmin, gmax, fmin, fmax;
    cfq_channel_params *cp = malloc(sizeof *cp);
    cfq_channel_sums *acc = malloc(sizeof *acc), *acc32 = malloc(sizeof *acc32);
    cfq_fpenv env;
    size_t i, r, at;
    int stream, finite, w;

    for (i = 0; i < n; i++) {
        const uint16_t exp_mask = dt == CFQ_FLOAT16 ? 0x7c00u : 0x7f80u;
        xh[i] = (uint16_t)(i * 40503u);       /* every pattern, shuffled */
        gall[i] = (uint16_t)(i * 9301u + 7u); /* every pattern, shuffled otherwise */
        /* and every finite one (subnormals included): chunks without a
         * non-finite g take the gradients' lazy path (see cfq_grad_blocks) */
        gfin[i] = (gall[i] & exp_mask) == exp_mask ? (uint16_t)(gall[i] & ~0x4000u) : gall[i];
        xf[i] = up(dt, xh[i]);
        gfall[i] = up(dt, gall[i]);
        gffin[i] = up(dt, gfin[i]);
    }
    for (finite = 0; finite < 2; finite++)
    for (r = 0, gh = finite ? gfin : gall, gf = finite ? gffin : gfall; r < sizeof ranges / sizeof ranges[0];
         r++) {
        const float mn = ranges[r][0], mx = ranges[r][1];
        cfq_params p;
        double sums[2], sums32[2];
        int bad;
        cfq_vars_grad_run(k, kdt, gh, xh, n, mn, mx, 8, 0, outh, &gmin, &gmax, 1);
        cfq_vars_grad_run(&cfq_kernels_scalar, CFQ_FLOAT32, gf, xf, n, mn, mx, 8, 0, outf, &fmin, &fmax, 1);
        i = first_difference(dt, outh, outf, n);
        CHECK(i == n && bits_of(gmin) == bits_of(fmin) && bits_of(gmax) == bits_of(fmax),
              "%s vars_grad [%g, %g] finite g %d differs at %zu: %04x want %04x (g %04x x %04x)", what, mn, mx,
              finite, i,
              i < n ? outh[i] : 0, i < n ? down(dt, outf[i]) : 0, i < n ? gh[i] : 0, i < n ? xh[i] : 0);
        cfq_fpenv_enter(&env);
        cfq_params_make(mn, mx, 8, r % 2, &p);
        if (p.passthrough) {
            cfq_fpenv_leave(&env);
            continue; /* the forward ops write zeros at the op level */
        }
        /* streamed stores (stream > 0) with the output on a 64-byte
         * boundary (1) or 16 bytes past one (2: the body starts after a
         * head vector), then in place there (3: the body starts at 0, off
         * any whole vector, so 16-byte streams) */
        for (stream = 0; stream < 4; stream++) {
            cfq_params ph = p;
            uint16_t *o = stream == 0 ? outh : stream == 1 ? aligned : aligned + 8;
            const uint16_t *in = stream == 3 ? o : xh;
            ph.dtype = kdt;
            ph.stream = stream != 0;
            if (stream == 3)
                memcpy(o, xh, n * 2);
            k->vars_forward(in, n, &ph, o, codes);
            cfq_kernels_scalar.vars_forward(xf, n, &p, outf, codes32);
            i = first_difference(dt, o, outf, n);
            CHECK(i == n && memcmp(codes, codes32, n) == 0, "%s vars forward [%g, %g] stream %d differs at %zu",
                  what, mn, mx, stream, i);
            if (stream == 3)
                memcpy(o, xh, n * 2);
            k->args_forward(in, n, &ph, o, NULL);
            cfq_kernels_scalar.args_forward(xf, n, &p, outf, NULL);
            i = first_difference(dt, o, outf, n);
            CHECK(i == n, "%s args forward [%g, %g] stream %d differs at %zu", what, mn, mx, stream, i);
            if (stream == 3)
                memcpy(o, xh, n * 2);
            k->args_grad(gh, in, n, &ph, o);
            cfq_kernels_scalar.args_grad(gf, xf, n, &p, outf);
            i = first_difference(dt, o, outf, n);
            CHECK(i == n, "%s args grad [%g, %g] stream %d differs at %zu", what, mn, mx, stream, i);
            /* the region gradient on the codes, chunk by chunk */
            for (at = 0, bad = 0; at < n; at += CFQ_CHUNK) {
                const size_t len = n - at < CFQ_CHUNK ? n - at : CFQ_CHUNK;
                if (at % (2 * CFQ_CHUNK) == 0 && len > 150) /* pass-through codes mixed in */
                    memset(codes + at + 100, CFQ_REGION_PASS, 50);
                memcpy(codes32 + at, codes + at, len);
                bad |= k->region_grad(gh + at, codes + at, len, &ph, o + at, sums);
                bad |= cfq_kernels_scalar.region_grad(gf + at, codes32 + at, len, &p, outf + at, sums32);
                bad |= !same_sum(sums[0], sums32[0]) || !same_sum(sums[1], sums32[1]);
            }
            for (i = 0; i < n; i++) {
                const uint16_t want = codes[i] == CFQ_REGION_PASS ? o[i] : down(dt, outf[i]);
                uint16_t passed;
                cfq_copy1(dt, &passed, gh + i, 0);
                if (o[i] != want || (codes[i] == CFQ_REGION_PASS && o[i] != passed))
                    break;
            }
            CHECK(!bad && i == n, "%s region grad [%g, %g] stream %d differs at %zu", what, mn, mx, stream, i);
        }
        cfq_fpenv_leave(&env);
    }
    /* Per channel over the last axis: rows x 70 channels (a vector body and
     * a tail), one channel passing through; every pattern as g, then every
     * finite one (the gradient's lazy path, see cfq_per_channel_grad_rows). */
    for (i = 0; i < m; i++) {
        mins[i] = i == 3 ? 0.0f : -0.5f - (float)i * 0.25f;
        maxs[i] = i == 3 ? 0.0f : 0.75f + (float)i * 0.125f;
    }
    cfq_fpenv_enter(&env);
    cfq_channel_params_make(mins, maxs, 0, m, 6, 1, cp);
    for (finite = 0; finite < 2; finite++) {
        cfq_channel_params cp32 = *cp;
        uint16_t passed;
        int bad;
        gh = finite ? gfin : gall;
        gf = finite ? gffin : gfall;
        cp32.dtype = CFQ_FLOAT32;
        cp->dtype = kdt;
        k->per_channel_forward(xh, rows, m, m, cp, outh, codes);
        cfq_kernels_scalar.per_channel_forward(xf, rows, m, m, &cp32, outf, codes32);
        i = first_difference(dt, outh, outf, rows * m);
        CHECK(i == rows * m && memcmp(codes, codes32, rows * m) == 0, "%s per-channel forward differs at %zu", what, i);
        memset(acc, 0, sizeof *acc);
        memset(acc32, 0, sizeof *acc32);
        k->per_channel_grad(gh, xh, rows, m, m, cp, outh, acc);
        cfq_kernels_scalar.per_channel_grad(gf, xf, rows, m, m, &cp32, outf, acc32);
        for (i = 0; i < rows * m; i++) {
            cfq_copy1(dt, &passed, gh + i, 0);
            if (outh[i] != (i % m == 3 ? passed : down(dt, outf[i])))
                break;
        }
        CHECK(i == rows * m && same_channel_sums(acc, acc32, m), "%s per-channel grad finite g %d differs at %zu", what,
              finite, i);
        memset(acc, 0, sizeof *acc);
        bad = k->per_channel_region_grad(gh, codes, rows, m, m, cp, outh, acc);
        for (i = 0; i < rows * m; i++) {
            cfq_copy1(dt, &passed, gh + i, 0);
            if (outh[i] != (i % m == 3 ? passed : down(dt, outf[i])))
                break;
        }
        CHECK(!bad && i == rows * m && same_channel_sums(acc, acc32, m),
              "%s per-channel region grad finite g %d differs at %zu", what, finite, i);
    }
    /* Rows of 16 and 64 channels, none passing through, with every pattern
     * as g, then every finite one, through the cache and streamed: the
     * kernels that keep a few channel blocks across all rows
     * (cfq_per_channel_grad_blocks), whose group with a non-finite g runs
     * again with every test. */
    for (w = 0; w < 2; w++)
        for (finite = 0; finite < 4; finite++) {
            const size_t m2 = w == 0 ? 16 : 64, rows2 = rows * m / m2;
            cfq_channel_params cp32;
            cfq_channel_params_make(mins + 4, maxs + 4, 0, m2, 6, 1, cp);
            cp->dtype = kdt;
            cp->stream = finite >> 1;
            cp32 = *cp;
            cp32.dtype = CFQ_FLOAT32;
            cp32.stream = 0;
            gh = finite & 1 ? gfin : gall;
            gf = finite & 1 ? gffin : gfall;
            memset(acc, 0, sizeof *acc);
            memset(acc32, 0, sizeof *acc32);
            k->per_channel_grad(gh, xh, rows2, m2, m2, cp, outh, acc);
            cfq_kernels_scalar.per_channel_grad(gf, xf, rows2, m2, m2, &cp32, outf, acc32);
            i = first_difference(dt, outh, outf, rows2 * m2);
            CHECK(i == rows2 * m2 && same_channel_sums(acc, acc32, m2),
                  "%s per-channel grad, %zu channels, finite g %d, stream %d, differs at %zu", what, m2, finite & 1,
                  finite >> 1, i);
        }
    cfq_fpenv_leave(&env);
    free(xh); free(gall); free(gfin); free(outh); free(xf); free(gfall); free(gffin); free(outf); free(codes); free(codes32);
    free(oraw);
    free(cp); free(acc); free(acc32);
}

/* Ranges whose nudged bounds sit where the keys (cfq_params_keys) are
 * easiest to get wrong: at +-0 (every bfloat16 subnormal compares as 0),
 * among float16 subnormals, past float16's largest, on one side of 0 only;
 * with 2, 8 and 16 bits.  [-3e38, 3e38] nudges to a NaN minimum and [2,
 * -2] to an inverted range (no key inside); [0.5, 0.5] and the float32
 * denormal ones pass through under DAZ (keys checked only). */
static const float key_ranges[][2] = {{0.0f, 6.0f},      {-6.0f, 0.0f},    {1.0f, 3.0f},     {-3.0f, -1.0f},
                                      {-1e-3f, 1e-3f},   {-1e-6f, 2e-6f},  {-7e4f, 7e4f},    {-65504.0f, 65504.0f},
                                      {-2e-38f, 3e-38f}, {-1.5e-38f, 0.0f}, {5e-39f, 1e-38f}, {-1e-40f, 1e-40f},
                                      {-3e38f, 3e38f},   {2.0f, -2.0f},    {0.5f, 0.5f}};

/* The keys of each range against every 16-bit pattern compared as floats;
 * then the vars gradient of table k and the per-channel gradient over runs
 * (axis 0, the same kernel) against the scalar float32 op, with every
 * pattern as x where the keyed pass reads it: the last quarter of each
 * 64-element block is +0, always inside, so no block is all busy and none
 * runs the one-pass path instead (with the patterns shuffled through every
 * block, only a chunk's first block had taken the keyed pass). */
static void test_half_keys(int isa, int kdt, const char *what)
{
    const int dt = kdt == CFQ_FLOAT16 ? CFQ_FLOAT16 : CFQ_BFLOAT16;
    const size_t n = (65536 / 48 + 2) * 64; /* every pattern in the first 48 of 64; whole blocks for both channels */
    static const int bits[] = {2, 8, 16};
    static const cfq_kernels with_keys = {.name = "keys", .keys = 1};
    const cfq_kernels *k = table_of(isa);
    const cfq_exec scalar = {CFQ_ISA_SCALAR, 1}, on_isa = {isa, 1};
    uint16_t *xh = malloc(2 * n * 2), *gh = malloc(2 * n * 2), *outh = malloc(2 * n * 2);
    float *xf = malloc(2 * n * 4), *gf = malloc(2 * n * 4), *outf = malloc(2 * n * 4);
    size_t i, r, next = 0;
    int b;
    for (i = 0; i < 2 * n; i++) {
        const uint16_t exp_mask = dt == CFQ_FLOAT16 ? 0x7c00u : 0x7f80u, gw = (uint16_t)(i * 9301u + 7u);
        xh[i] = i % 64 < 48 ? (uint16_t)(next++ * 40503u) : 0;
        gh[i] = (gw & exp_mask) == exp_mask ? (uint16_t)(gw & ~0x4000u) : gw;
        xf[i] = up(dt, xh[i]);
        gf[i] = up(dt, gh[i]);
    }
    for (r = 0; r < sizeof key_ranges / sizeof key_ranges[0]; r++)
        for (b = 0; b < 3; b++) {
            const float mn = key_ranges[r][0], mx = key_ranges[r][1];
            const float mins[2] = {mn, -mx}, maxs[2] = {mx, -mn};
            float gmin, gmax, fmin, fmax, dmin[2], dmax[2], fdmin[2], fdmax[2];
            cfq_params p;
            cfq_fpenv env;
            unsigned w;
            int rc;
            cfq_fpenv_enter(&env);
            cfq_params_make(mn, mx, bits[b], 0, &p);
            p.dtype = kdt;
            cfq_params_keys(&p, &with_keys, n);
            for (w = 0; w < 65536u; w++) {
                const float x = up(dt, (uint16_t)w);
                const int key = (w & 0x8000u) ? -1 - (int)(w & 0x7fffu) : (int)w;
                if ((x >= p.nudged_min && x <= p.nudged_max) != (p.keyed && key >= p.key_lo && key <= p.key_hi))
                    break;
            }
            cfq_fpenv_leave(&env);
            CHECK(w == 65536u, "%s keys of [%g, %g] %d bits: [%d, %d] wrong at %04x", what, mn, mx, bits[b], p.key_lo,
                  p.key_hi, w);
            rc = cfq_vars_grad_run(k, kdt, gh, xh, n, mn, mx, bits[b], 0, outh, &gmin, &gmax, 1);
            rc |= cfq_vars_grad_run(&cfq_kernels_scalar, CFQ_FLOAT32, gf, xf, n, mn, mx, bits[b], 0, outf, &fmin,
                                    &fmax, 1);
            i = first_difference(dt, outh, outf, n);
            CHECK(rc == CFQ_OK && i == n && bits_of(gmin) == bits_of(fmin) && bits_of(gmax) == bits_of(fmax),
                  "%s keyed vars_grad [%g, %g] %d bits differs at %zu", what, mn, mx, bits[b], i);
            /* two channels of n elements each: [mn, mx] and [-mx, -mn] */
            CHECK(cfq_fq_per_channel_grad_typed(dt, gh, xh, 1, 2, n, mins, maxs, bits[b], 0, outh, dmin, dmax,
                                                &on_isa) == CFQ_OK &&
                      cfq_fq_per_channel_grad(gf, xf, 1, 2, n, mins, maxs, bits[b], 0, outf, fdmin, fdmax, &scalar) ==
                          CFQ_OK,
                  "%s keyed per-channel grad [%g, %g] failed", what, mn, mx);
            i = first_difference(dt, outh, outf, 2 * n);
            CHECK(i == 2 * n && bits_of(dmin[0]) == bits_of(fdmin[0]) && bits_of(dmin[1]) == bits_of(fdmin[1]) &&
                      bits_of(dmax[0]) == bits_of(fdmax[0]) && bits_of(dmax[1]) == bits_of(fdmax[1]),
                  "%s keyed per-channel grad axis 0 [%g, %g] %d bits differs at %zu", what, mn, mx, bits[b], i);
        }
    free(xh); free(gh); free(outh); free(xf); free(gf); free(outf);
}

/* The typed entry points: dtypes checked, the same bits as the kernels. */
static void test_half_api(void)
{
    uint16_t x[100], g[100], out[100], out2[100];
    unsigned char region[100];
    float mn[2] = {-1.0f, -2.0f}, mx[2] = {1.0f, 0.5f}, dmin[2], dmax[2], a, b;
    int i;
    for (i = 0; i < 100; i++) {
        x[i] = (uint16_t)(0x3c00u + i * 37u);
        g[i] = (uint16_t)(0xbc00u + i * 11u);
    }
    CHECK(cfq_fq_vars_typed(7, x, 100, -1, 1, 8, 0, out, NULL) == CFQ_EDTYPE, "bad dtype");
    CHECK(cfq_fq_vars_grad_typed(-1, g, x, 100, -1, 1, 8, 0, out, &a, &b, NULL) == CFQ_EDTYPE, "bad dtype");
    CHECK(cfq_fq_per_channel_typed(3, x, 50, 2, 1, mn, mx, 8, 0, out, NULL) == CFQ_EDTYPE,
          "the internal dtype is not public");
    CHECK(cfq_fq_vars_typed(CFQ_BFLOAT16, x, 100, -1, 1, 8, 0, out, NULL) == CFQ_OK &&
              cfq_fq_vars_and_region_typed(CFQ_BFLOAT16, x, 100, -1, 1, 8, 0, out2, region, NULL) == CFQ_OK &&
              memcmp(out, out2, sizeof out) == 0,
          "bfloat16 vars and vars with codes");
    CHECK(cfq_fq_per_channel_and_region_typed(CFQ_FLOAT16, x, 50, 2, 1, mn, mx, 8, 0, out, region, NULL) == CFQ_OK &&
              cfq_fq_per_channel_region_grad_typed(CFQ_FLOAT16, g, region, 50, 2, 1, out, dmin, dmax, NULL) == CFQ_OK &&
              cfq_fq_per_channel_grad_typed(CFQ_FLOAT16, g, x, 50, 2, 1, mn, mx, 8, 0, out2, dmin + 0, dmax + 0, NULL) == CFQ_OK &&
              memcmp(out, out2, sizeof out) == 0,
          "float16 per-channel region gradient equals the per-channel gradient");
    region[5] = 77;
    CHECK(cfq_fq_per_channel_region_grad_typed(CFQ_FLOAT16, g, region, 50, 2, 1, out, dmin, dmax, NULL) == CFQ_EREGION,
          "bad region byte in the per-channel region gradient");
    CHECK(cfq_fq_per_channel_region_grad_typed(CFQ_FLOAT16, g, NULL, 50, 2, 1, out, dmin, dmax, NULL) == CFQ_ENULL,
          "NULL region");
}

void test_half_dtypes(void)
{
    int isa;
    test_conversions();
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
        char what[64];
        if (!table_runs(isa))
            continue;
        snprintf(what, sizeof what, "%s float16", cfq_isa_name(isa));
        test_half_table(table_of(isa), CFQ_FLOAT16, what);
        test_half_keys(isa, CFQ_FLOAT16, what);
        snprintf(what, sizeof what, "%s bfloat16", cfq_isa_name(isa));
        test_half_table(table_of(isa), CFQ_BFLOAT16, what);
        test_half_keys(isa, CFQ_BFLOAT16, what);
        if (cfq_kernel_dtype(table_of(isa), CFQ_BFLOAT16) == CFQ_BFLOAT16_NATIVE) {
            snprintf(what, sizeof what, "%s bfloat16 (AVX512-BF16)", cfq_isa_name(isa));
            test_half_table(table_of(isa), CFQ_BFLOAT16_NATIVE, what);
            test_half_keys(isa, CFQ_BFLOAT16_NATIVE, what);
        }
    }
    test_half_api();
}
