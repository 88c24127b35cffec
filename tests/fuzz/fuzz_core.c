/*
 * fuzz_core.c -- libFuzzer harness for every public entry point of cfq.h.
 *
 * Build and run with `make fuzz-short` (about a minute) or `make fuzz` (ten
 * minutes).  The input bytes choose the op, the sizes (small, 0 included,
 * sometimes past a SIMD block, a chunk or a channel block), min/max (raw
 * bits: NaN, +-Inf, denormals), num_bits (-5..25), narrow_range, the exec
 * options (isa -2..5, threads -1..9, or NULL), in-place aliasing, NULL
 * pointers and sizes that overflow, then the array contents.
 *
 * Invariants checked (a violation aborts, which libFuzzer reports):
 *  - every call returns CFQ_OK or a negative code that cfq_strerror() names;
 *  - the scalar path (CFQ_ISA_SCALAR) and every available path, on 1 thread
 *    and on the fuzzer's thread count, return the same code and, on CFQ_OK,
 *    the same bits in every output (sums: any NaN equals any NaN); the
 *    fuzzer's own exec, when valid, agrees too;
 *  - on CFQ_OK every output element is written (runs use different fill
 *    patterns for the output buffers);
 *  - inputs that are not also the output are left alone;
 *  - the per-channel ops write nothing when they return CFQ_ENONFINITE;
 *  - cfq_fq_region_grad() on the codes of cfq_fq_vars_and_region() gives
 *    the bits of cfq_fq_vars_grad() on the same inputs;
 *  - sizes that overflow are rejected without touching memory;
 *  - the caller's floating-point environment (MXCSR) is restored.
 * AddressSanitizer and UndefinedBehaviorSanitizer catch the rest.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfq.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FZ_GET_FPENV() _mm_getcsr()
#else
#define FZ_GET_FPENV() 0u
#endif

/* Elements at most; enough for two chunks (CFQ_CHUNK is 16384) and more than
 * one per-channel block (256 channels). */
#define FZ_MAX_ELEMS 40000u

enum fz_op {
    OP_VARS_GRAD, OP_VARS, OP_ARGS, OP_ARGS_GRAD, OP_PER_CHANNEL, OP_PER_CHANNEL_GRAD,
    OP_VARS_AND_REGION, OP_REGION_GRAD, OP_NUDGE, OP_COUNT
};
static const char *const fz_op_names[OP_COUNT] = {
    "fq_vars_grad", "fq_vars", "fq_args", "fq_args_grad", "fq_per_channel",
    "fq_per_channel_grad", "fq_vars_and_region", "fq_region_grad", "nudge"};

/* Where the output goes: its own buffer, or over an input. */
enum fz_alias { ALIAS_NONE, ALIAS_GRADIENTS, ALIAS_INPUTS };

/* ---- Reading the fuzzer's bytes ------------------------------------------ */

/* The input's bytes in order; past the end, a generator seeded from them
 * (so long arrays do not all end in zeros). */
typedef struct fz_reader {
    const uint8_t *data;
    size_t size, pos;
    uint64_t rng;
} fz_reader;

static uint8_t fz_u8(fz_reader *r)
{
    if (r->pos < r->size)
        return r->data[r->pos++];
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return (uint8_t)(r->rng >> 32);
}

static uint32_t fz_u32(fz_reader *r)
{
    uint32_t v = fz_u8(r);
    v |= (uint32_t)fz_u8(r) << 8;
    v |= (uint32_t)fz_u8(r) << 16;
    v |= (uint32_t)fz_u8(r) << 24;
    return v;
}

static float fz_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t fz_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static const uint32_t fz_special_bits[] = {
    0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x3f000000u, 0xbf000000u,
    0x7fc00000u, 0xffc00000u, 0x7fa00001u /* signalling NaN */, 0x7fc12345u,
    0x7f800000u, 0xff800000u, 0x00800000u /* FLT_MIN */, 0x80800000u,
    0x00000001u /* smallest denormal */, 0x80000001u, 0x007fffffu, 0x807fffffu,
    0x7f7fffffu /* FLT_MAX */, 0xff7fffffu, 0x437f0000u /* 255 */, 0x477fff00u /* 65535 */,
    0x3c23d70au /* 0.01 */, 0x42c80000u /* 100 */, 0xc2c80000u, 0x33800000u /* 2^-24 */,
};
#define FZ_N_SPECIAL (sizeof fz_special_bits / sizeof fz_special_bits[0])

static float fz_special(fz_reader *r)
{
    return fz_from_bits(fz_special_bits[fz_u8(r) % FZ_N_SPECIAL]);
}

/* f moved by k ulps (k in -2..2) along the float line. */
static float fz_ulps(float f, int k)
{
    for (; k > 0; k--)
        f = nextafterf(f, INFINITY);
    for (; k < 0; k++)
        f = nextafterf(f, -INFINITY);
    return f;
}


/* One (min, max) pair. */
static void fz_min_max(fz_reader *r, float *min, float *max)
{
    switch (fz_u8(r) % 7) {
    case 0: *min = fz_from_bits(fz_u32(r)); *max = fz_from_bits(fz_u32(r)); break;
    case 1: *min = fz_special(r); *max = fz_special(r); break;
    case 2: /* the usual shape: min <= 0 <= max */
        *min = -(float)fz_u8(r) / 16.0f;
        *max = (float)fz_u8(r) / 16.0f;
        break;
    case 3: /* any order, either sign */
        *min = (float)(int8_t)fz_u8(r) / 4.0f;
        *max = (float)(int8_t)fz_u8(r) / 4.0f;
        break;
    case 4: /* min == max, 0 == 0 (TF's pass-through) among them */
        *min = *max = (fz_u8(r) & 1) ? fz_special(r) : fz_from_bits(fz_u32(r));
        break;
    case 5: { /* +-0.0 combinations */
        const uint8_t b = fz_u8(r);
        *min = (b & 1) ? -0.0f : 0.0f;
        *max = (b & 2) ? -0.0f : 0.0f;
        break;
    }
    default: { /* a range at a random scale, a few ulps off */
        const float lo = -(float)fz_u8(r) * ldexpf(1.0f, (int)(fz_u8(r) % 60) - 40);
        const float hi = (float)fz_u8(r) * ldexpf(1.0f, (int)(fz_u8(r) % 60) - 40);
        *min = lo;
        *max = fz_ulps(hi, (int)(fz_u8(r) % 5) - 2);
        break;
    }
    }
}

/* What the input generator aims at for one (min, max). */
typedef struct fz_target {
    float min, max, nudged_min, nudged_max, scale;
    unsigned qmax;
} fz_target;

static void fz_target_make(float min, float max, int num_bits, int narrow, fz_target *t)
{
    t->min = min;
    t->max = max;
    t->qmax = (num_bits >= 2 && num_bits <= 16) ? (1u << num_bits) - 1u : 255u;
    if (cfq_nudge(min, max, num_bits, narrow, &t->nudged_min, &t->nudged_max, &t->scale) !=
        CFQ_OK) {
        t->nudged_min = min;
        t->nudged_max = max;
        t->scale = (max - min) / 255.0f;
    }
}

/* An input element: near what matters for its (min, max) -- the bounds, the
 * nudged bounds, grid points and the midpoints between them (rounding
 * ties) -- or anything at all. */
static float fz_input(fz_reader *r, const fz_target *t, float prev)
{
    switch (fz_u8(r) % 10) {
    case 0: case 1: case 2: return fz_from_bits(fz_u32(r));
    case 3: return fz_special(r);
    case 4: return fz_ulps((fz_u8(r) & 1) ? t->min : t->max, (int)(fz_u8(r) % 5) - 2);
    case 5: return fz_ulps((fz_u8(r) & 1) ? t->nudged_min : t->nudged_max, (int)(fz_u8(r) % 5) - 2);
    case 6: {
        const unsigned span = t->qmax + 9u;
        const unsigned k16 = (unsigned)fz_u8(r) | ((unsigned)fz_u8(r) << 8);
        const float k = (float)((int)(k16 % span) - 4);
        const float frac = (fz_u8(r) & 1) ? 0.5f : 0.0f;
        return fz_ulps(t->nudged_min + (k + frac) * t->scale, (int)(fz_u8(r) % 5) - 2);
    }
    case 7: return (float)(int8_t)fz_u8(r) / 8.0f;
    case 8: return t->min + (t->max - t->min) * ((float)fz_u8(r) / 255.0f);
    default: return prev;
    }
}

static float fz_gradient(fz_reader *r)
{
    switch (fz_u8(r) % 4) {
    case 0: return fz_from_bits(fz_u32(r));
    case 1: return fz_special(r);
    default: return (float)(int8_t)fz_u8(r) / 16.0f;
    }
}

/* ---- One fuzz case --------------------------------------------------------- */

/* Pointer arguments that a case may pass as NULL. */
enum fz_ptr { PTR_NONE, PTR_G, PTR_X, PTR_OUT, PTR_REGION, PTR_MIN, PTR_MAX, PTR_DMIN, PTR_DMAX,
              PTR_COUNT };

typedef struct fz_case {
    int op, alias, null_ptr, oversize;
    size_t n;                       /* elements the buffers hold */
    size_t outer, channels, inner;  /* per-channel shape (n = the product) */
    size_t call_n, call_outer;      /* what the call is told (oversize: too many) */
    size_t nsums;                   /* floats in each of backprop_wrt_min/max */
    float min, max;
    int num_bits, narrow;
    float *g, *x, *mins, *maxs;     /* pristine inputs */
    unsigned char *codes;
} fz_case;

/* What one call left behind. */
typedef struct fz_result {
    int rc;
    float *out;             /* n: the output buffer (an input if aliased) */
    unsigned char *region;  /* n: region codes out */
    float *dmin, *dmax;     /* nsums each */
    float nudge[3];
} fz_result;

static void *fz_alloc(size_t bytes)
{
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL)
        abort();
    return p;
}

static void *fz_dup(const void *src, size_t bytes)
{
    void *p = fz_alloc(bytes);
    if (bytes > 0)
        memcpy(p, src, bytes);
    return p;
}

static void fz_result_free(fz_result *res)
{
    free(res->out);
    free(res->region);
    free(res->dmin);
    free(res->dmax);
    memset(res, 0, sizeof *res);
}

static int fz_is_per_channel(int op)
{
    return op == OP_PER_CHANNEL || op == OP_PER_CHANNEL_GRAD;
}

static int fz_has_sums(int op)
{
    return op == OP_VARS_GRAD || op == OP_PER_CHANNEL_GRAD || op == OP_REGION_GRAD;
}

#define FZ_FAIL(c, ...)                                                                 \
    do {                                                                                \
        fprintf(stderr, "\nfuzz_core: %s (n=%zu outer=%zu channels=%zu inner=%zu "      \
                        "min=%a max=%a num_bits=%d narrow=%d alias=%d null=%d over=%d): ", \
                fz_op_names[(c)->op], (c)->n, (c)->outer, (c)->channels, (c)->inner,    \
                (double)(c)->min, (double)(c)->max, (c)->num_bits, (c)->narrow,         \
                (c)->alias, (c)->null_ptr, (c)->oversize);                              \
        fprintf(stderr, __VA_ARGS__);                                                   \
        fprintf(stderr, "\n");                                                          \
        abort();                                                                        \
    } while (0)

static void fz_check_rc(const fz_case *c, int rc, const char *what)
{
    if (rc > 0 || (rc < 0 && cfq_strerror(rc) == NULL))
        FZ_FAIL(c, "%s returned %d, neither CFQ_OK nor a named error", what, rc);
}

/* Runs the case's call with `exec`; output buffers start as `fill` bytes. */
static void fz_run(const fz_case *c, const cfq_exec *exec, unsigned char fill, fz_result *res)
{
    const size_t n = c->n, fb = n * sizeof(float), sb = c->nsums * sizeof(float);
    const size_t cb = c->channels * sizeof(float);
    float *gw = fz_dup(c->g, fb), *xw = fz_dup(c->x, fb), *ow = fz_alloc(fb);
    float *mw = fz_dup(c->mins, cb), *Mw = fz_dup(c->maxs, cb);
    unsigned char *cw = fz_dup(c->codes, n), *rw = fz_alloc(n);
    float *smin = fz_alloc(sb), *smax = fz_alloc(sb);
    float *outp = c->alias == ALIAS_GRADIENTS ? gw : c->alias == ALIAS_INPUTS ? xw : ow;
    float *before;
    const void *p[PTR_COUNT];
    unsigned env_before, env_after;

    memset(ow, fill, fb);
    memset(rw, fill, n);
    memset(smin, fill, sb);
    memset(smax, fill, sb);
    before = fz_dup(outp, fb);

    p[PTR_NONE] = NULL;
    p[PTR_G] = gw;
    p[PTR_X] = xw;
    p[PTR_OUT] = outp;
    p[PTR_REGION] = c->op == OP_REGION_GRAD ? (void *)cw : (void *)rw;
    p[PTR_MIN] = mw;
    p[PTR_MAX] = Mw;
    p[PTR_DMIN] = smin;
    p[PTR_DMAX] = smax;
    if (c->null_ptr != PTR_NONE)
        p[c->null_ptr] = NULL;

#define FZ_F(k) ((float *)(uintptr_t)p[k])
#define FZ_CF(k) ((const float *)p[k])
    env_before = FZ_GET_FPENV();
    switch (c->op) {
    case OP_VARS_GRAD:
        res->rc = cfq_fq_vars_grad(FZ_CF(PTR_G), FZ_CF(PTR_X), c->call_n, c->min, c->max,
                                   c->num_bits, c->narrow, FZ_F(PTR_OUT), FZ_F(PTR_DMIN),
                                   FZ_F(PTR_DMAX), exec);
        break;
    case OP_VARS:
        res->rc = cfq_fq_vars(FZ_CF(PTR_X), c->call_n, c->min, c->max, c->num_bits, c->narrow,
                              FZ_F(PTR_OUT), exec);
        break;
    case OP_ARGS:
        res->rc = cfq_fq_args(FZ_CF(PTR_X), c->call_n, c->min, c->max, c->num_bits, c->narrow,
                              FZ_F(PTR_OUT), exec);
        break;
    case OP_ARGS_GRAD:
        res->rc = cfq_fq_args_grad(FZ_CF(PTR_G), FZ_CF(PTR_X), c->call_n, c->min, c->max,
                                   c->num_bits, c->narrow, FZ_F(PTR_OUT), exec);
        break;
    case OP_PER_CHANNEL:
        res->rc = cfq_fq_per_channel(FZ_CF(PTR_X), c->call_outer, c->channels, c->inner,
                                     FZ_CF(PTR_MIN), FZ_CF(PTR_MAX), c->num_bits, c->narrow,
                                     FZ_F(PTR_OUT), exec);
        break;
    case OP_PER_CHANNEL_GRAD:
        res->rc = cfq_fq_per_channel_grad(FZ_CF(PTR_G), FZ_CF(PTR_X), c->call_outer, c->channels,
                                          c->inner, FZ_CF(PTR_MIN), FZ_CF(PTR_MAX), c->num_bits,
                                          c->narrow, FZ_F(PTR_OUT), FZ_F(PTR_DMIN),
                                          FZ_F(PTR_DMAX), exec);
        break;
    case OP_VARS_AND_REGION:
        res->rc = cfq_fq_vars_and_region(FZ_CF(PTR_X), c->call_n, c->min, c->max, c->num_bits,
                                         c->narrow, FZ_F(PTR_OUT),
                                         (unsigned char *)(uintptr_t)p[PTR_REGION], exec);
        break;
    case OP_REGION_GRAD:
        res->rc = cfq_fq_region_grad(FZ_CF(PTR_G), (const unsigned char *)p[PTR_REGION],
                                     c->call_n, FZ_F(PTR_OUT), FZ_F(PTR_DMIN), FZ_F(PTR_DMAX),
                                     exec);
        break;
    default: /* OP_NUDGE: nudged_min, nudged_max, scale into dmin, dmax, out */
        res->rc = cfq_nudge(c->min, c->max, c->num_bits, c->narrow, FZ_F(PTR_DMIN),
                            FZ_F(PTR_DMAX), FZ_F(PTR_OUT));
        break;
    }
    env_after = FZ_GET_FPENV();
#undef FZ_F
#undef FZ_CF

    fz_check_rc(c, res->rc, fz_op_names[c->op]);
    /* The control bits (FTZ, DAZ, rounding, masks), not the sticky flags. */
    if ((env_before & 0xffc0u) != (env_after & 0xffc0u))
        FZ_FAIL(c, "FP environment 0x%x left as 0x%x", env_before, env_after);
    if (c->oversize && c->op != OP_NUDGE && res->rc == CFQ_OK)
        FZ_FAIL(c, "sizes that overflow were accepted");
    if (outp != gw && fb > 0 && memcmp(gw, c->g, fb) != 0)
        FZ_FAIL(c, "gradients modified (rc %d)", res->rc);
    if (outp != xw && fb > 0 && memcmp(xw, c->x, fb) != 0)
        FZ_FAIL(c, "inputs modified (rc %d)", res->rc);
    if ((n > 0 && memcmp(cw, c->codes, n) != 0) || (cb > 0 && memcmp(mw, c->mins, cb) != 0) ||
        (cb > 0 && memcmp(Mw, c->maxs, cb) != 0))
        FZ_FAIL(c, "region, min or max array modified (rc %d)", res->rc);
    if (fz_is_per_channel(c->op) && res->rc == CFQ_ENONFINITE) {
        size_t k;
        int same = fb == 0 || memcmp(outp, before, fb) == 0;
        for (k = 0; k < sb; k++)
            same &= ((unsigned char *)smin)[k] == fill && ((unsigned char *)smax)[k] == fill;
        if (!same)
            FZ_FAIL(c, "CFQ_ENONFINITE, but outputs were written");
    }

    res->out = fz_dup(outp, fb);
    res->region = rw;
    res->dmin = smin;
    res->dmax = smax;
    free(before);
    free(gw);
    free(xw);
    free(ow);
    free(mw);
    free(Mw);
    free(cw);
}

/* Float sums are equal when their bits are, or when both are NaN. */
static int fz_sum_equal(float a, float b)
{
    return fz_bits(a) == fz_bits(b) || (isnan(a) && isnan(b));
}

static void fz_compare(const fz_case *c, const fz_result *ref, const fz_result *got,
                       const char *what)
{
    size_t k;
    if (ref->rc != got->rc)
        FZ_FAIL(c, "%s returned %d, the scalar path %d", what, got->rc, ref->rc);
    if (ref->rc != CFQ_OK)
        return;
    for (k = 0; k < c->n; k++)
        if (fz_bits(ref->out[k]) != fz_bits(got->out[k]))
            FZ_FAIL(c, "%s: output[%zu] = 0x%08x, scalar 0x%08x (input 0x%08x, gradient 0x%08x)",
                    what, k, (unsigned)fz_bits(got->out[k]), (unsigned)fz_bits(ref->out[k]),
                    (unsigned)fz_bits(c->x[k]), (unsigned)fz_bits(c->g[k]));
    if (c->op == OP_VARS_AND_REGION && c->n > 0 && memcmp(ref->region, got->region, c->n) != 0)
        FZ_FAIL(c, "%s: region codes differ from the scalar path's", what);
    if (c->op == OP_NUDGE &&
        (fz_bits(ref->dmin[0]) != fz_bits(got->dmin[0]) ||
         fz_bits(ref->dmax[0]) != fz_bits(got->dmax[0])))
        FZ_FAIL(c, "%s: nudged (%a, %a), first call (%a, %a)", what, (double)got->dmin[0],
                (double)got->dmax[0], (double)ref->dmin[0], (double)ref->dmax[0]);
    if (fz_has_sums(c->op))
        for (k = 0; k < c->nsums; k++)
            if (!fz_sum_equal(ref->dmin[k], got->dmin[k]) ||
                !fz_sum_equal(ref->dmax[k], got->dmax[k]))
                FZ_FAIL(c, "%s: sums[%zu] = (%a, %a), scalar (%a, %a)", what, k,
                        (double)got->dmin[k], (double)got->dmax[k], (double)ref->dmin[k],
                        (double)ref->dmax[k]);
}

/* cfq_fq_region_grad() on the scalar path's codes must give the bits of
 * cfq_fq_vars_grad() on the inputs that made them. */
static void fz_check_region_grad(const fz_case *c, const unsigned char *codes)
{
    const cfq_exec scalar = {CFQ_ISA_SCALAR, 1};
    const size_t fb = c->n * sizeof(float);
    float *dx_region = fz_alloc(fb), *dx_vars = fz_alloc(fb);
    float rmin, rmax, vmin, vmax;
    int rc_region, rc_vars;
    size_t k;

    rc_region = cfq_fq_region_grad(c->g, codes, c->n, dx_region, &rmin, &rmax, &scalar);
    rc_vars = cfq_fq_vars_grad(c->g, c->x, c->n, c->min, c->max, c->num_bits, c->narrow,
                               dx_vars, &vmin, &vmax, &scalar);
    if (rc_region != CFQ_OK || rc_vars != CFQ_OK)
        FZ_FAIL(c, "region gradient returned %d, vars gradient %d", rc_region, rc_vars);
    for (k = 0; k < c->n; k++)
        if (fz_bits(dx_region[k]) != fz_bits(dx_vars[k]))
            FZ_FAIL(c, "region gradient[%zu] = 0x%08x, vars gradient 0x%08x", k,
                    (unsigned)fz_bits(dx_region[k]), (unsigned)fz_bits(dx_vars[k]));
    if (!fz_sum_equal(rmin, vmin) || !fz_sum_equal(rmax, vmax))
        FZ_FAIL(c, "region gradient sums (%a, %a), vars gradient (%a, %a)", (double)rmin,
                (double)rmax, (double)vmin, (double)vmax);
    free(dx_region);
    free(dx_vars);
}

/* ---- Decoding a case from the bytes ---------------------------------------- */

static size_t fz_size(fz_reader *r, size_t small, size_t large)
{
    const uint8_t b = fz_u8(r);
    if (b < 224)
        return b % small;
    return ((size_t)fz_u8(r) | ((size_t)fz_u8(r) << 8)) % large;
}

static void fz_decode(fz_reader *r, fz_case *c, cfq_exec *exec, int *exec_null)
{
    static const unsigned char codes[] = {0, 1, 2, 3, 4, 8};
    fz_target *targets;
    size_t k, ntargets;
    uint8_t b;

    memset(c, 0, sizeof *c);
    c->op = fz_u8(r) % OP_COUNT;
    b = fz_u8(r);
    c->alias = b % 3;
    if (c->op == OP_REGION_GRAD && c->alias == ALIAS_INPUTS)
        c->alias = ALIAS_GRADIENTS; /* its "inputs" are bytes */
    if ((c->op == OP_VARS || c->op == OP_ARGS || c->op == OP_PER_CHANNEL ||
         c->op == OP_VARS_AND_REGION) && c->alias == ALIAS_GRADIENTS)
        c->alias = ALIAS_INPUTS; /* no gradients: out == inputs */
    if (c->op == OP_NUDGE)
        c->alias = ALIAS_NONE;
    c->null_ptr = ((b >> 2) & 7) == 7 ? 1 + fz_u8(r) % (PTR_COUNT - 1) : PTR_NONE;
    c->oversize = ((b >> 5) & 7) == 7;

    if (fz_is_per_channel(c->op)) {
        c->outer = fz_size(r, 5, 40);
        c->channels = fz_size(r, 10, 600);
        c->inner = fz_u8(r) < 128 ? 1 : fz_size(r, 6, 100);
        if (c->oversize) {
            c->channels += c->channels == 0;
            c->inner += c->inner == 0;
        }
        if (c->outer * c->channels * c->inner > FZ_MAX_ELEMS)
            c->outer = c->inner = 1;
        c->n = c->outer * c->channels * c->inner;
        c->nsums = c->op == OP_PER_CHANNEL_GRAD ? c->channels : 0;
        /* Past SIZE_MAX / sizeof(float) elements in all. */
        c->call_outer = c->oversize ? (SIZE_MAX / sizeof(float)) / (c->channels * c->inner) + 1 +
                                          fz_u8(r)
                                    : c->outer;
    } else if (c->op == OP_NUDGE) {
        c->n = c->call_n = 1; /* out[0] takes the scale */
        c->nsums = 1;         /* dmin[0], dmax[0] take the nudged bounds */
    } else {
        c->n = fz_size(r, 70, FZ_MAX_ELEMS);
        c->nsums = fz_has_sums(c->op) ? 1 : 0;
        c->call_n = c->oversize ? SIZE_MAX / sizeof(float) + 1 + fz_u8(r) * (SIZE_MAX / 1024)
                                : c->n;
    }

    fz_min_max(r, &c->min, &c->max);
    b = fz_u8(r);
    c->num_bits = b < 224 ? 2 + b % 15 : -5 + fz_u8(r) % 31;
    b = fz_u8(r);
    c->narrow = b % 4 == 3 ? (int)(int8_t)fz_u8(r) : b & 1;

    b = fz_u8(r);
    *exec_null = b % 4 == 0;
    exec->isa = -2 + fz_u8(r) % 8;
    exec->threads = -1 + fz_u8(r) % 11;

    c->mins = fz_alloc(c->channels * sizeof(float));
    c->maxs = fz_alloc(c->channels * sizeof(float));
    if (c->channels > 0) {
        const int each = fz_u8(r) % 4 == 0; /* else sane ranges, a few odd ones */
        for (k = 0; k < c->channels; k++) {
            if (each || fz_u8(r) >= 240) {
                fz_min_max(r, &c->mins[k], &c->maxs[k]);
            } else if (fz_u8(r) < 16) {
                c->mins[k] = c->maxs[k] = 0.0f; /* pass-through channel */
            } else {
                c->mins[k] = -(float)fz_u8(r) / 16.0f;
                c->maxs[k] = (float)fz_u8(r) / 16.0f;
            }
        }
    }

    ntargets = c->channels > 0 ? c->channels : 1;
    targets = fz_alloc(ntargets * sizeof *targets);
    for (k = 0; k < ntargets; k++) {
        if (c->channels > 0)
            fz_target_make(c->mins[k], c->maxs[k], c->num_bits, c->narrow, &targets[k]);
        else
            fz_target_make(c->min, c->max, c->num_bits, c->narrow, &targets[k]);
    }

    c->g = fz_alloc(c->n * sizeof(float));
    c->x = fz_alloc(c->n * sizeof(float));
    c->codes = fz_alloc(c->n);
    for (k = 0; k < c->n; k++) {
        const size_t ch = c->channels > 0 ? (k / (c->inner ? c->inner : 1)) % c->channels : 0;
        c->x[k] = fz_input(r, &targets[ch], k > 0 ? c->x[k - 1] : 0.0f);
        c->g[k] = fz_gradient(r);
    }
    free(targets);

    if (c->op == OP_REGION_GRAD) {
        /* Codes a forward call made, or bytes (mostly codes, some not). */
        const cfq_exec scalar = {CFQ_ISA_SCALAR, 1};
        float *scratch = fz_alloc(c->n * sizeof(float));
        if (fz_u8(r) % 2 == 0 ||
            cfq_fq_vars_and_region(c->x, c->n, c->min, c->max, c->num_bits, c->narrow, scratch,
                                   c->codes, &scalar) != CFQ_OK) {
            for (k = 0; k < c->n; k++) {
                b = fz_u8(r);
                c->codes[k] = b < 224 ? codes[b % sizeof codes] : fz_u8(r);
            }
        }
        free(scratch);
    } else {
        memset(c->codes, 0, c->n);
    }
}

static void fz_case_free(fz_case *c)
{
    free(c->g);
    free(c->x);
    free(c->mins);
    free(c->maxs);
    free(c->codes);
}

static int fz_exec_valid(const cfq_exec *exec)
{
    if (exec == NULL)
        return 1;
    if (exec->threads < 1 || exec->threads > CFQ_MAX_THREADS)
        return 0;
    return exec->isa == CFQ_ISA_AUTO || cfq_isa_available(exec->isa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r;
    fz_case c;
    cfq_exec fuzz_exec;
    const cfq_exec *exec;
    fz_result ref, got;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t k;
    int exec_null, isa, threads;

    for (k = 0; k < size; k++)
        seed = (seed ^ data[k]) * 0x100000001b3ull;
    r.data = data;
    r.size = size;
    r.pos = 0;
    r.rng = seed | 1u;
    fz_decode(&r, &c, &fuzz_exec, &exec_null);
    exec = exec_null ? NULL : &fuzz_exec;

    memset(&ref, 0, sizeof ref);
    memset(&got, 0, sizeof got);

    if (c.op == OP_NUDGE) { /* no exec: the call must be deterministic */
        fz_run(&c, NULL, 0xa5, &ref);
        fz_run(&c, NULL, 0x5a, &got);
        fz_compare(&c, &ref, &got, "second call");
        fz_result_free(&ref);
        fz_result_free(&got);
        fz_case_free(&c);
        return 0;
    }

    /* The reference: the scalar path on the calling thread. */
    {
        const cfq_exec scalar = {CFQ_ISA_SCALAR, 1};
        fz_run(&c, &scalar, 0xa5, &ref);
    }

    /* The fuzzer's own exec: valid ones must agree with the reference. */
    fz_run(&c, exec, 0xc3, &got);
    if (fz_exec_valid(exec))
        fz_compare(&c, &ref, &got, "the fuzzer's exec");
    else if (got.rc == CFQ_OK)
        FZ_FAIL(&c, "exec {isa %d, threads %d} is invalid, but the call returned CFQ_OK",
                fuzz_exec.isa, fuzz_exec.threads);
    fz_result_free(&got);

    /* Every available path, on one thread and on the fuzzer's thread count. */
    threads = fuzz_exec.threads >= 1 ? fuzz_exec.threads : 2;
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++) {
        int t;
        if (!cfq_isa_available(isa))
            continue;
        for (t = 0; t < 2; t++) {
            const cfq_exec forced = {isa, t == 0 ? 1 : threads};
            char what[64];
            if (isa == CFQ_ISA_SCALAR && forced.threads == 1)
                continue; /* that is the reference */
            snprintf(what, sizeof what, "isa %s, %d threads", cfq_isa_name(isa), forced.threads);
            fz_run(&c, &forced, (unsigned char)(0x11 * (isa + 1) + t), &got);
            fz_compare(&c, &ref, &got, what);
            fz_result_free(&got);
        }
    }

    if (c.op == OP_VARS_AND_REGION && ref.rc == CFQ_OK && !c.oversize)
        fz_check_region_grad(&c, ref.region);

    fz_result_free(&ref);
    fz_case_free(&c);
    return 0;
}
