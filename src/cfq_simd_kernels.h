/*
 * cfq_simd_kernels.h -- every SIMD kernel, written once.  Each ISA file
 * (cfq_avx2.c, cfq_avx512.c, cfq_neon.c) defines its vocabulary, includes
 * this file, and exports CFQ_SIMD_KERNELS("its name") as its table.  The
 * vocabulary:
 *
 *   CFQ_W            floats per vector step (8 or 16: a divisor of CFQ_BLOCK
 *                    with at most 8 steps per block)
 *   cfq_vf           CFQ_W floats
 *   cfq_vb           CFQ_W lane flags (a vector of all-ones/zeros words, or
 *                    an AVX-512 mask register)
 *   cfq_vi           CFQ_W 32-bit integers (region codes)
 *   cfq_vlanes       the open block's partials of a sum's 8 double lanes
 *                    (see cfq_lanes), in registers
 *
 *   cfq_vf_set load store stream store_lanes      (stream: 16-byte aligned;
 *                    store_lanes: copies the bits of the flagged lanes)
 *   cfq_vf_add sub mul div floor clamp            (clamp: TF's
 *                    std::max(std::min(x, hi), lo), NaN x kept)
 *   cfq_vf_and andnot     v where the flag is set / clear, +0 elsewhere
 *   cfq_vf_lt le gt ge nonfinite -> cfq_vb        (ordered compares)
 *   cfq_vb_and or andnot not none all any load    (andnot(a, b) = a & ~b;
 *                    load: from 32-bit keep words)
 *   cfq_vi_load_codes store_codes codes eq has gt  (codes: from the flags
 *                    below, above, none)
 *   cfq_vlanes_zero add add_where block_end store (add: a step's float
 *                    terms, in element order, into the open block's partials;
 *                    add_where: g where a flag is set, for finite g;
 *                    block_end: the partials into a cfq_lanes's compensated
 *                    sums; store: the partials into its p)
 *   cfq_twosum_add_terms  W float terms into W (s, c) pairs in memory
 *   cfq_vfence       orders streaming stores before the call returns
 *
 * Everything here is static, so each ISA file has its own copy.  Tails
 * (n not a multiple of CFQ_W) run the reference code of cfq_reference.h.
 */
#ifndef CFQ_SIMD_KERNELS_H
#define CFQ_SIMD_KERNELS_H

#include "cfq_reference.h"

/* Index of the lowest set bit of a nonzero byte (0 for 0): the gradients
 * walk a block's busy steps with it, portably (no ctz builtin). */
static const unsigned char cfq_lowest_bit8[256] = {
    0, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    6, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    7, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    6, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
    5, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0,
};

#define CFQ_STEPS (CFQ_BLOCK / CFQ_W) /* vector steps per block, <= 8 */

/* Whether n floats at a and n at b share memory (an in-place call). */
static inline int cfq_overlap(const float *a, const float *b, size_t n)
{
    const uintptr_t pa = (uintptr_t)(const void *)a, pb = (uintptr_t)(const void *)b;
    const uintptr_t bytes = (uintptr_t)n * sizeof(float);
    return pa < pb + bytes && pb < pa + bytes;
}

CFQ_INLINE void cfq_vf_put(float *dst, cfq_vf v, int stream)
{
    if (stream)
        cfq_vf_stream(dst, v);
    else
        cfq_vf_store(dst, v);
}

/* ---- Forward ------------------------------------------------------------- */

/* The parameters of CFQ_W lanes: one range broadcast, or CFQ_W channels. */
typedef struct cfq_vquant {
    cfq_vf lo, hi, scale, inv_scale, quant_zero, half;
} cfq_vquant;

CFQ_INLINE cfq_vquant cfq_vquant_of(const cfq_params *p)
{
    cfq_vquant q;
    q.lo = cfq_vf_set(p->nudged_min);
    q.hi = cfq_vf_set(p->nudged_max);
    q.scale = cfq_vf_set(p->scale);
    q.inv_scale = cfq_vf_set(p->inv_scale);
    q.quant_zero = cfq_vf_set(p->quant_zero);
    q.half = cfq_vf_set(0.5f);
    return q;
}

/* Channels [j, j + CFQ_W) of a block. */
CFQ_INLINE cfq_vquant cfq_vquant_at(const cfq_channel_params *cp, size_t j)
{
    cfq_vquant q;
    q.lo = cfq_vf_load(cp->nudged_min + j);
    q.hi = cfq_vf_load(cp->nudged_max + j);
    q.scale = cfq_vf_load(cp->scale + j);
    q.inv_scale = cfq_vf_load(cp->inv_scale + j);
    q.quant_zero = cfq_vf_load(cp->quant_zero + j);
    q.half = cfq_vf_set(0.5f);
    return q;
}

/* cfq_forward_div_one() and cfq_forward_mul_one() on CFQ_W lanes. */
CFQ_INLINE cfq_vf cfq_vforward_div(cfq_vf x, const cfq_vquant *q)
{
    const cfq_vf shifted = cfq_vf_sub(cfq_vf_clamp(x, q->lo, q->hi), q->lo);
    const cfq_vf v = cfq_vf_add(cfq_vf_sub(cfq_vf_div(shifted, q->scale), q->quant_zero), q->half);
    return cfq_vf_mul(cfq_vf_floor(v), q->scale);
}

CFQ_INLINE cfq_vf cfq_vforward_mul(cfq_vf x, const cfq_vquant *q)
{
    const cfq_vf shifted = cfq_vf_sub(cfq_vf_clamp(x, q->lo, q->hi), q->lo);
    const cfq_vf v = cfq_vf_add(cfq_vf_sub(cfq_vf_mul(shifted, q->inv_scale), q->quant_zero), q->half);
    return cfq_vf_mul(cfq_vf_floor(v), q->scale);
}



/* Rows [0, R) of the per-channel forward op, channels [0, m - m % W): each
 * channel block's parameters are loaded once for R rows (R a literal; once
 * a row, their six loads took as long as the arithmetic). */
CFQ_INLINE void cfq_per_channel_forward_rows(int rows, int stream, const float *x, size_t stride,
                                             size_t m, const cfq_channel_params *cp, float *out)
{
    size_t j;
    int r;
    for (j = 0; j + CFQ_W <= m; j += CFQ_W) {
        const cfq_vquant q = cfq_vquant_at(cp, j);
        const cfq_vb keep = cfq_vb_load(cp->keep + j);
        for (r = 0; r < rows; r++) {
            const size_t at = (size_t)r * stride + j;
            cfq_vf_put(out + at, cfq_vf_and(keep, cfq_vforward_mul(cfq_vf_load(x + at), &q)), stream);
        }
    }
}

CFQ_INLINE void cfq_per_channel_forward_body(int stream, const float *x, size_t rows, size_t stride,
                                             size_t m, const cfq_channel_params *cp, float *out)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4)
        cfq_per_channel_forward_rows(4, stream, x + r * stride, stride, m, cp, out + r * stride);
    for (; r < rows; r++)
        cfq_per_channel_forward_rows(1, stream, x + r * stride, stride, m, cp, out + r * stride);
    if (stream)
        cfq_vfence();
}

static void cfq_per_channel_forward(const float *x, size_t rows, size_t stride, size_t m,
                                    const cfq_channel_params *cp, float *out)
{
    const size_t tail = m - m % CFQ_W;
    size_t r;
    if (cp->stream)
        cfq_per_channel_forward_body(1, x, rows, stride, m, cp, out);
    else
        cfq_per_channel_forward_body(0, x, rows, stride, m, cp, out);
    for (r = 0; r < rows && tail < m; r++)
        cfq_per_channel_forward_row(x + r * stride, tail, m, cp, out + r * stride);
}

/* Region codes of CFQ_W inputs (see cfq_region_of). */
CFQ_INLINE cfq_vi cfq_vregion_codes(cfq_vf x, cfq_vf lo, cfq_vf hi)
{
    const cfq_vb below = cfq_vf_lt(x, lo), above = cfq_vf_gt(x, hi);
    const cfq_vb inside = cfq_vb_and(cfq_vf_ge(x, lo), cfq_vf_le(x, hi));
    const cfq_vb none = cfq_vb_not(cfq_vb_or(inside, cfq_vb_or(below, above)));
    return cfq_vi_codes(below, above, none);
}


/* The vector body of the elementwise forward ops: elements [0, n - n % W),
 * the vars op's division or the args op's multiplication, with region
 * codes or without; returns where the tail starts.  Outputs past the caches
 * are streamed (stream is a literal at each call, so the store kind is no
 * branch per step). */
CFQ_INLINE size_t cfq_forward_body(int divide, int with_codes, int stream, const float *x, size_t n,
                                   const cfq_vquant *q, float *out, unsigned char *region)
{
    size_t i = 0;
    for (; i + CFQ_W <= n; i += CFQ_W) {
        const cfq_vf vx = cfq_vf_load(x + i);
        if (with_codes)
            cfq_vi_store_codes(region + i, cfq_vregion_codes(vx, q->lo, q->hi));
        cfq_vf_put(out + i, divide ? cfq_vforward_div(vx, q) : cfq_vforward_mul(vx, q), stream);
    }
    if (stream)
        cfq_vfence();
    return i;
}

static void cfq_vars_forward(const float *x, size_t n, const cfq_params *p, float *out)
{
    const cfq_vquant q = cfq_vquant_of(p);
    const size_t i = p->stream ? cfq_forward_body(1, 0, 1, x, n, &q, out, NULL)
                               : cfq_forward_body(1, 0, 0, x, n, &q, out, NULL);
    cfq_vars_forward_range(x, i, n, p, out);
}

static void cfq_args_forward(const float *x, size_t n, const cfq_params *p, float *out)
{
    const cfq_vquant q = cfq_vquant_of(p);
    const size_t i = p->stream ? cfq_forward_body(0, 0, 1, x, n, &q, out, NULL)
                               : cfq_forward_body(0, 0, 0, x, n, &q, out, NULL);
    cfq_args_forward_range(x, i, n, p, out);
}

static void cfq_region_forward(const float *x, size_t n, const cfq_params *p, float *out,
                               unsigned char *region)
{
    const cfq_vquant q = cfq_vquant_of(p);
    const size_t i = p->stream ? cfq_forward_body(1, 1, 1, x, n, &q, out, region)
                               : cfq_forward_body(1, 1, 0, x, n, &q, out, region);
    cfq_region_forward_range(x, i, n, p, out, region);
}

/* ---- Gradients ------------------------------------------------------------ */

/* Where a gradient's region flags come from: the inputs against the nudged
 * bounds, or the region codes of the forward op. */
enum cfq_grad_from { CFQ_FROM_INPUTS, CFQ_FROM_CODES };

/* One vector step of a gradient: the gradients, and what the lanes' flags
 * come from.  The flags are derived where they are used, not all at once:
 * held together they had left AVX2 too few of its 16 registers for the
 * sums' partials. */
typedef struct cfq_vstep {
    cfq_vf g;
    cfq_vf x, lo, hi; /* CFQ_FROM_INPUTS */
    cfq_vi code;      /* CFQ_FROM_CODES */
} cfq_vstep;

/* Elements [i, i + CFQ_W): x is read for CFQ_FROM_INPUTS, codes otherwise. */
CFQ_INLINE cfq_vstep cfq_vstep_load(int from, const float *g, const float *x,
                                    const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi)
{
    cfq_vstep s;
    s.g = cfq_vf_load(g + i);
    s.lo = lo;
    s.hi = hi;
    if (from == CFQ_FROM_INPUTS) {
        s.x = cfq_vf_load(x + i);
        s.code = cfq_vi_codes(cfq_vb_none(), cfq_vb_none(), cfq_vb_none());
    } else {
        s.x = s.g;
        s.code = cfq_vi_load_codes(codes + i);
    }
    return s;
}

CFQ_INLINE cfq_vb cfq_vstep_inside(int from, const cfq_vstep *s)
{
    if (from == CFQ_FROM_INPUTS)
        return cfq_vb_and(cfq_vf_ge(s->x, s->lo), cfq_vf_le(s->x, s->hi));
    return cfq_vi_eq(s->code, CFQ_REGION_INSIDE);
}
CFQ_INLINE cfq_vb cfq_vstep_below(int from, const cfq_vstep *s)
{
    return from == CFQ_FROM_INPUTS ? cfq_vf_lt(s->x, s->lo) : cfq_vi_has(s->code, CFQ_REGION_BELOW);
}
CFQ_INLINE cfq_vb cfq_vstep_above(int from, const cfq_vstep *s)
{
    return from == CFQ_FROM_INPUTS ? cfq_vf_gt(s->x, s->hi) : cfq_vi_has(s->code, CFQ_REGION_ABOVE);
}
/* Lanes whose gradient is copied (region code CFQ_REGION_PASS). */
CFQ_INLINE cfq_vb cfq_vstep_pass(int from, const cfq_vstep *s)
{
    return from == CFQ_FROM_INPUTS ? cfq_vb_none() : cfq_vi_eq(s->code, CFQ_REGION_PASS);
}

/* g * (inside ? 1 : 0), as TF multiplies (see cfq_params.one). */
CFQ_INLINE cfq_vf cfq_vstep_dx(cfq_vf g, cfq_vb inside, cfq_vf one)
{
    return cfq_vf_mul(g, cfq_vf_and(inside, one));
}

/* Pass 1 of a step: writes dx, returns whether the step is busy: some lane
 * not inside, or a non-finite g (g * 0 is then NaN), so its sum terms can
 * be nonzero.  A step with pass-through lanes is stored through the cache:
 * the terms step rewrites those lanes, and a masked store onto a line just
 * streamed out costs ten times the step. */
CFQ_INLINE int cfq_grad_dx(int from, const cfq_vstep *s, cfq_vf one, float *dx, int stream)
{
    const cfq_vb inside = cfq_vstep_inside(from, s);
    const int through_cache = from == CFQ_FROM_CODES && cfq_vb_any(cfq_vstep_pass(from, s));
    cfq_vf_put(dx, cfq_vstep_dx(s->g, inside, one), stream && !through_cache);
    return !cfq_vb_all(cfq_vb_andnot(inside, cfq_vf_nonfinite(s->g)));
}

/* Pass 2 of a step: its sum terms into the lanes' partials.  With finite
 * gradients a term is g or +-0, and adding +-0 changes no partial (a
 * partial is never -0): add_where adds g where the flag is set and nothing
 * elsewhere, cheaper on some ISAs than g * mask.  A non-finite g makes
 * g * 0 NaN: such steps add the terms as TF forms them.  Pass-through lanes
 * get g's bits in dx (a select between g and g * mask may be compiled as
 * g * select(mask, 1), which flushes a denormal g) and no terms (their codes
 * have neither flag).  Codes that are no region code are noted in *bad. */
CFQ_INLINE void cfq_grad_terms(int from, const cfq_vstep *s, cfq_vf one, float *dx,
                               cfq_vlanes *below, cfq_vlanes *above, cfq_vb *bad)
{
    if (from == CFQ_FROM_CODES) {
        const cfq_vb pass = cfq_vstep_pass(from, s);
        *bad = cfq_vb_or(*bad, cfq_vb_andnot(cfq_vi_gt(s->code, CFQ_REGION_NONE), pass));
        if (cfq_vb_any(pass))
            cfq_vf_store_lanes(dx, pass, s->g);
    }
    if (!cfq_vb_any(cfq_vf_nonfinite(s->g))) {
        cfq_vlanes_add_where(below, cfq_vstep_below(from, s), s->g);
        cfq_vlanes_add_where(above, cfq_vstep_above(from, s), s->g);
    } else {
        const cfq_vb pass = cfq_vstep_pass(from, s);
        cfq_vlanes_add(below, cfq_vf_andnot(pass, cfq_vf_mul(s->g, cfq_vf_and(cfq_vstep_below(from, s), one))));
        cfq_vlanes_add(above, cfq_vf_andnot(pass, cfq_vf_mul(s->g, cfq_vf_and(cfq_vstep_above(from, s), one))));
    }
}

/* A step in one pass: dx, then, if the step is busy, its terms; returns
 * whether it was busy. */
CFQ_INLINE int cfq_grad_step(int from, const cfq_vstep *s, cfq_vf one, float *dx, int stream,
                             cfq_vlanes *below, cfq_vlanes *above, cfq_vb *bad)
{
    if (!cfq_grad_dx(from, s, one, dx, stream))
        return 0;
    cfq_grad_terms(from, s, one, dx, below, above, bad);
    return 1;
}

/* Pass 1 of the block at i: its input gradient; bit k of the result: step
 * k is busy. */
CFQ_INLINE unsigned cfq_grad_pass1(int from, const float *g, const float *x,
                                   const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi,
                                   cfq_vf one, float *dx, int stream)
{
    unsigned busy = 0;
    int k;
    for (k = 0; k < CFQ_STEPS; k++) {
        const size_t j = i + (size_t)k * CFQ_W;
        const cfq_vstep s = cfq_vstep_load(from, g, x, codes, j, lo, hi);
        busy |= (unsigned)cfq_grad_dx(from, &s, one, dx + j, stream) << k;
    }
    return busy;
}

/* The block at i in one pass (most of its steps are busy); returns which
 * steps were. */
CFQ_INLINE unsigned cfq_grad_fused(int from, const float *g, const float *x,
                                   const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi,
                                   cfq_vf one, float *dx, int stream, cfq_vlanes *below,
                                   cfq_vlanes *above, cfq_vb *bad)
{
    unsigned busy = 0;
    int k;
    for (k = 0; k < CFQ_STEPS; k++) {
        const size_t j = i + (size_t)k * CFQ_W;
        const cfq_vstep s = cfq_vstep_load(from, g, x, codes, j, lo, hi);
        busy |= (unsigned)cfq_grad_step(from, &s, one, dx + j, stream, below, above, bad) << k;
    }
    return busy;
}

/*
 * A chunk of the vars or the region gradient, block by block.  Where few
 * steps are busy, two passes: first the input gradient of all 64 elements,
 * then the sums of the busy steps only (the block is still in L1): one
 * branch per block rather than per step, which with a few percent of inputs
 * outside would be a coin toss the CPU mispredicts.  After a block whose
 * steps were all busy (inputs mostly outside), the next block runs in one
 * pass, which loads and compares each step once.  In place (dx over g or x)
 * the second pass would read outputs: one pass then.  Every way adds the
 * same terms in the same order.  Returns nonzero if a region byte was no
 * region code.
 */
CFQ_INLINE int cfq_grad_chunk(int from, const float *g, const float *x,
                              const unsigned char *codes, size_t n, const cfq_params *p,
                              float *dx, double sums[2])
{
    const cfq_vf lo = cfq_vf_set(p->nudged_min), hi = cfq_vf_set(p->nudged_max);
    const cfq_vf one = cfq_vf_set(p->one);
    const int stream = p->stream;
    const unsigned all_busy = (1u << CFQ_STEPS) - 1;
    const int in_place = cfq_overlap(dx, g, n) || (from == CFQ_FROM_INPUTS && cfq_overlap(dx, x, n));
    cfq_vlanes below_acc, above_acc;
    cfq_lanes below, above;
    cfq_vb bad = cfq_vb_none();
    size_t i = 0;
    unsigned busy = 0;
    int bad_tail;

    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    cfq_vlanes_zero(&below_acc);
    cfq_vlanes_zero(&above_acc);
    for (; !in_place && i + CFQ_BLOCK <= n; i += CFQ_BLOCK) {
        /* stream a literal at each call, so the store kind is no branch
         * per step (the compiler will not unswitch it here by itself) */
        if (busy == all_busy) {
            busy = stream ? cfq_grad_fused(from, g, x, codes, i, lo, hi, one, dx, 1, &below_acc, &above_acc, &bad)
                          : cfq_grad_fused(from, g, x, codes, i, lo, hi, one, dx, 0, &below_acc, &above_acc, &bad);
        } else {
            unsigned walk;
            busy = stream ? cfq_grad_pass1(from, g, x, codes, i, lo, hi, one, dx, 1)
                          : cfq_grad_pass1(from, g, x, codes, i, lo, hi, one, dx, 0);
            for (walk = busy; walk != 0; walk &= walk - 1) { /* the busy steps, in order */
                const size_t j = i + CFQ_W * (size_t)cfq_lowest_bit8[walk];
                const cfq_vstep s = cfq_vstep_load(from, g, x, codes, j, lo, hi);
                cfq_grad_terms(from, &s, one, dx + j, &below_acc, &above_acc, &bad);
            }
        }
        if (busy != 0) { /* else the partials are still 0: nothing to end */
            cfq_vlanes_block_end(&below_acc, &below);
            cfq_vlanes_block_end(&above_acc, &above);
        }
    }
    for (; i + CFQ_W <= n; i += CFQ_W) {
        const cfq_vstep s = cfq_vstep_load(from, g, x, codes, i, lo, hi);
        cfq_grad_step(from, &s, one, dx + i, stream, &below_acc, &above_acc, &bad);
        if (i % CFQ_BLOCK == CFQ_BLOCK - CFQ_W) {
            cfq_vlanes_block_end(&below_acc, &below);
            cfq_vlanes_block_end(&above_acc, &above);
        }
    }
    if (stream)
        cfq_vfence();
    cfq_vlanes_store(&below, &below_acc);
    cfq_vlanes_store(&above, &above_acc);
    if (from == CFQ_FROM_INPUTS) {
        cfq_vars_grad_range(g, x, i, n, p, dx, &below, &above);
        bad_tail = 0;
    } else {
        bad_tail = cfq_region_grad_range(g, codes, i, n, p, dx, &below, &above);
    }
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
    return bad_tail | cfq_vb_any(bad);
}

static void cfq_vars_grad(const float *g, const float *x, size_t n, const cfq_params *p,
                          float *dx, double sums[2])
{
    (void)cfq_grad_chunk(CFQ_FROM_INPUTS, g, x, NULL, n, p, dx, sums);
}

static int cfq_region_grad(const float *g, const unsigned char *region, size_t n,
                           const cfq_params *p, float *dx, double sums[2])
{
    return cfq_grad_chunk(CFQ_FROM_CODES, g, NULL, region, n, p, dx, sums);
}

CFQ_INLINE size_t cfq_args_grad_body(int stream, const float *g, const float *x, size_t n,
                                     const cfq_params *p, float *dx)
{
    const cfq_vf lo = cfq_vf_set(p->nudged_min), hi = cfq_vf_set(p->nudged_max);
    const cfq_vf one = cfq_vf_set(p->one);
    size_t i = 0;
    for (; i + CFQ_W <= n; i += CFQ_W) {
        const cfq_vf vx = cfq_vf_load(x + i);
        const cfq_vb inside = cfq_vb_and(cfq_vf_ge(vx, lo), cfq_vf_le(vx, hi));
        cfq_vf_put(dx + i, cfq_vstep_dx(cfq_vf_load(g + i), inside, one), stream);
    }
    if (stream)
        cfq_vfence();
    return i;
}

static void cfq_args_grad(const float *g, const float *x, size_t n, const cfq_params *p,
                          float *dx)
{
    const size_t i = p->stream ? cfq_args_grad_body(1, g, x, n, p, dx) : cfq_args_grad_body(0, g, x, n, p, dx);
    cfq_args_grad_range(g, x, i, n, p, dx);
}

/* Rows [0, R) of the per-channel gradient, channels [0, m - m % W), each
 * channel's terms in row order (see cfq_per_channel_forward_rows). */
CFQ_INLINE void cfq_per_channel_grad_rows(int rows, const float *g, const float *x, size_t stride,
                                          size_t m, const cfq_channel_params *cp, float *dx,
                                          cfq_channel_sums *acc)
{
    const cfq_vf one = cfq_vf_set(cp->one);
    size_t j;
    int r;
    for (j = 0; j + CFQ_W <= m; j += CFQ_W) {
        const cfq_vb keep = cfq_vb_load(cp->keep + j);
        const cfq_vf lo = cfq_vf_load(cp->nudged_min + j), hi = cfq_vf_load(cp->nudged_max + j);
        for (r = 0; r < rows; r++) {
            const size_t at = (size_t)r * stride + j;
            const cfq_vf vg = cfq_vf_load(g + at), vx = cfq_vf_load(x + at);
            const cfq_vb inside = cfq_vb_and(cfq_vf_ge(vx, lo), cfq_vf_le(vx, hi));
            cfq_vf_store(dx + at, cfq_vstep_dx(vg, inside, one));
            if (!cfq_vb_all(keep)) /* channels with min == max == 0 copy g */
                cfq_vf_store_lanes(dx + at, cfq_vb_not(keep), vg);
            if (cfq_vb_any(cfq_vb_andnot(keep, cfq_vb_andnot(inside, cfq_vf_nonfinite(vg))))) {
                cfq_twosum_add_terms(acc->below_s + j, acc->below_c + j,
                                     cfq_vf_and(keep, cfq_vf_mul(vg, cfq_vf_and(cfq_vf_lt(vx, lo), one))));
                cfq_twosum_add_terms(acc->above_s + j, acc->above_c + j,
                                     cfq_vf_and(keep, cfq_vf_mul(vg, cfq_vf_and(cfq_vf_gt(vx, hi), one))));
            }
        }
    }
}

static void cfq_per_channel_grad(const float *g, const float *x, size_t rows, size_t stride,
                                 size_t m, const cfq_channel_params *cp, float *dx,
                                 cfq_channel_sums *acc)
{
    const size_t tail = m - m % CFQ_W;
    size_t r = 0;
    for (; r + 4 <= rows; r += 4)
        cfq_per_channel_grad_rows(4, g + r * stride, x + r * stride, stride, m, cp, dx + r * stride, acc);
    for (; r < rows; r++)
        cfq_per_channel_grad_rows(1, g + r * stride, x + r * stride, stride, m, cp, dx + r * stride, acc);
    for (r = 0; r < rows && tail < m; r++)
        cfq_per_channel_grad_row(g + r * stride, x + r * stride, tail, m, cp, dx + r * stride, acc);
}

/* The table of an ISA file that includes this one. */
#define CFQ_SIMD_KERNELS(isa_name)                  \
    {                                               \
        .name = isa_name,                           \
        .vars_grad = cfq_vars_grad,                 \
        .vars_forward = cfq_vars_forward,           \
        .args_forward = cfq_args_forward,           \
        .args_grad = cfq_args_grad,                 \
        .per_channel_forward = cfq_per_channel_forward, \
        .per_channel_grad = cfq_per_channel_grad,   \
        .region_forward = cfq_region_forward,       \
        .region_grad = cfq_region_grad,             \
    }

#endif /* CFQ_SIMD_KERNELS_H */
