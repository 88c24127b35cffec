/*
 * cfq_neon.c -- the AArch64 Advanced SIMD vocabulary (8 floats a step, as
 * two q registers, so a block has as many steps as on AVX2) and its kernel
 * table.  AArch64 always has NEON; elsewhere the table stays empty.
 */
#include "cfq_internal.h"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>
#include <string.h>

#define CFQ_W 8
typedef struct cfq_vf {
    float32x4_t lo, hi;
} cfq_vf;
typedef struct cfq_vb {
    uint32x4_t lo, hi;
} cfq_vb;
typedef struct cfq_vi {
    uint32x4_t lo, hi;
} cfq_vi;
typedef uint16x8_t cfq_vh;

/* A pair of q registers (C99 compound literals). */
#define cfq_vf_of(lo, hi) ((cfq_vf){(lo), (hi)})
#define cfq_vb_of(lo, hi) ((cfq_vb){(lo), (hi)})
#define cfq_vi_of(lo, hi) ((cfq_vi){(lo), (hi)})

CFQ_INLINE cfq_vf cfq_vf_set(float v) { return cfq_vf_of(vdupq_n_f32(v), vdupq_n_f32(v)); }
CFQ_INLINE cfq_vf cfq_vf_load(const float *p) { return cfq_vf_of(vld1q_f32(p), vld1q_f32(p + 4)); }
CFQ_INLINE void cfq_vf_store(float *p, cfq_vf v)
{
    vst1q_f32(p, v.lo);
    vst1q_f32(p + 4, v.hi);
}
/* No non-temporal store intrinsic: a plain store. */
CFQ_INLINE void cfq_vf_stream(float *p, cfq_vf v) { cfq_vf_store(p, v); }
CFQ_INLINE void cfq_vf_stream_whole(float *p, cfq_vf v) { cfq_vf_store(p, v); }
/* Lane by lane, copying bits (a rare path: pass-through lanes). */
CFQ_INLINE void cfq_vf_store_lanes(float *p, cfq_vb f, cfq_vf v)
{
    float lanes[8];
    uint32_t flags[8];
    int k;
    cfq_vf_store(lanes, v);
    vst1q_u32(flags, f.lo);
    vst1q_u32(flags + 4, f.hi);
    for (k = 0; k < 8; k++)
        if (flags[k] != 0)
            memcpy(p + k, lanes + k, sizeof(float));
}
CFQ_INLINE void cfq_vfence(void) {}

CFQ_INLINE cfq_vf cfq_vf_load_f16(const uint16_t *p)
{
    return cfq_vf_of(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))),
                     vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p + 4))));
}
CFQ_INLINE float32x4_t cfq_bf16x4(const uint16_t *p)
{
    return vreinterpretq_f32_u32(vshlq_n_u32(vmovl_u16(vld1_u16(p)), 16));
}
CFQ_INLINE cfq_vf cfq_vf_load_bf16(const uint16_t *p) { return cfq_vf_of(cfq_bf16x4(p), cfq_bf16x4(p + 4)); }
CFQ_INLINE cfq_vh cfq_vh_load(const uint16_t *p) { return vld1q_u16(p); }
/* No non-temporal store: stream is ignored. */
CFQ_INLINE void cfq_vh_put(uint16_t *p, cfq_vh h, int stream)
{
    (void)stream;
    vst1q_u16(p, h);
}
/* Whether some lane's exponent bits are all set (+-Inf or NaN). */
CFQ_INLINE int cfq_vh_any_nonfinite(int dt, cfq_vh h)
{
    const uint16x8_t exp_mask = vdupq_n_u16(dt == CFQ_FLOAT16 ? 0x7c00u : 0x7f80u);
    return vmaxvq_u16(vceqq_u16(vandq_u16(h, exp_mask), exp_mask)) != 0;
}
/* h where keep is set (but a bfloat16 subnormal's sign), its sign elsewhere. */
CFQ_INLINE cfq_vh cfq_vh_keep(int dt, cfq_vb keep, cfq_vh h)
{
    uint16x8_t k = vcombine_u16(vmovn_u32(keep.lo), vmovn_u32(keep.hi));
    if (dt != CFQ_FLOAT16)
        k = vandq_u16(k, vtstq_u16(h, vdupq_n_u16(0x7f80u)));
    return vbslq_u16(k, h, vandq_u16(h, vdupq_n_u16(0x8000u)));
}
/* No non-temporal store: stream is ignored. */
CFQ_INLINE void cfq_vf_store_f16(uint16_t *p, cfq_vf v, int stream)
{
    (void)stream;
    vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v.lo)));
    vst1_u16(p + 4, vreinterpret_u16_f16(vcvt_f16_f32(v.hi)));
}
/* To nearest even on the bits; NaN to the quiet NaN 0x7fc0 with its sign
 * (see cfq_f32_to_bf16). */
CFQ_INLINE uint16x4_t cfq_to_bf16x4(float32x4_t v)
{
    const uint32x4_t u = vreinterpretq_u32_f32(v), top = vshrq_n_u32(u, 16);
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fffu)), vandq_u32(top, vdupq_n_u32(1u))), 16);
    const uint32x4_t quiet = vorrq_u32(vandq_u32(top, vdupq_n_u32(0x8000u)), vdupq_n_u32(0x7fc0u));
    return vmovn_u32(vbslq_u32(vceqq_f32(v, v), rounded, quiet));
}
CFQ_INLINE void cfq_vf_store_bf16(uint16_t *p, cfq_vf v, int stream)
{
    (void)stream;
    vst1_u16(p, cfq_to_bf16x4(v.lo));
    vst1_u16(p + 4, cfq_to_bf16x4(v.hi));
}

CFQ_INLINE cfq_vf cfq_vf_add(cfq_vf a, cfq_vf b) { return cfq_vf_of(vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vf cfq_vf_sub(cfq_vf a, cfq_vf b) { return cfq_vf_of(vsubq_f32(a.lo, b.lo), vsubq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vf cfq_vf_mul(cfq_vf a, cfq_vf b) { return cfq_vf_of(vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vf cfq_vf_div(cfq_vf a, cfq_vf b) { return cfq_vf_of(vdivq_f32(a.lo, b.lo), vdivq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vf cfq_vf_floor(cfq_vf v) { return cfq_vf_of(vrndmq_f32(v.lo), vrndmq_f32(v.hi)); }
/* With compares and selects: NEON's fmin/fmax return NaN for a NaN bound,
 * std::min/max do not. */
CFQ_INLINE float32x4_t cfq_clamp4(float32x4_t x, float32x4_t lo, float32x4_t hi)
{
    const float32x4_t c = vbslq_f32(vcltq_f32(hi, x), hi, x);
    return vbslq_f32(vcltq_f32(c, lo), lo, c);
}
CFQ_INLINE cfq_vf cfq_vf_clamp(cfq_vf x, cfq_vf lo, cfq_vf hi)
{
    return cfq_vf_of(cfq_clamp4(x.lo, lo.lo, hi.lo), cfq_clamp4(x.hi, lo.hi, hi.hi));
}
CFQ_INLINE float32x4_t cfq_and4(uint32x4_t f, float32x4_t v)
{
    return vreinterpretq_f32_u32(vandq_u32(f, vreinterpretq_u32_f32(v)));
}
CFQ_INLINE float32x4_t cfq_andnot4(uint32x4_t f, float32x4_t v)
{
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), f));
}
CFQ_INLINE cfq_vf cfq_vf_and(cfq_vb f, cfq_vf v) { return cfq_vf_of(cfq_and4(f.lo, v.lo), cfq_and4(f.hi, v.hi)); }
CFQ_INLINE cfq_vf cfq_vf_andnot(cfq_vb f, cfq_vf v)
{
    return cfq_vf_of(cfq_andnot4(f.lo, v.lo), cfq_andnot4(f.hi, v.hi));
}

/* On the bits: a float negation the compiler may fold into the next
 * operation (-a * b + c as c - a * b), which gives a NaN the other sign. */
CFQ_INLINE float32x4_t cfq_neg4(float32x4_t v)
{
    return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(0x80000000u)));
}
CFQ_INLINE cfq_vf cfq_vf_neg(cfq_vf v) { return cfq_vf_of(cfq_neg4(v.lo), cfq_neg4(v.hi)); }
CFQ_INLINE float32x4_t cfq_exp_max4(float32x4_t acc, float32x4_t v)
{
    const uint32x4_t e = vandq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(0x7f800000u));
    return vreinterpretq_f32_u32(vmaxq_u32(vreinterpretq_u32_f32(acc), e));
}
CFQ_INLINE cfq_vf cfq_vf_exp_max(cfq_vf acc, cfq_vf v)
{
    return cfq_vf_of(cfq_exp_max4(acc.lo, v.lo), cfq_exp_max4(acc.hi, v.hi));
}
CFQ_INLINE cfq_vf cfq_vf_blend(cfq_vb f, cfq_vf a, cfq_vf b)
{
    return cfq_vf_of(vbslq_f32(f.lo, a.lo, b.lo), vbslq_f32(f.hi, a.hi, b.hi));
}
CFQ_INLINE cfq_vb cfq_vf_lt(cfq_vf a, cfq_vf b) { return cfq_vb_of(vcltq_f32(a.lo, b.lo), vcltq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vb cfq_vf_le(cfq_vf a, cfq_vf b) { return cfq_vb_of(vcleq_f32(a.lo, b.lo), vcleq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vb cfq_vf_gt(cfq_vf a, cfq_vf b) { return cfq_vb_of(vcgtq_f32(a.lo, b.lo), vcgtq_f32(a.hi, b.hi)); }
CFQ_INLINE cfq_vb cfq_vf_ge(cfq_vf a, cfq_vf b) { return cfq_vb_of(vcgeq_f32(a.lo, b.lo), vcgeq_f32(a.hi, b.hi)); }
CFQ_INLINE uint32x4_t cfq_nonfinite4(float32x4_t v)
{
    const uint32x4_t exp_mask = vdupq_n_u32(0x7f800000u);
    return vceqq_u32(vandq_u32(vreinterpretq_u32_f32(v), exp_mask), exp_mask);
}
CFQ_INLINE cfq_vb cfq_vf_nonfinite(cfq_vf v) { return cfq_vb_of(cfq_nonfinite4(v.lo), cfq_nonfinite4(v.hi)); }

CFQ_INLINE cfq_vb cfq_vb_and(cfq_vb a, cfq_vb b) { return cfq_vb_of(vandq_u32(a.lo, b.lo), vandq_u32(a.hi, b.hi)); }
CFQ_INLINE cfq_vb cfq_vb_or(cfq_vb a, cfq_vb b) { return cfq_vb_of(vorrq_u32(a.lo, b.lo), vorrq_u32(a.hi, b.hi)); }
CFQ_INLINE cfq_vb cfq_vb_andnot(cfq_vb a, cfq_vb b) { return cfq_vb_of(vbicq_u32(a.lo, b.lo), vbicq_u32(a.hi, b.hi)); }
CFQ_INLINE cfq_vb cfq_vb_not(cfq_vb a) { return cfq_vb_of(vmvnq_u32(a.lo), vmvnq_u32(a.hi)); }
CFQ_INLINE cfq_vb cfq_vb_none(void) { return cfq_vb_of(vdupq_n_u32(0), vdupq_n_u32(0)); }
CFQ_INLINE int cfq_vb_all(cfq_vb f) { return vminvq_u32(vandq_u32(f.lo, f.hi)) == 0xffffffffu; }
CFQ_INLINE int cfq_vb_any(cfq_vb f) { return vmaxvq_u32(vorrq_u32(f.lo, f.hi)) != 0; }
CFQ_INLINE unsigned cfq_vb_bits(cfq_vb f)
{
    static const uint32_t weight[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    return vaddvq_u32(vandq_u32(f.lo, vld1q_u32(weight))) + vaddvq_u32(vandq_u32(f.hi, vld1q_u32(weight + 4)));
}
CFQ_INLINE cfq_vb cfq_vb_load(const uint32_t *words) { return cfq_vb_of(vld1q_u32(words), vld1q_u32(words + 4)); }

CFQ_INLINE cfq_vi cfq_vi_load_codes(const unsigned char *p)
{
    const uint16x8_t codes = vmovl_u8(vld1_u8(p));
    return cfq_vi_of(vmovl_u16(vget_low_u16(codes)), vmovl_u16(vget_high_u16(codes)));
}
CFQ_INLINE void cfq_vi_store_codes(unsigned char *p, cfq_vi codes)
{
    vst1_u8(p, vmovn_u16(vcombine_u16(vmovn_u32(codes.lo), vmovn_u32(codes.hi))));
}
/* Region codes from their flags: 1 below, 2 above (3 both), 4 none. */
CFQ_INLINE uint32x4_t cfq_codes4(uint32x4_t below, uint32x4_t above, uint32x4_t none)
{
    return vorrq_u32(vorrq_u32(vandq_u32(below, vdupq_n_u32(CFQ_REGION_BELOW)),
                               vandq_u32(above, vdupq_n_u32(CFQ_REGION_ABOVE))),
                     vandq_u32(none, vdupq_n_u32(CFQ_REGION_NONE)));
}
CFQ_INLINE cfq_vi cfq_vi_codes(cfq_vb below, cfq_vb above, cfq_vb none)
{
    return cfq_vi_of(cfq_codes4(below.lo, above.lo, none.lo), cfq_codes4(below.hi, above.hi, none.hi));
}
CFQ_INLINE int cfq_codes_plain64(const unsigned char *p)
{
    const uint8x16_t high = vmaxq_u8(vmaxq_u8(vld1q_u8(p), vld1q_u8(p + 16)), vmaxq_u8(vld1q_u8(p + 32), vld1q_u8(p + 48)));
    return vmaxvq_u8(high) <= CFQ_REGION_NONE;
}
/* f ? a : k. */
CFQ_INLINE cfq_vi cfq_vi_blend(cfq_vb f, cfq_vi a, int k)
{
    const uint32x4_t kk = vdupq_n_u32((uint32_t)k);
    return cfq_vi_of(vbslq_u32(f.lo, a.lo, kk), vbslq_u32(f.hi, a.hi, kk));
}
CFQ_INLINE cfq_vb cfq_vi_eq(cfq_vi v, int k)
{
    const uint32x4_t kk = vdupq_n_u32((uint32_t)k);
    return cfq_vb_of(vceqq_u32(v.lo, kk), vceqq_u32(v.hi, kk));
}
CFQ_INLINE cfq_vb cfq_vi_has(cfq_vi v, int bit)
{
    const uint32x4_t b = vdupq_n_u32((uint32_t)bit);
    return cfq_vb_of(vtstq_u32(v.lo, b), vtstq_u32(v.hi, b));
}
CFQ_INLINE cfq_vb cfq_vi_gt(cfq_vi v, int k)
{
    const uint32x4_t kk = vdupq_n_u32((uint32_t)k);
    return cfq_vb_of(vcgtq_u32(v.lo, kk), vcgtq_u32(v.hi, kk));
}

/* The sums' doubles: 2 a vector. */
#define CFQ_DW 2
typedef float64x2_t cfq_vd;
CFQ_INLINE cfq_vd cfq_vd_zero(void) { return vdupq_n_f64(0.0); }
CFQ_INLINE cfq_vd cfq_vd_load(const double *p) { return vld1q_f64(p); }
CFQ_INLINE void cfq_vd_store(double *p, cfq_vd v) { vst1q_f64(p, v); }
CFQ_INLINE cfq_vd cfq_vd_add(cfq_vd a, cfq_vd b) { return vaddq_f64(a, b); }
CFQ_INLINE cfq_vd cfq_vd_sub(cfq_vd a, cfq_vd b) { return vsubq_f64(a, b); }
CFQ_INLINE cfq_vd cfq_vd_of(cfq_vf v, int k)
{
    const float32x4_t q = k < 2 ? v.lo : v.hi;
    return k % 2 == 0 ? vcvt_f64_f32(vget_low_f32(q)) : vcvt_high_f64_f32(q);
}

#include "cfq_simd_kernels.h"

const cfq_kernels cfq_kernels_neon = CFQ_SIMD_KERNELS("neon");

#else

const cfq_kernels cfq_kernels_neon = {.name = "neon"};

#endif
