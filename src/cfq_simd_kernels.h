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
 *   CFQ_DW, cfq_vd   doubles per vector of the sums, and that vector
 *
 *   cfq_vf_set load store stream stream_whole store_lanes (stream: 16-byte
 *                    aligned; stream_whole: aligned to the vector's size;
 *                    store_lanes: copies the bits of the flagged lanes)
 *   cfq_vf_load_f16 load_bf16 store_f16 store_bf16 (16-bit elements: exact
 *                    widening; narrowing to nearest even as cfq_store1;
 *                    a store's last argument: stream)
 *   cfq_vh           CFQ_W 16-bit elements, as bits
 *   cfq_vh_load put any_nonfinite keep   (put: stores, streamed if asked,
 *                    as one store if stream is CFQ_STREAM_WHOLE;
 *                    any_nonfinite: some lane +-Inf or NaN; keep(dt, f, h):
 *                    h where f is set but a bfloat16 subnormal's sign, the
 *                    sign of h elsewhere: g times 1 or +0, cast back)
 *   CFQ_VH_KEYS      defined where the file has cfq_vh_set,
 *                    cfq_vh_keys_in(h, lo, hi) -> cfq_vb (the lanes whose
 *                    key, see cfq_params.key_lo, is in [lo, hi]) and
 *                    cfq_vh_magnitude_max(acc, h) (lane by lane, the larger
 *                    of acc and h without its sign, unsigned): the 16-bit
 *                    gradient's first pass then tests the words (see
 *                    cfq_grad_pass1_keys)
 *   CFQ_VD_ADD_WHERE, CFQ_VD_BLOCK_END   defined where the file has its
 *                    own cfq_vd_add_where / cfq_vd_block_end (see
 *                    cfq_vlanes_add_where and cfq_vlanes_block_end)
 *   CFQ_VF_BF16_NATIVE   defined where cfq_vf_store_bf16_native and
 *                    cfq_vf_to_bf16_native (NaN payloads kept) exist: the
 *                    CPU's own bfloat16 conversion, used for
 *                    CFQ_BFLOAT16_NATIVE
 *   cfq_vf_add sub mul div floor clamp            (clamp: TF's
 *                    std::max(std::min(x, hi), lo), NaN x kept)
 *   cfq_vf_and andnot     v where the flag is set / clear, +0 elsewhere
 *   cfq_vf_blend(f, a, b)  a's bits where f is set, b's elsewhere
 *   cfq_vf_neg       the sign flipped (no arithmetic)
 *   cfq_vf_exp_max(acc, v)   lane by lane, the larger of acc's bits and
 *                    v's exponent bits, as unsigned integers
 *   cfq_vf_lt le gt ge nonfinite -> cfq_vb        (ordered compares)
 *   cfq_vb_and or andnot not none all any bits load (andnot(a, b) = a & ~b;
 *                    bits: lane k as bit k; load: from 32-bit keep words)
 *   cfq_vi_load_codes store_codes codes eq has gt  (codes: from the flags
 *                    below, above, none)
 *   cfq_codes_plain64    whether 64 code bytes are all 0 to 4
 *   cfq_vd_zero load store add sub; cfq_vd_of(v, k): elements
 *                    [k * CFQ_DW, (k + 1) * CFQ_DW) of v as doubles
 *   cfq_vfence       orders streaming stores before the call returns
 *
 * Everything here is static, so each ISA file has its own copy.  Each
 * kernel switches once on the dtype (dt), and the building blocks take it
 * as a constant, so every loop is compiled for each element type.  Tails
 * (n not a multiple of CFQ_W) run the reference code of cfq_reference.h.
 */
#ifndef CFQ_SIMD_KERNELS_H
#define CFQ_SIMD_KERNELS_H

#include "cfq_reference.h"

/* ---- The sums' double lanes (see cfq_lanes) --------------------------------- */

#define CFQ_DV (CFQ_LANES / CFQ_DW) /* double vectors for a sum's 8 lanes */

/* The open block's partials of a sum's lanes, lane l in p[l / CFQ_DW]: the
 * only accumulators in registers; the compensated sums stay in memory, read
 * once a block (kept in registers too, on AVX2 they had pushed partials
 * onto the stack, a store and reload in each step's chain of adds). */
typedef struct cfq_vlanes {
    cfq_vd p[CFQ_DV];
} cfq_vlanes;

/* TwoSum (see cfq_twosum_add) on CFQ_DW lanes at once. */
CFQ_INLINE void cfq_vd_twosum(cfq_vd *s, cfq_vd *c, cfq_vd v)
{
    const cfq_vd t = cfq_vd_add(*s, v), v_part = cfq_vd_sub(t, *s);
    *c = cfq_vd_add(*c, cfq_vd_add(cfq_vd_sub(*s, cfq_vd_sub(t, v_part)), cfq_vd_sub(v, v_part)));
    *s = t;
}

CFQ_INLINE void cfq_vlanes_zero(cfq_vlanes *a)
{
    int k;
    for (k = 0; k < CFQ_DV; k++)
        a->p[k] = cfq_vd_zero();
}
/* A step's CFQ_W float terms, in element order, into the partials. */
CFQ_INLINE void cfq_vlanes_add(cfq_vlanes *a, cfq_vf terms)
{
    int k;
    for (k = 0; k < CFQ_W / CFQ_DW; k++)
        a->p[k % CFQ_DV] = cfq_vd_add(a->p[k % CFQ_DV], cfq_vd_of(terms, k));
}
/* g where f is set, nothing elsewhere (for finite g, where g * 0 = +-0
 * would change no partial): the bits of g where f is set, converted (DAZ or
 * FZ flushes a denormal g there, as TF's g * 1 does), one operation for
 * the two of g * (f ? 1 : 0). */
CFQ_INLINE void cfq_vlanes_add_where(cfq_vlanes *a, cfq_vb f, cfq_vf g)
{
#ifdef CFQ_VD_ADD_WHERE
    cfq_vd_add_where(a->p, f, g);
#else
    cfq_vlanes_add(a, cfq_vf_and(f, g));
#endif
}
/* The partials into the compensated sums in lane order, lane l's error to
 * error lane l % 4; the partials start again from 0. */
CFQ_INLINE void cfq_vlanes_block_end(cfq_vlanes *a, cfq_lanes *sums)
{
#ifdef CFQ_VD_BLOCK_END
    cfq_vd_block_end(a->p, sums);
#else
    cfq_vd c[CFQ_ERR_LANES / CFQ_DW];
    int k;
    for (k = 0; k < CFQ_ERR_LANES / CFQ_DW; k++)
        c[k] = cfq_vd_load(sums->c + k * CFQ_DW);
    for (k = 0; k < CFQ_DV; k++) {
        cfq_vd s = cfq_vd_load(sums->s + k * CFQ_DW);
        cfq_vd_twosum(&s, &c[k % (CFQ_ERR_LANES / CFQ_DW)], a->p[k]);
        cfq_vd_store(sums->s + k * CFQ_DW, s);
    }
    for (k = 0; k < CFQ_ERR_LANES / CFQ_DW; k++)
        cfq_vd_store(sums->c + k * CFQ_DW, c[k]);
#endif
    cfq_vlanes_zero(a);
}
/* cfq_lanes_total(): the open partials added as at a sum block's end, in
 * vectors (a 1K-element vars gradient call: 0.935 of its time with the
 * scalar loop), then cfq_lanes_fold(). */
CFQ_INLINE double cfq_vlanes_total(cfq_lanes *a)
{
    cfq_vlanes v;
    int k;
    for (k = 0; k < CFQ_DV; k++)
        v.p[k] = cfq_vd_load(a->p + k * CFQ_DW);
    cfq_vlanes_block_end(&v, a);
    return cfq_lanes_fold(a->s, a->c);
}
CFQ_INLINE void cfq_vlanes_store(cfq_lanes *sums, const cfq_vlanes *a)
{
    int k;
    for (k = 0; k < CFQ_DV; k++)
        cfq_vd_store(sums->p + k * CFQ_DW, a->p[k]);
}
/* The open stretch's partials of CFQ_W channels (see cfq_channel_sums), in
 * registers over a group of rows: loaded and stored once per group rather
 * than per term, which chains the terms through memory (64K, AVX-512,
 * float32, typical data, against TwoSum per term: 0.96-1.00 of its time
 * with the partials in memory, 0.91-0.98 in registers). */
typedef struct cfq_vpartials {
    cfq_vd below[CFQ_W / CFQ_DW], above[CFQ_W / CFQ_DW];
} cfq_vpartials;

CFQ_INLINE cfq_vpartials cfq_vpartials_load(const cfq_channel_sums *acc, size_t j)
{
    cfq_vpartials p;
    int k;
    for (k = 0; k < CFQ_W / CFQ_DW; k++) {
        p.below[k] = cfq_vd_load(acc->below_p + j + k * CFQ_DW);
        p.above[k] = cfq_vd_load(acc->above_p + j + k * CFQ_DW);
    }
    return p;
}
CFQ_INLINE void cfq_vpartials_store(cfq_channel_sums *acc, size_t j, const cfq_vpartials *p)
{
    int k;
    for (k = 0; k < CFQ_W / CFQ_DW; k++) {
        cfq_vd_store(acc->below_p + j + k * CFQ_DW, p->below[k]);
        cfq_vd_store(acc->above_p + j + k * CFQ_DW, p->above[k]);
    }
}
/* A row's terms of the CFQ_W channels into their partials. */
CFQ_INLINE void cfq_vpartials_add(cfq_vpartials *p, cfq_vf below, cfq_vf above)
{
    int k;
    for (k = 0; k < CFQ_W / CFQ_DW; k++) {
        p->below[k] = cfq_vd_add(p->below[k], cfq_vd_of(below, k));
        p->above[k] = cfq_vd_add(p->above[k], cfq_vd_of(above, k));
    }
}
/* A row's terms where g is finite and no lane passes g through: g where
 * the flag is set (see cfq_vlanes_add_where), converted once for both sums
 * where the file has cfq_vd_add_where_at. */
CFQ_INLINE void cfq_vpartials_add_where(cfq_vpartials *p, cfq_vb below, cfq_vb above, cfq_vf g)
{
#ifdef CFQ_VD_ADD_WHERE_AT
    int k;
    for (k = 0; k < CFQ_W / CFQ_DW; k++) {
        const cfq_vd d = cfq_vd_of(g, k);
        p->below[k] = cfq_vd_add_where_at(p->below[k], below, k, d);
        p->above[k] = cfq_vd_add_where_at(p->above[k], above, k, d);
    }
#else
    cfq_vpartials_add(p, cfq_vf_and(below, g), cfq_vf_and(above, g));
#endif
}

/* The partials p of one sum's channels [0, m) into (s, c), p back to 0. */
CFQ_INLINE void cfq_vd_flush(double *s, double *c, double *p, size_t m)
{
    size_t j;
    for (j = 0; j < m; j += CFQ_DW) {
        cfq_vd sj = cfq_vd_load(s + j), cj = cfq_vd_load(c + j);
        cfq_vd_twosum(&sj, &cj, cfq_vd_load(p + j));
        cfq_vd_store(s + j, sj);
        cfq_vd_store(c + j, cj);
        cfq_vd_store(p + j, cfq_vd_zero());
    }
}
/* cfq_channel_sums_flush() of channels [0, m), m a multiple of CFQ_DW. */
CFQ_INLINE void cfq_vchannel_sums_flush(cfq_channel_sums *acc, size_t m)
{
    cfq_vd_flush(acc->below_s, acc->below_c, acc->below_p, m);
    cfq_vd_flush(acc->above_s, acc->above_c, acc->above_p, m);
}


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

/* Whether n elements of dt at a and at b share memory (an in-place call). */
CFQ_INLINE int cfq_overlap(int dt, const void *a, const void *b, size_t n)
{
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    const uintptr_t bytes = (uintptr_t)(n * CFQ_ELEMENT_SIZE(dt));
    return pa < pb + bytes && pb < pa + bytes;
}

/* CFQ_W elements of dt at element i, as floats, and back. */
CFQ_INLINE cfq_vf cfq_vload(int dt, const void *base, size_t i)
{
    if (dt == CFQ_FLOAT32)
        return cfq_vf_load((const float *)base + i);
    if (dt == CFQ_FLOAT16)
        return cfq_vf_load_f16((const uint16_t *)base + i);
    return cfq_vf_load_bf16((const uint16_t *)base + i);
}

CFQ_INLINE void cfq_vput(int dt, void *base, size_t i, cfq_vf v, int stream)
{
    if (dt == CFQ_FLOAT32) {
        if (stream == CFQ_STREAM_WHOLE)
            cfq_vf_stream_whole((float *)base + i, v);
        else if (stream)
            cfq_vf_stream((float *)base + i, v);
        else
            cfq_vf_store((float *)base + i, v);
    } else if (dt == CFQ_FLOAT16) {
        cfq_vf_store_f16((uint16_t *)base + i, v, stream);
#ifdef CFQ_VF_BF16_NATIVE
    } else if (dt == CFQ_BFLOAT16_NATIVE) {
        cfq_vf_store_bf16_native((uint16_t *)base + i, v, stream);
#endif
    } else {
        cfq_vf_store_bf16((uint16_t *)base + i, v, stream);
    }
}

/* ---- Forward ------------------------------------------------------------- */

/* The parameters of CFQ_W lanes: one range broadcast, or CFQ_W channels. */
typedef struct cfq_vquant {
    cfq_vf lo, hi, scale, inv_scale, quant_zero, half, offset;
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
    q.offset = cfq_vf_set(p->offset);
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
    q.offset = cfq_vf_load(cp->offset + j);
    return q;
}

/* cfq_forward_div_one() or cfq_forward_mul_one() on CFQ_W lanes; with
 * exact (a literal: cfq_offset_exact() holds), one add of the offset in
 * place of - quant_zero + 0.5f, the same bits. */
CFQ_INLINE cfq_vf cfq_vforward(int divide, int exact, cfq_vf x, const cfq_vquant *q)
{
    const cfq_vf shifted = cfq_vf_sub(cfq_vf_clamp(x, q->lo, q->hi), q->lo);
    const cfq_vf scaled = divide ? cfq_vf_div(shifted, q->scale) : cfq_vf_mul(shifted, q->inv_scale);
    const cfq_vf rounded = exact ? cfq_vf_add(scaled, q->offset)
                                 : cfq_vf_add(cfq_vf_sub(scaled, q->quant_zero), q->half);
    return cfq_vf_mul(cfq_vf_floor(rounded), q->scale);
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
 * codes where region is not NULL; returns where the tail starts.  Outputs
 * past the caches are streamed (stream is a literal at each call, so the
 * store kind is no branch per step). */
CFQ_INLINE size_t cfq_forward_body(int dt, int divide, int exact, int stream, const void *x,
                                   size_t n, const cfq_vquant *q, void *out, unsigned char *region)
{
    size_t i = 0;
    for (; i + CFQ_W <= n; i += CFQ_W) {
        const cfq_vf vx = cfq_vload(dt, x, i);
        if (region != NULL)
            cfq_vi_store_codes(region + i, cfq_vregion_codes(vx, q->lo, q->hi));
        cfq_vput(dt, out, i, cfq_vforward(divide, exact, vx, q), stream);
    }
    if (stream)
        cfq_vfence();
    return i;
}

/* cfq_forward_body with the store kind (0, 1 or CFQ_STREAM_WHOLE) and
 * region NULL or not as literals. */
CFQ_INLINE size_t cfq_forward_bodies(int dt, int divide, int exact, int stream, const void *x,
                                     size_t n, const cfq_vquant *q, void *out, unsigned char *region)
{
    switch (stream) {
    case 0:
        return region != NULL ? cfq_forward_body(dt, divide, exact, 0, x, n, q, out, region)
                              : cfq_forward_body(dt, divide, exact, 0, x, n, q, out, NULL);
    case CFQ_STREAM_WHOLE:
        return region != NULL ? cfq_forward_body(dt, divide, exact, CFQ_STREAM_WHOLE, x, n, q, out, region)
                              : cfq_forward_body(dt, divide, exact, CFQ_STREAM_WHOLE, x, n, q, out, NULL);
    default:
        return region != NULL ? cfq_forward_body(dt, divide, exact, 1, x, n, q, out, region)
                              : cfq_forward_body(dt, divide, exact, 1, x, n, q, out, NULL);
    }
}

/*
 * Where the elementwise ops' vector body starts: 0, or, for outputs apart
 * from the inputs, the first element whose output vector lies in one cache
 * line; the elements before it are then one unaligned vector at 0, whose
 * overlap with the body the body writes again with the same bits.  A store
 * across two lines costs twice, and NumPy's arrays are only 16-byte
 * aligned: at 64K, outputs at such offsets had made the args op 4.5-8%
 * slower (misaligned inputs cost nothing measurable).
 */
CFQ_INLINE size_t cfq_body_start(int dt, const void *out, size_t n, int apart)
{
    const size_t size = CFQ_ELEMENT_SIZE(dt), line = CFQ_W * size < 64 ? CFQ_W * size : 64;
    const size_t off = (size_t)((uintptr_t)out % line);
    if (!apart || n < 2 * CFQ_W || off % size != 0)
        return 0;
    return (line - off) % line / size;
}

/* The store kind of a body whose output starts at out: streamed stores
 * (stream set) as whole vectors where out is aligned to one, so every
 * step's is.  The elementwise ops' bodies start so (cfq_body_start) on
 * any 16-byte-aligned output apart from the inputs, for n >= 2 * CFQ_W
 * (else at 0, whatever out's alignment).  The gradients with
 * sums keep 16-byte streams: their blocks start where the chunk does. */
CFQ_INLINE int cfq_body_stream(int dt, const void *out, int stream)
{
    return stream && (uintptr_t)out % (CFQ_W * CFQ_ELEMENT_SIZE(dt)) == 0 ? CFQ_STREAM_WHOLE : stream;
}

CFQ_INLINE void cfq_forward_of(int dt, int divide, const void *x, size_t n, const cfq_params *p,
                               void *out, unsigned char *region)
{
    const cfq_vquant q = cfq_vquant_of(p);
    const size_t at = cfq_body_start(dt, out, n, !cfq_overlap(dt, out, x, n));
    const void *xb = cfq_in(dt, x, at);
    void *ob = cfq_out(dt, out, at);
    unsigned char *rb = region != NULL ? region + at : NULL;
    const int stream = cfq_body_stream(dt, ob, p->stream);
    size_t i;
    if (at != 0)
        (void)cfq_forward_body(dt, divide, 0, 0, x, CFQ_W, &q, out, region);
    i = p->offset_exact ? cfq_forward_bodies(dt, divide, 1, stream, xb, n - at, &q, ob, rb)
                        : cfq_forward_bodies(dt, divide, 0, stream, xb, n - at, &q, ob, rb);
    cfq_forward_range(dt, divide, x, at + i, n, p, out, region);
}

/* ---- Gradients ------------------------------------------------------------ */

/* Where a gradient's region flags come from: the inputs against the nudged
 * bounds, or the region codes of the forward op; "plain" codes are a block's
 * known to be 0 to 4 (no pass-through lane, no byte that is no code), so
 * the steps skip those checks (on inputs half outside the range they had
 * made the region gradient slower than the one from inputs). */
enum cfq_grad_from { CFQ_FROM_INPUTS, CFQ_FROM_CODES, CFQ_FROM_PLAIN_CODES };


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
CFQ_INLINE cfq_vstep cfq_vstep_load(int from, int dt, const void *g, const void *x,
                                    const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi)
{
    cfq_vstep s;
    s.g = cfq_vload(dt, g, i);
    s.lo = lo;
    s.hi = hi;
    if (from == CFQ_FROM_INPUTS) {
        s.x = cfq_vload(dt, x, i);
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
    return from != CFQ_FROM_CODES ? cfq_vb_none() : cfq_vi_eq(s->code, CFQ_REGION_PASS);
}

/* g * (inside ? 1 : 0), as TF multiplies (see cfq_params.one). */
CFQ_INLINE cfq_vf cfq_vstep_dx(cfq_vf g, cfq_vb inside, cfq_vf one)
{
    return cfq_vf_mul(g, cfq_vf_and(inside, one));
}

/* Stores dx = g * (inside ? 1 : 0) at element i of a 16-bit type whose g
 * are all finite: no product is NaN, so the CPU's bfloat16 conversion needs
 * no NaN fix; elsewhere without converting: upcast, g times 1 is g (a
 * bfloat16 subnormal is a float denormal, which DAZ makes its sign's zero)
 * and g times +0 is g's sign's zero, and the cast back gives those bits.
 * Used without a test by the vars gradient's lazy path (bfloat16, ns per
 * element: AVX-512 BF16 at 16M 0.166 -> 0.149, AVX2 at 64K 0.31 -> 0.23). */
CFQ_INLINE void cfq_vput_dx_finite(int dt, void *dx, size_t i, const void *g, cfq_vf vg, cfq_vb inside,
                                   cfq_vf one, int stream)
{
#ifdef CFQ_VF_BF16_NATIVE
    if (dt == CFQ_BFLOAT16_NATIVE) {
        cfq_vh_put((uint16_t *)dx + i, cfq_vf_to_bf16_native(cfq_vstep_dx(vg, inside, one)), stream);
        return;
    }
#else
    (void)vg;
    (void)one;
#endif
    cfq_vh_put((uint16_t *)dx + i, cfq_vh_keep(dt, inside, cfq_vh_load((const uint16_t *)g + i)), stream);
}

/* Stores dx = g * (inside ? 1 : 0) at element i; vg: g as floats.  With
 * finite (the caller checks g after the chunk) the 16-bit types store with
 * cfq_vput_dx_finite; without it bfloat16 first tests the step's g words
 * for +-Inf and NaN, which is cheaper than the product narrowed with its
 * NaN fix (ns per element at 64K: AVX2 0.31 -> 0.22; AVX-512 BF16, per
 * channel, 0.173 -> 0.161), and float16 stores the product, which the CPU
 * narrows in one instruction (0.153 against 0.161 with the test).  Returns 0 when the
 * step's g were finite, else 1 (the product stored, NaN as the float op
 * makes it). */
CFQ_INLINE int cfq_vput_dx(int dt, void *dx, size_t i, const void *g, cfq_vf vg, cfq_vb inside,
                           cfq_vf one, int stream, int finite)
{
    if (dt != CFQ_FLOAT32
        && (finite || (dt != CFQ_FLOAT16 && !cfq_vh_any_nonfinite(dt, cfq_vh_load((const uint16_t *)g + i))))) {
        cfq_vput_dx_finite(dt, dx, i, g, vg, inside, one, stream);
        return 0;
    }
    cfq_vput(dt, dx, i, cfq_vstep_dx(vg, inside, one), stream);
    return 1;
}

/* Stores dx at element i (see cfq_vput_dx) where the lanes f pass g
 * through (see cfq_copy1): those get g's bits, from vg for float32 (its
 * bits are g's), for the 16-bit types from g's words read before dx is
 * stored, since in place dx is g.  A rare path (pass-through lanes), stored
 * through the cache: a masked store onto a line just streamed out costs ten
 * times the step.  Returns cfq_vput_dx's result. */
CFQ_INLINE int cfq_vput_dx_passing(int dt, void *dx, size_t i, const void *g, cfq_vf vg, cfq_vb inside,
                                   cfq_vf one, cfq_vb f)
{
    uint16_t words[CFQ_W];
    unsigned bits = cfq_vb_bits(f);
    int k, product;
    if (dt != CFQ_FLOAT32)
        memcpy(words, (const uint16_t *)g + i, sizeof words);
    product = cfq_vput_dx(dt, dx, i, g, vg, inside, one, 0, 0);
    if (dt == CFQ_FLOAT32)
        cfq_vf_store_lanes((float *)dx + i, f, vg);
    else
        for (k = 0; bits != 0; k++, bits >>= 1)
            if (bits & 1u)
                cfq_copy1(dt, (uint16_t *)dx + i, words, (size_t)k);
    return product;
}

/* Pass 1 of a step: writes dx (pass-through lanes included), returns
 * whether the step is busy: some lane not inside, or a non-finite g (g * 0
 * is then NaN), so its sum terms can be nonzero. */
CFQ_INLINE int cfq_grad_dx(int from, int dt, const cfq_vstep *s, cfq_vf one, const void *g,
                           void *dx, size_t i, int stream, cfq_vf *seen)
{
    const cfq_vb inside = cfq_vstep_inside(from, s), pass = cfq_vstep_pass(from, s);
    const int product = from == CFQ_FROM_CODES && cfq_vb_any(pass)
                            ? cfq_vput_dx_passing(dt, dx, i, g, s->g, inside, one, pass)
                            : cfq_vput_dx(dt, dx, i, g, s->g, inside, one, stream, seen != NULL);
    if (!product || seen != NULL) {
        if (seen != NULL) /* finite g assumed, checked after the chunk */
            *seen = cfq_vf_exp_max(*seen, s->g);
        return !cfq_vb_all(inside);
    }
    return !cfq_vb_all(cfq_vb_andnot(inside, cfq_vf_nonfinite(s->g)));
}

/* Pass 2 of a step: its sum terms into the lanes' partials.  With finite
 * gradients a term is g or +-0, and adding +-0 changes no partial (a
 * partial is never -0): add_where adds g where the flag is set and nothing
 * elsewhere, cheaper on some ISAs than g * mask.  A non-finite g makes
 * g * 0 NaN: such steps add the terms as TF forms them.  Pass-through lanes
 * (their g's bits copied into dx by cfq_grad_dx: a select between g and
 * g * mask may be compiled as g * select(mask, 1), which flushes a
 * denormal g) get no terms (their codes have neither flag).  Codes that
 * are no region code are noted in *bad.
 * seen not NULL: g finite assumed (see cfq_grad_chunk). */
CFQ_INLINE void cfq_grad_terms(int from, const cfq_vstep *s, cfq_vf one, cfq_vlanes *below,
                               cfq_vlanes *above, cfq_vb *bad, const cfq_vf *seen)
{
    if (from == CFQ_FROM_CODES)
        *bad = cfq_vb_or(*bad, cfq_vb_andnot(cfq_vi_gt(s->code, CFQ_REGION_NONE), cfq_vstep_pass(from, s)));
    if (seen != NULL || !cfq_vb_any(cfq_vf_nonfinite(s->g))) {
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
CFQ_INLINE int cfq_grad_step(int from, int dt, const cfq_vstep *s, cfq_vf one, const void *g,
                             void *dx, size_t i, int stream, cfq_vlanes *below, cfq_vlanes *above,
                             cfq_vb *bad, cfq_vf *seen)
{
    if (!cfq_grad_dx(from, dt, s, one, g, dx, i, stream, seen))
        return 0;
    cfq_grad_terms(from, s, one, below, above, bad, seen);
    return 1;
}

/* Pass 1 of the block at i: its input gradient; bit k of the result: step
 * k is busy. */
CFQ_INLINE unsigned cfq_grad_pass1(int from, int dt, const void *g, const void *x,
                                   const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi,
                                   cfq_vf one, void *dx, int stream, cfq_vf *seen)
{
    unsigned busy = 0;
    int k;
    for (k = 0; k < CFQ_STEPS; k++) {
        const size_t j = i + (size_t)k * CFQ_W;
        const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, j, lo, hi);
        busy |= (unsigned)cfq_grad_dx(from, dt, &s, one, g, dx, j, stream, seen) << k;
    }
    return busy;
}

/* The block at i in one pass (most of its steps are busy); returns which
 * steps were. */
CFQ_INLINE unsigned cfq_grad_fused(int from, int dt, const void *g, const void *x,
                                   const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi,
                                   cfq_vf one, void *dx, int stream, cfq_vlanes *below,
                                   cfq_vlanes *above, cfq_vb *bad, cfq_vf *seen)
{
    unsigned busy = 0;
    int k;
    for (k = 0; k < CFQ_STEPS; k++) {
        const size_t j = i + (size_t)k * CFQ_W;
        const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, j, lo, hi);
        busy |= (unsigned)cfq_grad_step(from, dt, &s, one, g, dx, j, stream, below, above, bad, seen) << k;
    }
    return busy;
}

/* Pass 1 on the words of a 16-bit type (see cfq_params.keyed), where the
 * file defines CFQ_VH_KEYS. */
typedef struct cfq_vkeys {
    cfq_vh lo, hi;       /* key_lo, key_hi */
    cfq_vh g_magnitude;  /* the largest magnitude of g so far, for the non-finite check */
} cfq_vkeys;

#ifdef CFQ_VH_KEYS
/* Pass 1 of the block at i from 16-bit inputs, g finite assumed: the words
 * of x tested by their keys and those of g kept (cfq_vh_keep), with no
 * conversion.  AVX-512, typical data, new/old time: float16 0.98-1.00 in
 * the caches, 0.94-1.00 at 16M; bfloat16 0.96-0.98 and 0.91-0.94.  On AVX2
 * the same pass was slower (64K: float16 1.05-1.11, bfloat16 1.23-1.33), so
 * that file keeps the float pass. */
CFQ_INLINE unsigned cfq_grad_pass1_keys(int dt, const void *g, const void *x, size_t i, void *dx,
                                        int stream, cfq_vkeys *keys)
{
    unsigned busy = 0;
    int k;
    for (k = 0; k < CFQ_STEPS; k++) {
        const size_t j = i + (size_t)k * CFQ_W;
        const cfq_vh hg = cfq_vh_load((const uint16_t *)g + j);
        const cfq_vb inside = cfq_vh_keys_in(cfq_vh_load((const uint16_t *)x + j), keys->lo, keys->hi);
        cfq_vh_put((uint16_t *)dx + j, cfq_vh_keep(dt, inside, hg), stream);
        keys->g_magnitude = cfq_vh_magnitude_max(keys->g_magnitude, hg);
        busy |= (unsigned)!cfq_vb_all(inside) << k;
    }
    return busy;
}
#endif

/* The block at i, in one pass after a block whose steps were all busy, else
 * in two; returns which steps were busy.  stream is a literal at each
 * call below, so the store kind is no branch per step (the compiler will
 * not unswitch it here by itself). */
CFQ_INLINE unsigned cfq_grad_block(int from, int dt, const void *g, const void *x,
                                   const unsigned char *codes, size_t i, cfq_vf lo, cfq_vf hi,
                                   cfq_vf one, void *dx, int stream, unsigned busy_before,
                                   cfq_vlanes *below, cfq_vlanes *above, cfq_vb *bad, cfq_vf *seen,
                                   cfq_vkeys *keys)
{
    unsigned busy, walk;
    if (busy_before == (1u << CFQ_STEPS) - 1)
        return stream ? cfq_grad_fused(from, dt, g, x, codes, i, lo, hi, one, dx, 1, below, above, bad, seen)
                      : cfq_grad_fused(from, dt, g, x, codes, i, lo, hi, one, dx, 0, below, above, bad, seen);
#ifdef CFQ_VH_KEYS
    if (keys != NULL)
        busy = stream ? cfq_grad_pass1_keys(dt, g, x, i, dx, 1, keys) : cfq_grad_pass1_keys(dt, g, x, i, dx, 0, keys);
    else
#endif
        busy = stream ? cfq_grad_pass1(from, dt, g, x, codes, i, lo, hi, one, dx, 1, seen)
                      : cfq_grad_pass1(from, dt, g, x, codes, i, lo, hi, one, dx, 0, seen);
    (void)keys;
    for (walk = busy; walk != 0; walk &= walk - 1) { /* the busy steps, in order */
        const size_t j = i + CFQ_W * (size_t)cfq_lowest_bit8[walk];
        const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, j, lo, hi);
        cfq_grad_terms(from, &s, one, below, above, bad, seen);
    }
    return busy;
}

/* The whole blocks of a chunk (not in place); returns where they end.
 * seen not NULL: the gradients are assumed finite, and *seen (and
 * keys->g_magnitude, for the blocks of the keyed pass) collects their
 * exponents for the caller's check: a non-finite g makes g * 0 NaN
 * (a term for both sums, even inside the range), which the steps then need
 * not test for (the test and its branch on every step had cost up to 40%
 * of the gradient on inputs half outside the range); the caller runs the
 * blocks again with seen NULL, which tests every step, after the rare
 * chunk that had one. */
CFQ_INLINE size_t cfq_grad_blocks(int from, int dt, const void *g, const void *x,
                                  const unsigned char *codes, size_t n, cfq_vf lo, cfq_vf hi,
                                  cfq_vf one, void *dx, int stream, cfq_vlanes *below_acc,
                                  cfq_vlanes *above_acc, cfq_lanes *below, cfq_lanes *above,
                                  cfq_vb *bad, cfq_vf *seen, cfq_vkeys *keys)
{
    size_t i = 0;
    unsigned busy = 0;
    int open = 0; /* terms added since the last sum block's end */
    for (; i + CFQ_BLOCK <= n; i += CFQ_BLOCK) {
        if (from == CFQ_FROM_CODES && cfq_codes_plain64(codes + i))
            busy = cfq_grad_block(CFQ_FROM_PLAIN_CODES, dt, g, x, codes, i, lo, hi, one, dx, stream, busy,
                                  below_acc, above_acc, bad, seen, NULL);
        else
            busy = cfq_grad_block(from, dt, g, x, codes, i, lo, hi, one, dx, stream, busy, below_acc,
                                  above_acc, bad, seen, keys);
        open |= busy != 0;
        if ((i + CFQ_BLOCK) % CFQ_SUM_BLOCK == 0 && open) { /* else the partials are still 0 */
            cfq_vlanes_block_end(below_acc, below);
            cfq_vlanes_block_end(above_acc, above);
            open = 0;
        }
    }
    return i;
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
CFQ_INLINE int cfq_grad_chunk(int from, int dt, const void *g, const void *x,
                              const unsigned char *codes, size_t n, const cfq_params *p,
                              void *dx, double sums[2])
{
    const cfq_vf lo = cfq_vf_set(p->nudged_min), hi = cfq_vf_set(p->nudged_max);
    const cfq_vf one = cfq_vf_set(p->one);
    const int stream = p->stream;
    const int in_place = cfq_overlap(dt, dx, g, n) || (from == CFQ_FROM_INPUTS && cfq_overlap(dt, dx, x, n));
    cfq_vlanes below_acc, above_acc;
    cfq_lanes below, above;
    cfq_vb bad = cfq_vb_none();
    size_t i = 0;
    int bad_tail;

    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    cfq_vlanes_zero(&below_acc);
    cfq_vlanes_zero(&above_acc);
    if (!in_place) {
        cfq_vf seen = cfq_vf_set(0.0f);
        cfq_vkeys *keys = NULL;
#ifdef CFQ_VH_KEYS
        cfq_vkeys words;
        if (from == CFQ_FROM_INPUTS && dt != CFQ_FLOAT32 && p->keyed) {
            words.lo = cfq_vh_set(p->key_lo);
            words.hi = cfq_vh_set(p->key_hi);
            words.g_magnitude = cfq_vh_set(0);
            keys = &words;
        }
#endif
        i = cfq_grad_blocks(from, dt, g, x, codes, n, lo, hi, one, dx, stream, &below_acc, &above_acc,
                            &below, &above, &bad, &seen, keys);
        if (cfq_vb_any(cfq_vf_nonfinite(seen)) || (keys != NULL && cfq_vh_any_nonfinite(dt, keys->g_magnitude))) {
            /* a non-finite g: again, checking every step */
            cfq_lanes_zero(&below);
            cfq_lanes_zero(&above);
            cfq_vlanes_zero(&below_acc);
            cfq_vlanes_zero(&above_acc);
            bad = cfq_vb_none();
            i = cfq_grad_blocks(from, dt, g, x, codes, n, lo, hi, one, dx, stream, &below_acc, &above_acc,
                                &below, &above, &bad, NULL, NULL);
        }
    }
    for (; i + CFQ_W <= n; i += CFQ_W) {
        const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, i, lo, hi);
        cfq_grad_step(from, dt, &s, one, g, dx, i, stream, &below_acc, &above_acc, &bad, NULL);
        if (i % CFQ_SUM_BLOCK == CFQ_SUM_BLOCK - CFQ_W) {
            cfq_vlanes_block_end(&below_acc, &below);
            cfq_vlanes_block_end(&above_acc, &above);
        }
    }
    if (stream)
        cfq_vfence();
    cfq_vlanes_store(&below, &below_acc);
    cfq_vlanes_store(&above, &above_acc);
    if (from == CFQ_FROM_INPUTS) {
        cfq_vars_grad_range(dt, g, x, i, n, p, dx, &below, &above);
        bad_tail = 0;
    } else {
        bad_tail = cfq_region_grad_range(dt, g, codes, i, n, p, dx, &below, &above);
    }
    sums[0] = cfq_vlanes_total(&below);
    sums[1] = cfq_vlanes_total(&above);
    return bad_tail | cfq_vb_any(bad);
}

CFQ_INLINE size_t cfq_args_grad_body(int dt, int stream, const void *g, const void *x, size_t n,
                                     const cfq_params *p, void *dx)
{
    const cfq_vf lo = cfq_vf_set(p->nudged_min), hi = cfq_vf_set(p->nudged_max);
    const cfq_vf one = cfq_vf_set(p->one);
    size_t i = 0;
    for (; i + CFQ_W <= n; i += CFQ_W) {
        const cfq_vf vx = cfq_vload(dt, x, i);
        const cfq_vb inside = cfq_vb_and(cfq_vf_ge(vx, lo), cfq_vf_le(vx, hi));
        (void)cfq_vput_dx(dt, dx, i, g, cfq_vload(dt, g, i), inside, one, stream, 0);
    }
    if (stream)
        cfq_vfence();
    return i;
}

CFQ_INLINE void cfq_args_grad_of(int dt, const void *g, const void *x, size_t n, const cfq_params *p,
                                 void *dx)
{
    const int apart = !cfq_overlap(dt, dx, g, n) && !cfq_overlap(dt, dx, x, n);
    const size_t at = cfq_body_start(dt, dx, n, apart);
    const void *gb = cfq_in(dt, g, at), *xb = cfq_in(dt, x, at);
    void *db = cfq_out(dt, dx, at);
    size_t i;
    if (at != 0)
        (void)cfq_args_grad_body(dt, 0, g, x, CFQ_W, p, dx);
    switch (cfq_body_stream(dt, db, p->stream)) {
    case CFQ_STREAM_WHOLE: i = cfq_args_grad_body(dt, CFQ_STREAM_WHOLE, gb, xb, n - at, p, db); break;
    case 0: i = cfq_args_grad_body(dt, 0, gb, xb, n - at, p, db); break;
    default: i = cfq_args_grad_body(dt, 1, gb, xb, n - at, p, db); break;
    }
    cfq_args_grad_range(dt, g, x, at + i, n, p, dx);
}

/* ---- Per channel, over the last axis --------------------------------------- */

/* Channel blocks of CFQ_W whose parameters the per-channel ops over the
 * last axis keep in registers at once (the forward: five vectors and a
 * mask each; the gradient: two, beside its partials), of 32 vector
 * registers on AVX-512 (which defines it as 4), of 16 elsewhere. */
#ifndef CFQ_REGISTER_BLOCKS
#define CFQ_REGISTER_BLOCKS 2
#endif

/* The per-channel forward of rows [0, rows) with `blocks` channel blocks
 * (a literal, <= CFQ_REGISTER_BLOCKS), row by row, with region codes where
 * region is not NULL: the parameters stay in registers for all the rows,
 * and the rows are read in order.  At 64K, [1024, 64], AVX-512, this took
 * the args op's time per element; cfq_per_channel_forward_rows() had taken
 * 1.4-1.7x it, with 6 parameter loads and its loops for every 4 vectors. */
CFQ_INLINE void cfq_per_channel_forward_blocks(int dt, int blocks, int exact, int stream,
                                               const void *x, size_t rows, size_t stride,
                                               const cfq_channel_params *cp, void *out,
                                               unsigned char *region)
{
    cfq_vquant q[CFQ_REGISTER_BLOCKS];
    cfq_vb keep[CFQ_REGISTER_BLOCKS];
    size_t r;
    int b;
    for (b = 0; b < blocks; b++) {
        q[b] = cfq_vquant_at(cp, (size_t)b * CFQ_W);
        keep[b] = cfq_vb_load(cp->keep + (size_t)b * CFQ_W);
    }
    for (r = 0; r < rows; r++)
        for (b = 0; b < blocks; b++) {
            const size_t at = r * stride + (size_t)b * CFQ_W;
            const cfq_vf vx = cfq_vload(dt, x, at);
            if (region != NULL) /* channels with min == max == 0: pass-through */
                cfq_vi_store_codes(region + at, cfq_vi_blend(keep[b], cfq_vregion_codes(vx, q[b].lo, q[b].hi),
                                                             CFQ_REGION_PASS));
            cfq_vput(dt, out, at, cfq_vf_and(keep[b], cfq_vforward(0, exact, vx, &q[b])), stream);
        }
}

/* Rows [0, R) of the per-channel forward op, channels [0, m - m % W), with
 * region codes where region is not NULL: each channel block's parameters
 * are loaded once for R rows (R a literal; once a row, their six loads took
 * as long as the arithmetic). */
CFQ_INLINE void cfq_per_channel_forward_rows(int dt, int rows, int exact, int stream, const void *x,
                                             size_t stride, size_t m, const cfq_channel_params *cp,
                                             void *out, unsigned char *region)
{
    size_t j;
    int r;
    for (j = 0; j + CFQ_W <= m; j += CFQ_W) {
        const cfq_vquant q = cfq_vquant_at(cp, j);
        const cfq_vb keep = cfq_vb_load(cp->keep + j);
        for (r = 0; r < rows; r++) {
            const size_t at = (size_t)r * stride + j;
            const cfq_vf vx = cfq_vload(dt, x, at);
            if (region != NULL) /* channels with min == max == 0: pass-through */
                cfq_vi_store_codes(region + at, cfq_vi_blend(keep, cfq_vregion_codes(vx, q.lo, q.hi),
                                                             CFQ_REGION_PASS));
            cfq_vput(dt, out, at, cfq_vf_and(keep, cfq_vforward(0, exact, vx, &q)), stream);
        }
    }
}

CFQ_INLINE void cfq_per_channel_forward_body(int dt, int exact, int stream, const void *x,
                                             size_t rows, size_t stride, size_t m,
                                             const cfq_channel_params *cp, void *out,
                                             unsigned char *region)
{
    size_t r = 0;
    switch (m / CFQ_W) { /* up to CFQ_REGISTER_BLOCKS blocks: all rows at once */
    case 0: break;
    case 1: cfq_per_channel_forward_blocks(dt, 1, exact, stream, x, rows, stride, cp, out, region); break;
    case 2: cfq_per_channel_forward_blocks(dt, 2, exact, stream, x, rows, stride, cp, out, region); break;
#if CFQ_REGISTER_BLOCKS > 2
    case 3: cfq_per_channel_forward_blocks(dt, 3, exact, stream, x, rows, stride, cp, out, region); break;
    case 4: cfq_per_channel_forward_blocks(dt, 4, exact, stream, x, rows, stride, cp, out, region); break;
#endif
    default: /* more: 4 rows of one block at a time.  Row by row over groups of
              * blocks took 1.1x this time at 256 channels: each load waited
              * on the store 4 rows (4 KB) before it. */
        for (; r + 4 <= rows; r += 4)
            cfq_per_channel_forward_rows(dt, 4, exact, stream, cfq_in(dt, x, r * stride), stride, m, cp,
                                         cfq_out(dt, out, r * stride),
                                         region != NULL ? region + r * stride : NULL);
        for (; r < rows; r++)
            cfq_per_channel_forward_rows(dt, 1, exact, stream, cfq_in(dt, x, r * stride), stride, m, cp,
                                         cfq_out(dt, out, r * stride),
                                         region != NULL ? region + r * stride : NULL);
    }
    if (stream)
        cfq_vfence();
}

CFQ_INLINE void cfq_per_channel_forward_of(int dt, const void *x, size_t rows, size_t stride,
                                           size_t m, const cfq_channel_params *cp, void *out,
                                           unsigned char *region)
{
    const size_t tail = m - m % CFQ_W;
    size_t r;
    if (cp->offset_exact && cp->stream)
        cfq_per_channel_forward_body(dt, 1, 1, x, rows, stride, m, cp, out, region);
    else if (cp->offset_exact)
        cfq_per_channel_forward_body(dt, 1, 0, x, rows, stride, m, cp, out, region);
    else if (cp->stream)
        cfq_per_channel_forward_body(dt, 0, 1, x, rows, stride, m, cp, out, region);
    else
        cfq_per_channel_forward_body(dt, 0, 0, x, rows, stride, m, cp, out, region);
    for (r = 0; r < rows && tail < m; r++)
        cfq_per_channel_forward_row(dt, cfq_in(dt, x, r * stride), tail, m, cp, cfq_out(dt, out, r * stride),
                                    region != NULL ? region + r * stride : NULL);
}

/* A step's sum terms into channels [j, j + W): g * (below ? 1 : 0) and
 * g * (above ? 1 : 0) as TF forms them, none in pass-through lanes. */
CFQ_INLINE void cfq_per_channel_terms(int from, const cfq_vstep *s, cfq_vb pass, cfq_vf one,
                                      cfq_vpartials *p)
{
    cfq_vpartials_add(p, cfq_vf_andnot(pass, cfq_vf_mul(s->g, cfq_vf_and(cfq_vstep_below(from, s), one))),
                      cfq_vf_andnot(pass, cfq_vf_mul(s->g, cfq_vf_and(cfq_vstep_above(from, s), one))));
}

/* The lanes that pass g through: channels with min == max == 0 (keep
 * clear), or, from region codes, code CFQ_REGION_PASS. */
CFQ_INLINE cfq_vb cfq_per_channel_pass(int from, cfq_vb keep, const cfq_vstep *s)
{
    return from == CFQ_FROM_INPUTS ? cfq_vb_not(keep) : cfq_vstep_pass(from, s);
}

/* One step of the per-channel gradient with every test: dx (pass-through
 * lanes g's bits), then its terms if some lane that is no pass-through lane
 * is outside or (stored as the product) has a non-finite g. */
CFQ_INLINE void cfq_per_channel_step(int from, int dt, int stream, const void *g, const void *x,
                                     const unsigned char *codes, size_t at, cfq_vf lo, cfq_vf hi,
                                     cfq_vb keep, cfq_vf one, void *dx, cfq_vpartials *p)
{
    const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, at, lo, hi);
    const cfq_vb inside = cfq_vstep_inside(from, &s);
    const cfq_vb pass = cfq_per_channel_pass(from, keep, &s);
    const int product = cfq_vb_any(pass) ? cfq_vput_dx_passing(dt, dx, at, g, s.g, inside, one, pass)
                                         : cfq_vput_dx(dt, dx, at, g, s.g, inside, one, stream, 0);
    const cfq_vb quiet = product ? cfq_vb_andnot(inside, cfq_vf_nonfinite(s.g)) : inside;
    if (cfq_vb_any(cfq_vb_andnot(cfq_vb_not(pass), quiet)))
        cfq_per_channel_terms(from, &s, pass, one, p);
}

/* Rows [0, R) of channels [j, j + W), each step with every test. */
CFQ_INLINE void cfq_per_channel_steps(int from, int dt, int rows, int stream, const void *g, const void *x,
                                      const unsigned char *codes, size_t stride, size_t j, cfq_vf lo, cfq_vf hi,
                                      cfq_vb keep, cfq_vf one, void *dx, cfq_channel_sums *acc)
{
    cfq_vpartials p = cfq_vpartials_load(acc, j);
    int r;
    for (r = 0; r < rows; r++)
        cfq_per_channel_step(from, dt, stream, g, x, codes, (size_t)r * stride + j, lo, hi, keep, one, dx, &p);
    cfq_vpartials_store(acc, j, &p);
}

/* Rows [0, R) of channels [j, j + W) as if every g were finite (no
 * pass-through lane): stores dx, notes the largest exponent in *seen;
 * with_terms (a literal) adds the terms to *p as well.  Bit r of the
 * result: row r is busy (some lane not inside). */
CFQ_INLINE unsigned cfq_per_channel_finite_rows(int from, int dt, int rows, int stream, int with_terms,
                                                const void *g, const void *x, const unsigned char *codes,
                                                size_t stride, size_t j, cfq_vf lo, cfq_vf hi, cfq_vf one,
                                                void *dx, cfq_vf *seen, cfq_vpartials *p)
{
    unsigned busy = 0;
    int r;
    for (r = 0; r < rows; r++) {
        const size_t at = (size_t)r * stride + j;
        const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, at, lo, hi);
        const cfq_vb inside = cfq_vstep_inside(from, &s);
        (void)cfq_vput_dx(dt, dx, at, g, s.g, inside, one, stream, 1);
        busy |= (unsigned)!cfq_vb_all(inside) << r;
        *seen = cfq_vf_exp_max(*seen, s.g);
        if (with_terms)
            cfq_vpartials_add_where(p, cfq_vstep_below(from, &s), cfq_vstep_above(from, &s), s.g);
    }
    return busy;
}

/* Rows [0, R) of the per-channel gradient from inputs or from region
 * codes, channels [0, m - m % W), each channel's terms in row order (see
 * cfq_per_channel_forward_rows); returns nonzero on a byte that is no
 * region code.  As the vars gradient's blocks (see cfq_grad_chunk), the R
 * steps of a channel vector first store dx as if every g were finite,
 * noting which steps are busy (some lane not inside) and the largest
 * exponent; then the busy ones (a few percent on typical
 * data) add their terms, loaded again from L1, or, after an Inf or NaN g,
 * the R steps run again with every test (cfq_per_channel_step).  ns per
 * element at 64K, AVX-512, [n/64, 64] (measured before rows of up to 64
 * channels took cfq_per_channel_grad_blocks): float32 0.155 -> 0.125, bfloat16
 * 0.162 -> 0.154, float16 0.153 -> 0.151 (0.09 with no terms at all: the
 * rest was the TwoSum of each busy step's terms; terms now go to the
 * stretch's partials, see cfq_vpartials).  After a vector whose rows were
 * all busy (*all_busy, inputs mostly outside), the next one adds its terms
 * in the same pass, as the vars gradient's blocks do: with half the inputs
 * outside, 64K, AVX-512, float32 0.225 -> 0.16 ns per element (0.59 with
 * TwoSum per term), float16 0.34 -> 0.18, bfloat16 0.33 -> 0.19.  In place
 * (one_pass) a second look would read outputs: every step is then
 * cfq_per_channel_step.  stream and one_pass are literals. */
CFQ_INLINE int cfq_per_channel_grad_rows(int from, int dt, int rows, int stream, int one_pass,
                                         const void *g, const void *x, const unsigned char *codes,
                                         size_t stride, size_t m, const cfq_channel_params *cp, void *dx,
                                         cfq_channel_sums *acc, int *all_busy)
{
    const cfq_vf one = cfq_vf_set(cp->one);
    cfq_vb bad = cfq_vb_none();
    size_t j;
    int r;
    for (j = 0; j + CFQ_W <= m; j += CFQ_W) {
        /* the region gradient reads only codes (cp holds no channel's range) */
        const cfq_vb keep = from == CFQ_FROM_INPUTS ? cfq_vb_load(cp->keep + j) : cfq_vb_none();
        const cfq_vf lo = from == CFQ_FROM_INPUTS ? cfq_vf_load(cp->nudged_min + j) : one;
        const cfq_vf hi = from == CFQ_FROM_INPUTS ? cfq_vf_load(cp->nudged_max + j) : one;
        cfq_vf seen = cfq_vf_set(0.0f);
        cfq_vb passing = cfq_vb_not(keep); /* some row's pass-through lanes */
        cfq_vpartials p;
        unsigned busy, walk;
        int fused;
        if (from == CFQ_FROM_CODES) { /* lanes with code CFQ_REGION_PASS; bytes that are no region code */
            passing = cfq_vb_none();
            for (r = 0; r < rows; r++) {
                const cfq_vi code = cfq_vi_load_codes(codes + (size_t)r * stride + j);
                const cfq_vb pass = cfq_vi_eq(code, CFQ_REGION_PASS);
                bad = cfq_vb_or(bad, cfq_vb_andnot(cfq_vi_gt(code, CFQ_REGION_NONE), pass));
                passing = cfq_vb_or(passing, pass);
            }
        }
        /* A vector with pass-through lanes in some row (a channel with min
         * == max == 0) runs its rows with every test, so the loop below has
         * no pass-through branch (with it, the 16-bit loops were not
         * unrolled: ns per element at 1M, AVX-512, from inputs float16
         * 0.225 -> 0.155, bfloat16 0.231 -> 0.174, float32 0.185 -> 0.179). */
        if (one_pass || cfq_vb_any(passing)) {
            cfq_per_channel_steps(from, dt, rows, stream, g, x, codes, stride, j, lo, hi, keep, one, dx, acc);
            continue;
        }
        fused = *all_busy;
        if (fused) { /* the last vector's rows were all busy: one pass, with the terms */
            p = cfq_vpartials_load(acc, j);
            busy = cfq_per_channel_finite_rows(from, dt, rows, stream, 1, g, x, codes, stride, j, lo, hi, one,
                                               dx, &seen, &p);
        } else {
            busy = cfq_per_channel_finite_rows(from, dt, rows, stream, 0, g, x, codes, stride, j, lo, hi, one,
                                               dx, &seen, &p);
        }
        *all_busy = busy == (1u << rows) - 1;
        if (cfq_vb_any(cfq_vf_nonfinite(seen))) { /* an Inf or NaN g: again, with every test (p dropped) */
            cfq_per_channel_steps(from, dt, rows, stream, g, x, codes, stride, j, lo, hi, keep, one, dx, acc);
            continue;
        }
        if (fused) {
            cfq_vpartials_store(acc, j, &p);
        } else if (busy != 0) {
            p = cfq_vpartials_load(acc, j);
            for (walk = busy; walk != 0; walk &= walk - 1) { /* the busy steps, in row order */
                const size_t at = (size_t)cfq_lowest_bit8[walk] * stride + j;
                const cfq_vstep s = cfq_vstep_load(from, dt, g, x, codes, at, lo, hi);
                cfq_vpartials_add_where(&p, cfq_vstep_below(from, &s), cfq_vstep_above(from, &s), s.g);
            }
            cfq_vpartials_store(acc, j, &p);
        }
    }
    return cfq_vb_any(bad);
}

/* Groups of 2, 4 or 8 rows end at every stretch's end. */
typedef char cfq_groups_end_stretches[CFQ_ROW_STRETCH % 8 == 0 ? 1 : -1];

/* Whether channels [0, m) all have a range (none passes g through). */
CFQ_INLINE int cfq_channels_kept(const cfq_channel_params *cp, size_t m)
{
    uint32_t all = 0xffffffffu;
    size_t j;
    for (j = 0; j < m; j++)
        all &= cp->keep[j];
    return all != 0;
}

/* Rows [0, R) of the per-channel gradient from inputs for `blocks` channel
 * blocks (see cfq_per_channel_forward_blocks), the open stretch's partials
 * p held by the caller across groups (in registers where they fit; for 3
 * or 4 blocks on AVX-512 the compiler keeps them on the stack): the steps
 * store dx as if every g were finite, then the
 * rows with a busy step add their terms (g and x again, from L1) to every
 * block's partials, a flag clear adding nothing.  A group with an Inf or
 * NaN g runs again with every test (cfq_per_channel_steps).  A channel's
 * terms go in row order, as in cfq_per_channel_grad_rows. */
CFQ_INLINE void cfq_per_channel_grad_group(int dt, int blocks, int rows, int stream, const void *g,
                                           const void *x, size_t stride, const cfq_vf *lo, const cfq_vf *hi,
                                           cfq_vf one, void *dx, cfq_channel_sums *acc, cfq_vpartials *p)
{
    cfq_vf seen = cfq_vf_set(0.0f);
    /* lanes inside in every block of the row: one test a row (a busy bit
     * per step had cost six scalar instructions a step; 64K, 64 channels,
     * AVX-512: 0.89-0.95 of the time with the flags; 16M float16 0.92-0.97) */
    cfq_vb row_inside[8];
    int r, b;
    for (r = 0; r < rows; r++) {
        row_inside[r] = cfq_vb_not(cfq_vb_none());
        for (b = 0; b < blocks; b++) {
            const size_t at = (size_t)r * stride + (size_t)b * CFQ_W;
            const cfq_vstep s = cfq_vstep_load(CFQ_FROM_INPUTS, dt, g, x, NULL, at, lo[b], hi[b]);
            const cfq_vb inside = cfq_vstep_inside(CFQ_FROM_INPUTS, &s);
            (void)cfq_vput_dx(dt, dx, at, g, s.g, inside, one, stream, 1);
            row_inside[r] = cfq_vb_and(row_inside[r], inside);
            seen = cfq_vf_exp_max(seen, s.g);
        }
    }
    if (cfq_vb_any(cfq_vf_nonfinite(seen))) { /* an Inf or NaN g: again, with every test */
        const cfq_vb keep = cfq_vb_not(cfq_vb_none());
        for (b = 0; b < blocks; b++) {
            cfq_vpartials_store(acc, (size_t)b * CFQ_W, &p[b]);
            cfq_per_channel_steps(CFQ_FROM_INPUTS, dt, rows, stream, g, x, NULL, stride, (size_t)b * CFQ_W,
                                  lo[b], hi[b], keep, one, dx, acc);
            p[b] = cfq_vpartials_load(acc, (size_t)b * CFQ_W);
        }
        return;
    }
    for (r = 0; r < rows; r++) {
        if (cfq_vb_all(row_inside[r]))
            continue;
        for (b = 0; b < blocks; b++) {
            const size_t at = (size_t)r * stride + (size_t)b * CFQ_W;
            const cfq_vstep s = cfq_vstep_load(CFQ_FROM_INPUTS, dt, g, x, NULL, at, lo[b], hi[b]);
            cfq_vpartials_add_where(&p[b], cfq_vstep_below(CFQ_FROM_INPUTS, &s),
                                    cfq_vstep_above(CFQ_FROM_INPUTS, &s), s.g);
        }
    }
}

/* All rows of the per-channel gradient from inputs, `blocks` channel
 * blocks (a literal) and none with a pass-through channel, not in place:
 * lo and hi loaded once, the partials once and after each stretch's
 * flush, the rows in order.  At 64K, typical
 * data, new/old time against cfq_per_channel_grad_rows(): AVX-512 float32
 * 0.71-0.89 for 16-64 channels, float16 0.83-0.91, bfloat16 0.89-0.92;
 * AVX2 float32 0.76-0.82 for 8 and 16 channels; half the inputs outside
 * 0.89-1.0.  Walking the busy steps instead of the busy rows took
 * 1.1-1.25x this time on typical data and 1.4-1.5x with half outside;
 * adding every row's terms without the test, 1.4-1.6x on typical data. */
CFQ_INLINE void cfq_per_channel_grad_blocks_at(int dt, int blocks, int stream, const void *g, const void *x,
                                               size_t rows, size_t stride, const cfq_channel_params *cp,
                                               void *dx, cfq_channel_sums *acc)
{
    /* R * blocks <= 8 steps: a group's g and x are still in L1 for its terms */
    const int R = blocks == 1 ? 8 : blocks == 2 ? 4 : 2;
    const cfq_vf one = cfq_vf_set(cp->one);
    cfq_vf lo[CFQ_REGISTER_BLOCKS], hi[CFQ_REGISTER_BLOCKS];
    cfq_vpartials p[CFQ_REGISTER_BLOCKS];
    size_t r = 0;
    int b;
    for (b = 0; b < blocks; b++) {
        lo[b] = cfq_vf_load(cp->nudged_min + (size_t)b * CFQ_W);
        hi[b] = cfq_vf_load(cp->nudged_max + (size_t)b * CFQ_W);
        p[b] = cfq_vpartials_load(acc, (size_t)b * CFQ_W);
    }
    for (; r < rows; r += R) { /* R divides CFQ_ROW_STRETCH (cfq_groups_end_stretches): stretches end after a group */
        if (r + R > rows) { /* the last rows, which end no stretch */
            for (; r < rows; r++)
                cfq_per_channel_grad_group(dt, blocks, 1, stream, cfq_in(dt, g, r * stride),
                                           cfq_in(dt, x, r * stride), stride, lo, hi, one,
                                           cfq_out(dt, dx, r * stride), acc, p);
            break;
        }
        cfq_per_channel_grad_group(dt, blocks, R, stream, cfq_in(dt, g, r * stride), cfq_in(dt, x, r * stride),
                                   stride, lo, hi, one, cfq_out(dt, dx, r * stride), acc, p);
        if (cfq_stretch_end(r + R - 1)) {
            for (b = 0; b < blocks; b++)
                cfq_vpartials_store(acc, (size_t)b * CFQ_W, &p[b]);
            cfq_vchannel_sums_flush(acc, (size_t)blocks * CFQ_W);
            for (b = 0; b < blocks; b++)
                p[b] = cfq_vpartials_load(acc, (size_t)b * CFQ_W);
        }
    }
    for (b = 0; b < blocks; b++)
        cfq_vpartials_store(acc, (size_t)b * CFQ_W, &p[b]);
}

CFQ_INLINE void cfq_per_channel_grad_blocks(int dt, int blocks, int stream, const void *g, const void *x,
                                            size_t rows, size_t stride, const cfq_channel_params *cp,
                                            void *dx, cfq_channel_sums *acc)
{
    if (stride == (size_t)blocks * CFQ_W) /* rows back to back: the steps' offsets are literals */
        cfq_per_channel_grad_blocks_at(dt, blocks, stream, g, x, rows, (size_t)blocks * CFQ_W, cp, dx, acc);
    else
        cfq_per_channel_grad_blocks_at(dt, blocks, stream, g, x, rows, stride, cp, dx, acc);
}

/* Rows [0, rows) of the per-channel gradient's vector channels; stream and
 * one_pass are literals at each call (see cfq_grad_block). */
CFQ_INLINE int cfq_per_channel_grad_body(int from, int dt, int stream, int one_pass, const void *g,
                                         const void *x, const unsigned char *codes, size_t rows,
                                         size_t stride, size_t m, const cfq_channel_params *cp, void *dx,
                                         cfq_channel_sums *acc)
{
    const size_t vm = m - m % CFQ_W;
    size_t r = 0;
    int bad = 0, all_busy = 0;
    if (from == CFQ_FROM_INPUTS && !one_pass && vm != 0 && vm <= CFQ_REGISTER_BLOCKS * CFQ_W
        && cfq_channels_kept(cp, vm)) {
        switch (vm / CFQ_W) { /* up to CFQ_REGISTER_BLOCKS blocks: all rows at once, in order */
        case 1: cfq_per_channel_grad_blocks(dt, 1, stream, g, x, rows, stride, cp, dx, acc); r = rows; break;
        case 2: cfq_per_channel_grad_blocks(dt, 2, stream, g, x, rows, stride, cp, dx, acc); r = rows; break;
#if CFQ_REGISTER_BLOCKS > 2
        case 3: cfq_per_channel_grad_blocks(dt, 3, stream, g, x, rows, stride, cp, dx, acc); r = rows; break;
        case 4: cfq_per_channel_grad_blocks(dt, 4, stream, g, x, rows, stride, cp, dx, acc); r = rows; break;
#endif
        default: break;
        }
    }
    for (; r + 4 <= rows; r += 4) { /* 4 divides CFQ_ROW_STRETCH: stretches end after a group */
        bad |= cfq_per_channel_grad_rows(from, dt, 4, stream, one_pass, cfq_in(dt, g, r * stride),
                                         from == CFQ_FROM_INPUTS ? cfq_in(dt, x, r * stride) : NULL,
                                         from == CFQ_FROM_CODES ? codes + r * stride : NULL, stride, m, cp,
                                         cfq_out(dt, dx, r * stride), acc, &all_busy);
        if (cfq_stretch_end(r + 3))
            cfq_vchannel_sums_flush(acc, vm);
    }
    for (; r < rows; r++) {
        bad |= cfq_per_channel_grad_rows(from, dt, 1, stream, one_pass, cfq_in(dt, g, r * stride),
                                         from == CFQ_FROM_INPUTS ? cfq_in(dt, x, r * stride) : NULL,
                                         from == CFQ_FROM_CODES ? codes + r * stride : NULL, stride, m, cp,
                                         cfq_out(dt, dx, r * stride), acc, &all_busy);
        if (cfq_stretch_end(r))
            cfq_vchannel_sums_flush(acc, vm);
    }
    if (stream)
        cfq_vfence();
    return bad;
}

CFQ_INLINE int cfq_per_channel_grad_of(int from, int dt, const void *g, const void *x,
                                       const unsigned char *codes, size_t rows, size_t stride,
                                       size_t m, const cfq_channel_params *cp, void *dx,
                                       cfq_channel_sums *acc)
{
    const size_t tail = m - m % CFQ_W;
    size_t r;
    /* in place, dx over g or x (streamed stores then save no read) */
    const size_t extent = rows == 0 ? 0 : (rows - 1) * stride + m;
    const int in_place = cfq_overlap(dt, dx, g, extent) || (from == CFQ_FROM_INPUTS && cfq_overlap(dt, dx, x, extent));
    int bad;
    if (in_place)
        bad = cfq_per_channel_grad_body(from, dt, 0, 1, g, x, codes, rows, stride, m, cp, dx, acc);
    else if (cp->stream)
        bad = cfq_per_channel_grad_body(from, dt, 1, 0, g, x, codes, rows, stride, m, cp, dx, acc);
    else
        bad = cfq_per_channel_grad_body(from, dt, 0, 0, g, x, codes, rows, stride, m, cp, dx, acc);
    for (r = 0; r < rows && tail < m; r++) {
        if (from == CFQ_FROM_INPUTS)
            cfq_per_channel_grad_row(dt, cfq_in(dt, g, r * stride), cfq_in(dt, x, r * stride), tail, m, cp,
                                     cfq_out(dt, dx, r * stride), acc);
        else
            bad |= cfq_per_channel_region_grad_row(dt, cfq_in(dt, g, r * stride), codes + r * stride, tail, m,
                                                   cp, cfq_out(dt, dx, r * stride), acc);
        if (cfq_stretch_end(r))
            cfq_channel_sums_flush(acc, tail, m);
    }
    return bad;
}

/* ---- Per-channel parameters ------------------------------------------------ */

/* cfq_offset_exact() on CFQ_W channels, the same operations. */
CFQ_INLINE cfq_vb cfq_voffset_exact(cfq_vf quant_zero, cfq_vf scale, cfq_vf inv_scale, cfq_vf lo,
                                    cfq_vf hi)
{
    const cfq_vf zero = cfq_vf_set(0.0f), two = cfq_vf_set(2.0f), t_max = cfq_vf_set(2097152.0f);
    const cfq_vf width = cfq_vf_sub(hi, lo);
    const cfq_vb whole = cfq_vb_or(cfq_vb_and(cfq_vf_ge(quant_zero, zero), cfq_vf_le(quant_zero, zero)),
                                   cfq_vb_and(cfq_vf_ge(quant_zero, two), cfq_vf_le(quant_zero, t_max)));
    const cfq_vb positive = cfq_vb_and(cfq_vf_gt(scale, zero), cfq_vf_gt(inv_scale, zero));
    const cfq_vb bounded = cfq_vb_and(cfq_vf_le(cfq_vf_mul(width, inv_scale), t_max),
                                      cfq_vf_le(cfq_vf_div(width, scale), t_max));
    return cfq_vb_and(whole, cfq_vb_and(positive, bounded));
}

/* TF's nudge (cfq_params_make) of CFQ_W channels at a time: the same float
 * operations in the same order, so the same bits.  The zero point's roundf
 * (half away from zero) is needed only where it lies in [qmin, qmax], so is
 * >= 0: floor, plus 1 where the remainder, exact there, is >= 0.5.
 * (The per-channel nudge one channel at a time took 10 ns a channel: 0.64
 * of a 64-channel call's 0.70 us, now 0.11.) */
static void cfq_channel_nudge(const float *min, const float *max, size_t m, int num_bits,
                               int narrow_range, cfq_channel_params *cp)
{
    const float qmin_f = narrow_range ? 1.0f : 0.0f, qmax_f = (float)((1 << num_bits) - 1);
    const cfq_vf qmin = cfq_vf_set(qmin_f), qmax = cfq_vf_set(qmax_f);
    const cfq_vf steps = cfq_vf_set(qmax_f - qmin_f), half = cfq_vf_set(0.5f);
    const cfq_vf one = cfq_vf_set(1.0f), zero = cfq_vf_set(0.0f);
    size_t j = 0, k;
    unsigned exact_bits;
    int exact = 1;
    for (; j + CFQ_W <= m; j += CFQ_W) {
        const cfq_vf lo = cfq_vf_load(min + j), hi = cfq_vf_load(max + j);
        const cfq_vf scale = cfq_vf_div(cfq_vf_sub(hi, lo), steps);
        const cfq_vf inv_scale = cfq_vf_div(steps, cfq_vf_sub(hi, lo));
        const cfq_vf from_min = cfq_vf_sub(qmin, cfq_vf_div(lo, scale));
        const cfq_vf whole = cfq_vf_floor(from_min);
        const cfq_vf rounded = cfq_vf_add(whole, cfq_vf_and(cfq_vf_ge(cfq_vf_sub(from_min, whole), half), one));
        const cfq_vf zero_point = cfq_vf_blend(
            cfq_vf_lt(from_min, qmin), qmin,
            cfq_vf_blend(cfq_vf_gt(from_min, qmax), qmax,
                         cfq_vf_blend(cfq_vf_ge(from_min, from_min), rounded, zero)));
        const cfq_vf nudged_min = cfq_vf_mul(cfq_vf_sub(qmin, zero_point), scale);
        const cfq_vf nudged_max = cfq_vf_mul(cfq_vf_sub(qmax, zero_point), scale);
        const cfq_vf quant_zero = cfq_vf_floor(cfq_vf_add(cfq_vf_mul(cfq_vf_neg(nudged_min), inv_scale), half));
        cfq_vf_store(cp->nudged_min + j, nudged_min);
        cfq_vf_store(cp->nudged_max + j, nudged_max);
        cfq_vf_store(cp->scale + j, scale);
        cfq_vf_store(cp->inv_scale + j, inv_scale);
        cfq_vf_store(cp->quant_zero + j, quant_zero);
        cfq_vf_store(cp->offset + j, cfq_vf_sub(half, quant_zero));
        exact_bits = cfq_vb_bits(cfq_voffset_exact(quant_zero, scale, inv_scale, nudged_min, nudged_max));
        for (k = j; k < j + CFQ_W; k++) {
            const int pass = min[k] == 0.0f && max[k] == 0.0f;
            cp->keep[k] = pass ? 0u : 0xffffffffu;
            exact &= pass || (exact_bits >> (k - j) & 1u); /* a pass-through channel writes +0 */
        }
    }
    exact &= cfq_channel_params_range(min, max, j, m, num_bits, narrow_range, cp);
    cp->offset_exact = exact;
}

/* ---- The kernels: one switch on the dtype each -------------------------- */

static void cfq_vars_grad(const void *g, const void *x, size_t n, const cfq_params *p, void *dx,
                          double sums[2])
{
    switch (p->dtype) {
    case CFQ_FLOAT32: (void)cfq_grad_chunk(CFQ_FROM_INPUTS, CFQ_FLOAT32, g, x, NULL, n, p, dx, sums); break;
    case CFQ_FLOAT16: (void)cfq_grad_chunk(CFQ_FROM_INPUTS, CFQ_FLOAT16, g, x, NULL, n, p, dx, sums); break;
#ifdef CFQ_VF_BF16_NATIVE
    case CFQ_BFLOAT16_NATIVE:
        (void)cfq_grad_chunk(CFQ_FROM_INPUTS, CFQ_BFLOAT16_NATIVE, g, x, NULL, n, p, dx, sums);
        break;
#endif
    default: (void)cfq_grad_chunk(CFQ_FROM_INPUTS, CFQ_BFLOAT16, g, x, NULL, n, p, dx, sums); break;
    }
}

static int cfq_region_grad(const void *g, const unsigned char *region, size_t n,
                           const cfq_params *p, void *dx, double sums[2])
{
    switch (p->dtype) {
    case CFQ_FLOAT32: return cfq_grad_chunk(CFQ_FROM_CODES, CFQ_FLOAT32, g, NULL, region, n, p, dx, sums);
    case CFQ_FLOAT16: return cfq_grad_chunk(CFQ_FROM_CODES, CFQ_FLOAT16, g, NULL, region, n, p, dx, sums);
#ifdef CFQ_VF_BF16_NATIVE
    case CFQ_BFLOAT16_NATIVE:
        return cfq_grad_chunk(CFQ_FROM_CODES, CFQ_BFLOAT16_NATIVE, g, NULL, region, n, p, dx, sums);
#endif
    default: return cfq_grad_chunk(CFQ_FROM_CODES, CFQ_BFLOAT16, g, NULL, region, n, p, dx, sums);
    }
}

/* divide: the vars op; else the args op. */
CFQ_INLINE void cfq_forward(int divide, const void *x, size_t n, const cfq_params *p, void *out,
                            unsigned char *region)
{
    switch (p->dtype) {
    case CFQ_FLOAT32: cfq_forward_of(CFQ_FLOAT32, divide, x, n, p, out, region); break;
    case CFQ_FLOAT16: cfq_forward_of(CFQ_FLOAT16, divide, x, n, p, out, region); break;
#ifdef CFQ_VF_BF16_NATIVE
    case CFQ_BFLOAT16_NATIVE: cfq_forward_of(CFQ_BFLOAT16_NATIVE, divide, x, n, p, out, region); break;
#endif
    default: cfq_forward_of(CFQ_BFLOAT16, divide, x, n, p, out, region); break;
    }
}

static void cfq_vars_forward(const void *x, size_t n, const cfq_params *p, void *out,
                             unsigned char *region)
{
    cfq_forward(1, x, n, p, out, region);
}

static void cfq_args_forward(const void *x, size_t n, const cfq_params *p, void *out,
                             unsigned char *region)
{
    cfq_forward(0, x, n, p, out, region);
}

static void cfq_args_grad(const void *g, const void *x, size_t n, const cfq_params *p, void *dx)
{
    switch (p->dtype) {
    case CFQ_FLOAT32: cfq_args_grad_of(CFQ_FLOAT32, g, x, n, p, dx); break;
    case CFQ_FLOAT16: cfq_args_grad_of(CFQ_FLOAT16, g, x, n, p, dx); break;
#ifdef CFQ_VF_BF16_NATIVE
    case CFQ_BFLOAT16_NATIVE: cfq_args_grad_of(CFQ_BFLOAT16_NATIVE, g, x, n, p, dx); break;
#endif
    default: cfq_args_grad_of(CFQ_BFLOAT16, g, x, n, p, dx); break;
    }
}

static void cfq_per_channel_forward(const void *x, size_t rows, size_t stride, size_t m,
                                    const cfq_channel_params *cp, void *out,
                                    unsigned char *region)
{
    switch (cp->dtype) {
    case CFQ_FLOAT32: cfq_per_channel_forward_of(CFQ_FLOAT32, x, rows, stride, m, cp, out, region); break;
    case CFQ_FLOAT16: cfq_per_channel_forward_of(CFQ_FLOAT16, x, rows, stride, m, cp, out, region); break;
#ifdef CFQ_VF_BF16_NATIVE
    case CFQ_BFLOAT16_NATIVE:
        cfq_per_channel_forward_of(CFQ_BFLOAT16_NATIVE, x, rows, stride, m, cp, out, region);
        break;
#endif
    default: cfq_per_channel_forward_of(CFQ_BFLOAT16, x, rows, stride, m, cp, out, region); break;
    }
}

/* x for the gradient from inputs, codes for the one from region codes. */
CFQ_INLINE int cfq_per_channel_grad_any(int from, const void *g, const void *x,
                                        const unsigned char *codes, size_t rows, size_t stride,
                                        size_t m, const cfq_channel_params *cp, void *dx,
                                        cfq_channel_sums *acc)
{
    switch (cp->dtype) {
    case CFQ_FLOAT32: return cfq_per_channel_grad_of(from, CFQ_FLOAT32, g, x, codes, rows, stride, m, cp, dx, acc);
    case CFQ_FLOAT16: return cfq_per_channel_grad_of(from, CFQ_FLOAT16, g, x, codes, rows, stride, m, cp, dx, acc);
#ifdef CFQ_VF_BF16_NATIVE
    case CFQ_BFLOAT16_NATIVE:
        return cfq_per_channel_grad_of(from, CFQ_BFLOAT16_NATIVE, g, x, codes, rows, stride, m, cp, dx, acc);
#endif
    default: return cfq_per_channel_grad_of(from, CFQ_BFLOAT16, g, x, codes, rows, stride, m, cp, dx, acc);
    }
}

static void cfq_per_channel_grad(const void *g, const void *x, size_t rows, size_t stride,
                                 size_t m, const cfq_channel_params *cp, void *dx,
                                 cfq_channel_sums *acc)
{
    (void)cfq_per_channel_grad_any(CFQ_FROM_INPUTS, g, x, NULL, rows, stride, m, cp, dx, acc);
}

static int cfq_per_channel_region_grad(const void *g, const unsigned char *region, size_t rows,
                                       size_t stride, size_t m, const cfq_channel_params *cp,
                                       void *dx, cfq_channel_sums *acc)
{
    return cfq_per_channel_grad_any(CFQ_FROM_CODES, g, NULL, region, rows, stride, m, cp, dx, acc);
}

#ifdef CFQ_VF_BF16_NATIVE
#define CFQ_HAS_BF16_NATIVE 1
#else
#define CFQ_HAS_BF16_NATIVE 0
#endif
#ifdef CFQ_VH_KEYS
#define CFQ_HAS_VH_KEYS 1
#else
#define CFQ_HAS_VH_KEYS 0
#endif

/* The table of an ISA file that includes this one. */
#define CFQ_SIMD_KERNELS(isa_name)                                  \
    {                                                               \
        .name = isa_name,                                           \
        .vars_grad = cfq_vars_grad,                                 \
        .region_grad = cfq_region_grad,                             \
        .vars_forward = cfq_vars_forward,                           \
        .args_forward = cfq_args_forward,                           \
        .args_grad = cfq_args_grad,                                 \
        .per_channel_forward = cfq_per_channel_forward,             \
        .per_channel_grad = cfq_per_channel_grad,                   \
        .per_channel_region_grad = cfq_per_channel_region_grad,     \
        .channel_nudge = cfq_channel_nudge,                         \
        .bf16_native = CFQ_HAS_BF16_NATIVE,                         \
        .keys = CFQ_HAS_VH_KEYS,                                    \
    }

#endif /* CFQ_SIMD_KERNELS_H */
