/*
 * cfq_neon.c -- AArch64 Advanced SIMD kernels (8 floats a step, as two q
 * registers).  AArch64 always has NEON; elsewhere the table stays empty.
 */
#include "cfq_internal.h"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>
#include <string.h>

/* cfq_twosum_add() on 2 lanes at once. */
static inline void cfq_twosum_add_neon(float64x2_t *s, float64x2_t *c, float64x2_t v)
{
    const float64x2_t t = vaddq_f64(*s, v);
    const float64x2_t v_part = vsubq_f64(t, *s);
    const float64x2_t err = vaddq_f64(vsubq_f64(*s, vsubq_f64(t, v_part)), vsubq_f64(v, v_part));
    *c = vaddq_f64(*c, err);
    *s = t;
}

/* A sum's lanes in registers (see cfq_lanes): acc[0..3] the sums of lanes
 * 0-7 (two each), acc[4..5] the error lanes 0-3, acc[6..9] the open block's
 * partials of lanes 0-7. */
#define CFQ_ACC_NEON 10

/* 8 float terms (two q registers) into the partials of lanes 0-7. */
static inline void cfq_lanes_add8_neon(float64x2_t acc[CFQ_ACC_NEON], float32x4_t t0, float32x4_t t1)
{
    acc[6] = vaddq_f64(acc[6], vcvt_f64_f32(vget_low_f32(t0)));
    acc[7] = vaddq_f64(acc[7], vcvt_high_f64_f32(t0));
    acc[8] = vaddq_f64(acc[8], vcvt_f64_f32(vget_low_f32(t1)));
    acc[9] = vaddq_f64(acc[9], vcvt_high_f64_f32(t1));
}

/* After the step of 8 at i: at a block's end, its partials into the sums,
 * in lane order. */
static inline void cfq_lanes_step_end_neon(size_t i, float64x2_t acc[CFQ_ACC_NEON])
{
    int k;
    if ((i & (CFQ_BLOCK - 1)) != CFQ_BLOCK - 8)
        return;
    for (k = 0; k < 4; k++) {
        cfq_twosum_add_neon(&acc[k], &acc[4 + (k & 1)], acc[6 + k]);
        acc[6 + k] = vdupq_n_f64(0.0);
    }
}

static void cfq_lanes_store_neon(cfq_lanes *a, const float64x2_t acc[CFQ_ACC_NEON])
{
    int k;
    for (k = 0; k < 4; k++) {
        vst1q_f64(a->s + 2 * k, acc[k]);
        vst1q_f64(a->p + 2 * k, acc[6 + k]);
    }
    vst1q_f64(a->c, acc[4]);
    vst1q_f64(a->c + 2, acc[5]);
}

/* 1.0f where the mask is set, +0.0f elsewhere. */
static inline float32x4_t cfq_mask_to_one(uint32x4_t mask, float32x4_t one)
{
    return vreinterpretq_f32_u32(vandq_u32(mask, vreinterpretq_u32_f32(one)));
}

static void cfq_fq_vars_grad_neon(const float *g, const float *x, size_t n,
                                  const cfq_params *p, float *dx,
                                  double sums[2])
{
    const float32x4_t lo = vdupq_n_f32(p->nudged_min);
    const float32x4_t hi = vdupq_n_f32(p->nudged_max);
    const uint32x4_t exp_mask = vdupq_n_u32(0x7f800000u);
    /* 1.0f read at run time (see cfq_params.one). */
    const float32x4_t one = vdupq_n_f32(p->one);
    float64x2_t below_acc[CFQ_ACC_NEON], above_acc[CFQ_ACC_NEON];
    cfq_lanes below, above;
    size_t i = 0;
    int k;

    for (k = 0; k < CFQ_ACC_NEON; k++) {
        below_acc[k] = vdupq_n_f64(0.0);
        above_acc[k] = vdupq_n_f64(0.0);
    }
    for (; i + 8 <= n; i += 8) {
        const float32x4_t g0 = vld1q_f32(g + i), g1 = vld1q_f32(g + i + 4);
        const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
        const uint32x4_t in0 = vandq_u32(vcgeq_f32(x0, lo), vcleq_f32(x0, hi));
        const uint32x4_t in1 = vandq_u32(vcgeq_f32(x1, lo), vcleq_f32(x1, hi));
        /* A non-finite gradient makes a NaN term even where its mask is 0. */
        const uint32x4_t nf0 = vceqq_u32(vandq_u32(vreinterpretq_u32_f32(g0), exp_mask), exp_mask);
        const uint32x4_t nf1 = vceqq_u32(vandq_u32(vreinterpretq_u32_f32(g1), exp_mask), exp_mask);
        const uint32x4_t quiet = vandq_u32(vbicq_u32(in0, nf0), vbicq_u32(in1, nf1));

        vst1q_f32(dx + i, vmulq_f32(g0, cfq_mask_to_one(in0, one)));
        vst1q_f32(dx + i + 4, vmulq_f32(g1, cfq_mask_to_one(in1, one)));
        /* Terms are +-0, a no-op on the sums, where x is inside and g finite:
         * the common step skips them. */
        if (vminvq_u32(quiet) != 0xffffffffu) {
            const uint32x4_t below0 = vcltq_f32(x0, lo), below1 = vcltq_f32(x1, lo);
            const uint32x4_t above0 = vcgtq_f32(x0, hi), above1 = vcgtq_f32(x1, hi);
            cfq_lanes_add8_neon(below_acc, vmulq_f32(g0, cfq_mask_to_one(below0, one)),
                                vmulq_f32(g1, cfq_mask_to_one(below1, one)));
            cfq_lanes_add8_neon(above_acc, vmulq_f32(g0, cfq_mask_to_one(above0, one)),
                                vmulq_f32(g1, cfq_mask_to_one(above1, one)));
        }
        cfq_lanes_step_end_neon(i, below_acc);
        cfq_lanes_step_end_neon(i, above_acc);
    }
    cfq_lanes_store_neon(&below, below_acc);
    cfq_lanes_store_neon(&above, above_acc);
    cfq_vars_grad_range(g, x, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

/* TF's clamp, std::max(std::min(x, hi), lo), with compares and selects:
 * NEON's fmin/fmax return NaN for a NaN bound, std::min/max do not. */
static inline float32x4_t cfq_clamp_neon(float32x4_t x, float32x4_t lo, float32x4_t hi)
{
    const float32x4_t c = vbslq_f32(vcltq_f32(hi, x), hi, x);
    return vbslq_f32(vcltq_f32(c, lo), lo, c);
}

static void cfq_fq_vars_neon(const float *x, size_t n, const cfq_params *p, float *out)
{
    const float32x4_t lo = vdupq_n_f32(p->nudged_min), hi = vdupq_n_f32(p->nudged_max);
    const float32x4_t scale = vdupq_n_f32(p->scale), quant_zero = vdupq_n_f32(p->quant_zero);
    const float32x4_t half = vdupq_n_f32(0.5f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t shifted = vsubq_f32(cfq_clamp_neon(vld1q_f32(x + i), lo, hi), lo);
        const float32x4_t q = vaddq_f32(vsubq_f32(vdivq_f32(shifted, scale), quant_zero), half);
        vst1q_f32(out + i, vmulq_f32(vrndmq_f32(q), scale));
    }
    cfq_vars_forward_range(x, i, n, p, out);
}

static void cfq_fq_args_neon(const float *x, size_t n, const cfq_params *p, float *out)
{
    const float32x4_t lo = vdupq_n_f32(p->nudged_min), hi = vdupq_n_f32(p->nudged_max);
    const float32x4_t scale = vdupq_n_f32(p->scale), inv_scale = vdupq_n_f32(p->inv_scale);
    const float32x4_t quant_zero = vdupq_n_f32(p->quant_zero), half = vdupq_n_f32(0.5f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t shifted = vsubq_f32(cfq_clamp_neon(vld1q_f32(x + i), lo, hi), lo);
        const float32x4_t q = vaddq_f32(vsubq_f32(vmulq_f32(shifted, inv_scale), quant_zero), half);
        vst1q_f32(out + i, vmulq_f32(vrndmq_f32(q), scale));
    }
    cfq_args_forward_range(x, i, n, p, out);
}

static void cfq_fq_mask_grad_neon(const float *g, const float *x, size_t n,
                                  const cfq_params *p, float *dx)
{
    const float32x4_t lo = vdupq_n_f32(p->nudged_min), hi = vdupq_n_f32(p->nudged_max);
    const float32x4_t one = vdupq_n_f32(p->one);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t vx = vld1q_f32(x + i);
        const uint32x4_t inside = vandq_u32(vcgeq_f32(vx, lo), vcleq_f32(vx, hi));
        vst1q_f32(dx + i, vmulq_f32(vld1q_f32(g + i), cfq_mask_to_one(inside, one)));
    }
    cfq_mask_grad_range(g, x, i, n, p, dx);
}

static void cfq_fq_pc_neon(const float *x, size_t rows, size_t stride, size_t m,
                           const cfq_pc_params *pp, float *out)
{
    const float32x4_t half = vdupq_n_f32(0.5f);
    size_t r, j;
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * stride;
        float *outr = out + r * stride;
        for (j = 0; j + 4 <= m; j += 4) {
            const float32x4_t lo = vld1q_f32(pp->nudged_min + j);
            const float32x4_t hi = vld1q_f32(pp->nudged_max + j);
            const float32x4_t shifted = vsubq_f32(cfq_clamp_neon(vld1q_f32(xr + j), lo, hi), lo);
            const float32x4_t q = vaddq_f32(vsubq_f32(vmulq_f32(shifted, vld1q_f32(pp->inv_scale + j)),
                                                      vld1q_f32(pp->quant_zero + j)), half);
            const float32x4_t v = vmulq_f32(vrndmq_f32(q), vld1q_f32(pp->scale + j));
            vst1q_f32(outr + j, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v),
                                                                vld1q_u32(pp->keep + j))));
        }
        cfq_pc_forward_row(xr, j, m, pp, outr);
    }
}

/* Adds 4 float terms to the per-channel sums of channels [j, j + 4). */
static inline void cfq_pc_add4_neon(double *s, double *c, size_t j, float32x4_t terms)
{
    float64x2_t s0 = vld1q_f64(s + j), s1 = vld1q_f64(s + j + 2);
    float64x2_t c0 = vld1q_f64(c + j), c1 = vld1q_f64(c + j + 2);
    cfq_twosum_add_neon(&s0, &c0, vcvt_f64_f32(vget_low_f32(terms)));
    cfq_twosum_add_neon(&s1, &c1, vcvt_high_f64_f32(terms));
    vst1q_f64(s + j, s0);
    vst1q_f64(s + j + 2, s1);
    vst1q_f64(c + j, c0);
    vst1q_f64(c + j + 2, c1);
}

static void cfq_fq_pc_grad_neon(const float *g, const float *x, size_t rows, size_t stride,
                                size_t m, const cfq_pc_params *pp, float *dx,
                                cfq_pc_sums *acc)
{
    const uint32x4_t exp_mask = vdupq_n_u32(0x7f800000u);
    const float32x4_t one = vdupq_n_f32(pp->one);
    size_t r, j;
    for (r = 0; r < rows; r++) {
        const float *gr = g + r * stride, *xr = x + r * stride;
        float *dxr = dx + r * stride;
        for (j = 0; j + 4 <= m; j += 4) {
            const float32x4_t lo = vld1q_f32(pp->nudged_min + j);
            const float32x4_t hi = vld1q_f32(pp->nudged_max + j);
            const uint32x4_t keep = vld1q_u32(pp->keep + j);
            const float32x4_t vg = vld1q_f32(gr + j), vx = vld1q_f32(xr + j);
            const uint32x4_t inside = vandq_u32(vcgeq_f32(vx, lo), vcleq_f32(vx, hi));
            const uint32x4_t nf = vceqq_u32(vandq_u32(vreinterpretq_u32_f32(vg), exp_mask), exp_mask);
            /* Channels with min == max == 0 copy g untouched. */
            vst1q_f32(dxr + j, vbslq_f32(keep, vmulq_f32(vg, cfq_mask_to_one(inside, one)), vg));
            if (vmaxvq_u32(vbicq_u32(keep, vbicq_u32(inside, nf))) != 0) {
                const float32x4_t tb = vmulq_f32(vg, cfq_mask_to_one(vcltq_f32(vx, lo), one));
                const float32x4_t ta = vmulq_f32(vg, cfq_mask_to_one(vcgtq_f32(vx, hi), one));
                cfq_pc_add4_neon(acc->below_s, acc->below_c, j,
                                 vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(tb), keep)));
                cfq_pc_add4_neon(acc->above_s, acc->above_c, j,
                                 vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(ta), keep)));
            }
        }
        cfq_pc_grad_row(gr, xr, j, m, pp, dxr, acc);
    }
}

/* Region codes of 4 inputs as 32-bit lanes (see cfq_region_of). */
static inline uint32x4_t cfq_region_codes_neon(float32x4_t vx, float32x4_t lo, float32x4_t hi)
{
    const uint32x4_t is_below = vcltq_f32(vx, lo), is_above = vcgtq_f32(vx, hi);
    const uint32x4_t inside = vandq_u32(vcgeq_f32(vx, lo), vcleq_f32(vx, hi));
    const uint32x4_t none = vmvnq_u32(vorrq_u32(inside, vorrq_u32(is_below, is_above)));
    return vorrq_u32(vorrq_u32(vandq_u32(is_below, vdupq_n_u32(CFQ_REGION_BELOW)),
                               vandq_u32(is_above, vdupq_n_u32(CFQ_REGION_ABOVE))),
                     vandq_u32(none, vdupq_n_u32(CFQ_REGION_NONE)));
}

static void cfq_fq_vars_region_neon(const float *x, size_t n, const cfq_params *p,
                                    float *out, unsigned char *region)
{
    const float32x4_t lo = vdupq_n_f32(p->nudged_min), hi = vdupq_n_f32(p->nudged_max);
    const float32x4_t scale = vdupq_n_f32(p->scale), quant_zero = vdupq_n_f32(p->quant_zero);
    const float32x4_t half = vdupq_n_f32(0.5f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
        const uint16x8_t codes = vcombine_u16(vmovn_u32(cfq_region_codes_neon(x0, lo, hi)),
                                              vmovn_u32(cfq_region_codes_neon(x1, lo, hi)));
        const float32x4_t q0 = vaddq_f32(vsubq_f32(vdivq_f32(vsubq_f32(cfq_clamp_neon(x0, lo, hi), lo), scale),
                                                   quant_zero), half);
        const float32x4_t q1 = vaddq_f32(vsubq_f32(vdivq_f32(vsubq_f32(cfq_clamp_neon(x1, lo, hi), lo), scale),
                                                   quant_zero), half);
        vst1_u8(region + i, vmovn_u16(codes));
        vst1q_f32(out + i, vmulq_f32(vrndmq_f32(q0), scale));
        vst1q_f32(out + i + 4, vmulq_f32(vrndmq_f32(q1), scale));
    }
    cfq_region_forward_range(x, i, n, p, out, region);
}

/* Pass-through lanes get g's bits, copied, not selected: a select between
 * g and g * mask may be compiled as g * select(mask, 1.0f), which flushes a
 * denormal g. */
static void cfq_store_pass_neon(float *dst, uint32x4_t codes, float32x4_t g)
{
    float lanes[4];
    uint32_t c[4];
    int k;
    vst1q_f32(lanes, g);
    vst1q_u32(c, codes);
    for (k = 0; k < 4; k++)
        if (c[k] == CFQ_REGION_PASS)
            memcpy(dst + k, lanes + k, sizeof(float));
}

static int cfq_fq_region_grad_neon(const float *g, const unsigned char *region, size_t n,
                                   const cfq_params *p, float *dx, double sums[2])
{
    const uint32x4_t exp_mask = vdupq_n_u32(0x7f800000u);
    const float32x4_t one = vdupq_n_f32(p->one);
    const uint32x4_t below_bit = vdupq_n_u32(CFQ_REGION_BELOW), above_bit = vdupq_n_u32(CFQ_REGION_ABOVE);
    float64x2_t below_acc[CFQ_ACC_NEON], above_acc[CFQ_ACC_NEON];
    uint32x4_t bad = vdupq_n_u32(0);
    cfq_lanes below, above;
    size_t i = 0;
    int k, bad_tail;

    for (k = 0; k < CFQ_ACC_NEON; k++) {
        below_acc[k] = vdupq_n_f64(0.0);
        above_acc[k] = vdupq_n_f64(0.0);
    }
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t codes16 = vmovl_u8(vld1_u8(region + i));
        const uint32x4_t c0 = vmovl_u16(vget_low_u16(codes16)), c1 = vmovl_u16(vget_high_u16(codes16));
        const float32x4_t g0 = vld1q_f32(g + i), g1 = vld1q_f32(g + i + 4);
        const uint32x4_t in0 = vceqq_u32(c0, vdupq_n_u32(0)), in1 = vceqq_u32(c1, vdupq_n_u32(0));
        const uint32x4_t nf0 = vceqq_u32(vandq_u32(vreinterpretq_u32_f32(g0), exp_mask), exp_mask);
        const uint32x4_t nf1 = vceqq_u32(vandq_u32(vreinterpretq_u32_f32(g1), exp_mask), exp_mask);
        const float32x4_t d0 = vmulq_f32(g0, cfq_mask_to_one(in0, one));
        const float32x4_t d1 = vmulq_f32(g1, cfq_mask_to_one(in1, one));
        int pass_any = 0;
        /* Rare step: something outside, a non-finite g, a pass-through or a
         * bad byte. */
        if (vminvq_u32(vandq_u32(vbicq_u32(in0, nf0), vbicq_u32(in1, nf1))) != 0xffffffffu) {
            const uint32x4_t pass0 = vceqq_u32(c0, vdupq_n_u32(CFQ_REGION_PASS));
            const uint32x4_t pass1 = vceqq_u32(c1, vdupq_n_u32(CFQ_REGION_PASS));
            const uint32x4_t b0 = vtstq_u32(c0, below_bit), b1 = vtstq_u32(c1, below_bit);
            const uint32x4_t a0 = vtstq_u32(c0, above_bit), a1 = vtstq_u32(c1, above_bit);
            bad = vorrq_u32(bad, vbicq_u32(vcgtq_u32(c0, vdupq_n_u32(CFQ_REGION_NONE)), pass0));
            bad = vorrq_u32(bad, vbicq_u32(vcgtq_u32(c1, vdupq_n_u32(CFQ_REGION_NONE)), pass1));
            pass_any = vmaxvq_u32(vorrq_u32(pass0, pass1)) != 0;
            cfq_lanes_add8_neon(below_acc,
                vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(g0, cfq_mask_to_one(vbicq_u32(b0, pass0), one))), pass0)),
                vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(g1, cfq_mask_to_one(vbicq_u32(b1, pass1), one))), pass1)));
            cfq_lanes_add8_neon(above_acc,
                vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(g0, cfq_mask_to_one(vbicq_u32(a0, pass0), one))), pass0)),
                vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(g1, cfq_mask_to_one(vbicq_u32(a1, pass1), one))), pass1)));
        }
        vst1q_f32(dx + i, d0);
        vst1q_f32(dx + i + 4, d1);
        if (pass_any) {
            cfq_store_pass_neon(dx + i, c0, g0);
            cfq_store_pass_neon(dx + i + 4, c1, g1);
        }
        cfq_lanes_step_end_neon(i, below_acc);
        cfq_lanes_step_end_neon(i, above_acc);
    }
    cfq_lanes_store_neon(&below, below_acc);
    cfq_lanes_store_neon(&above, above_acc);
    bad_tail = cfq_region_grad_range(g, region, i, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
    return bad_tail | (vmaxvq_u32(bad) != 0);
}

const cfq_kernels cfq_kernels_neon = {
    "neon",
    cfq_fq_vars_grad_neon,
    cfq_fq_vars_neon,
    cfq_fq_args_neon,
    cfq_fq_mask_grad_neon,
    cfq_fq_pc_neon,
    cfq_fq_pc_grad_neon,
    cfq_fq_vars_region_neon,
    cfq_fq_region_grad_neon,
};

#else /* not AArch64 */

const cfq_kernels cfq_kernels_neon = {"neon", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

#endif
