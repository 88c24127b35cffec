/*
 * cfq_core.c -- the public entry points: argument checks, TF's nudge, the
 * error strings and the helpers every op shares.  Built at the baseline
 * ISA; the per-element work happens in the table cfq_resolve() returns.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cfq_reference.h"

const char *cfq_version(void)
{
    return CFQ_VERSION_STRING;
}

const char *cfq_strerror(int code)
{
    switch (code) {
    case CFQ_OK: return "success";
    case CFQ_ENULL: return "a required pointer is NULL";
    case CFQ_ENUMBITS: return "num_bits must be between 2 and 16, inclusive";
    case CFQ_ENONFINITE: return "min and max must be finite";
    case CFQ_EMINMAX: return "min must be smaller than max";
    case CFQ_EISA_UNKNOWN: return "unknown instruction-set path";
    case CFQ_EISA_UNAVAILABLE: return "instruction-set path not available on this CPU or build";
    case CFQ_ETHREADS: return "thread count out of range";
    case CFQ_ENOMEM: return "out of memory";
    case CFQ_ESHAPE: return "array sizes are too large";
    case CFQ_EREGION: return "region holds a byte that is not a region code (0, 1, 2, 3, 4 or 8)";
    case CFQ_EDTYPE: return "dtype must be CFQ_FLOAT32, CFQ_FLOAT16 or CFQ_BFLOAT16";
    default: return "unknown cfq error code";
    }
}

/* TF's Nudge(), in float32 under the caller's flushed FP environment.  The
 * zero point is TF's uint16: clamped to [qmin, qmax], else rounded half away
 * from zero; a NaN one (only from 0/0) converts to 0 on x86-64 and AArch64. */
void cfq_params_make(float min, float max, int num_bits, int narrow_range, cfq_params *p)
{
    const int qmin = narrow_range ? 1 : 0, qmax = (1 << num_bits) - 1;
    const float qmin_f = (float)qmin, qmax_f = (float)qmax;
    const float scale = (max - min) / (qmax_f - qmin_f);
    const float inv_scale = (qmax_f - qmin_f) / (max - min);
    const float zero_point_from_min = qmin_f - min / scale;
    float zero_point;

    if (zero_point_from_min < qmin_f)
        zero_point = qmin_f;
    else if (zero_point_from_min > qmax_f)
        zero_point = qmax_f;
    else if (zero_point_from_min != zero_point_from_min)
        zero_point = 0.0f;
    else
        zero_point = roundf(zero_point_from_min);

    p->scale = scale;
    p->inv_scale = inv_scale;
    p->nudged_min = (qmin_f - zero_point) * scale;
    p->nudged_max = (qmax_f - zero_point) * scale;
    {
        /* The negation as its own operation: compilers for AArch64 fold
         * -a * b into FNMUL, -(a * b), whose NaN from 0 * Inf has the other
         * sign (min == max); the SIMD nudge (cfq_channel_nudge) negates
         * first, as x86 code does. */
        volatile float negated = -p->nudged_min;
        p->quant_zero = floorf(negated * inv_scale + 0.5f);
    }
    p->offset = 0.5f - p->quant_zero;
    p->offset_exact = cfq_offset_exact(p->quant_zero, scale, inv_scale, p->nudged_min, p->nudged_max);
    p->passthrough = (min == 0.0f && max == 0.0f);
    p->one = 1.0f;
    p->zero = 0.0f;
    p->stream = 0;
    p->dtype = CFQ_FLOAT32;
    p->keyed = 0;
    p->key_lo = p->key_hi = 0;
}

/* A 16-bit pattern's key: the pattern itself with the sign bit clear, -1
 * minus its magnitude with it set.  Keys, as signed integers, are in the
 * order of the values: -0 just below +0, the NaNs beyond the infinities. */
static int cfq_key_of(uint16_t b)
{
    return (b & 0x8000u) ? -1 - (int)(b & 0x7fffu) : (int)b;
}

/* up(k) of the key search: x >= bound for below, else !(x <= bound); x
 * the key's value as the kernels' float compares see it. */
static int cfq_key_up(int dt, int k, float bound, int below)
{
    const uint16_t b = (uint16_t)(k < 0 ? 0x8000u | (unsigned)(-1 - k) : (unsigned)k);
    const float x = dt == CFQ_FLOAT16 ? cfq_f16_to_f32(b) : cfq_bf16_to_f32(b);
    return below ? x >= bound : !(x <= bound);
}

/* The first key in [first, last] (the non-NaN values) where up holds, last
 * + 1 if none; up is false then true along those keys.  A gallop from the
 * key of the bound rounded to the type, then a bisection: 2 or 3 tests
 * mostly, 16 where bfloat16's subnormals all compare as 0, about 31 for a
 * NaN bound. */
static int cfq_key_search(int dt, float bound, int below, int first, int last)
{
    int guess = cfq_key_of(dt == CFQ_FLOAT16 ? cfq_f32_to_f16(bound) : cfq_f32_to_bf16(bound));
    int lo, hi, step = 1; /* up(lo) false, up(hi) true, for lo and hi in range */
    guess = guess < first ? first : guess > last ? last : guess;
    if (cfq_key_up(dt, guess, bound, below)) {
        for (hi = guess; hi - step >= first && cfq_key_up(dt, hi - step, bound, below); step *= 2)
            hi -= step;
        lo = hi - step < first ? first - 1 : hi - step;
    } else {
        for (lo = guess; lo + step <= last && !cfq_key_up(dt, lo + step, bound, below); step *= 2)
            lo += step;
        hi = lo + step > last ? last + 1 : lo + step;
    }
    while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        if (cfq_key_up(dt, mid, bound, below))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* The keys of [nudged_min, nudged_max] found by testing values with the
 * kernels' own compares, so every effect of the FP environment on them
 * (bfloat16 subnormals compare as 0 under DAZ) is in the keys. */
void cfq_params_keys(cfq_params *p, const cfq_kernels *k, size_t n)
{
    const int inf = p->dtype == CFQ_FLOAT16 ? 0x7c00 : 0x7f80; /* the key of +Inf */
    p->keyed = p->dtype != CFQ_FLOAT32 && k->keys && n >= CFQ_BLOCK;
    if (!p->keyed)
        return;
    p->key_lo = cfq_key_search(p->dtype, p->nudged_min, 1, -1 - inf, inf);
    p->key_hi = cfq_key_search(p->dtype, p->nudged_max, 0, -1 - inf, inf) - 1;
}

/* Checks shared by every op taking (min, max, num_bits, narrow_range); fills
 * *p.  Must run inside cfq_fpenv_enter(). */
int cfq_params_check_make(float min, float max, int num_bits, int narrow_range,
                                 cfq_params *p)
{
    if (num_bits < 2 || num_bits > 16)
        return CFQ_ENUMBITS;
    if (!isfinite(min) || !isfinite(max))
        return CFQ_ENONFINITE;
    cfq_params_make(min, max, num_bits, narrow_range, p);
    return CFQ_OK;
}

int cfq_nudge(float min, float max, int num_bits, int narrow_range,
              float *nudged_min, float *nudged_max, float *scale)
{
    cfq_fpenv env;
    cfq_params p;
    int rc;
    if (nudged_min == NULL || nudged_max == NULL || scale == NULL)
        return CFQ_ENULL;
    cfq_fpenv_enter(&env);
    rc = cfq_params_check_make(min, max, num_bits, narrow_range, &p);
    cfq_fpenv_leave(&env);
    if (rc == CFQ_OK) {
        *nudged_min = p.nudged_min;
        *nudged_max = p.nudged_max;
        *scale = p.scale;
    }
    return rc;
}

/* The kernel table for a call, after checking the exec options. */
const cfq_kernels *cfq_exec_kernels(const cfq_exec *exec, int *rc)
{
    if (exec != NULL && (exec->threads < 1 || exec->threads > CFQ_MAX_THREADS)) {
        *rc = CFQ_ETHREADS;
        return NULL;
    }
    return cfq_resolve(exec, rc);
}

/* Non-temporal stores only pay for outputs past the last-level cache, and
 * need 16-byte alignment. */
int cfq_should_stream(size_t n, const void *out)
{
    return n >= CFQ_STREAM_MIN && ((uintptr_t)out & 15) == 0;
}

/* outer * channels * inner without overflow (and small enough to index in
 * bytes), or CFQ_ESHAPE. */
int cfq_count(size_t outer, size_t channels, size_t inner, size_t *total)
{
    const size_t limit = SIZE_MAX / sizeof(float);
    if (channels != 0 && outer > limit / channels)
        return CFQ_ESHAPE;
    if (inner != 0 && outer * channels > limit / inner)
        return CFQ_ESHAPE;
    *total = outer * channels * inner;
    return CFQ_OK;
}


const cfq_capi *cfq_capi_table(void)
{
    static const cfq_capi table = {
        CFQ_CAPI_VERSION,
        (unsigned)sizeof(cfq_capi),
        cfq_version,
        cfq_strerror,
        cfq_active_isa,
        cfq_isa_available,
        cfq_isa_name,
        cfq_nudge,
        cfq_fq_vars_grad,
        cfq_fq_vars,
        cfq_fq_args,
        cfq_fq_args_grad,
        cfq_fq_per_channel,
        cfq_fq_per_channel_grad,
        cfq_fq_vars_and_region,
        cfq_fq_region_grad,
        cfq_fq_per_channel_and_region,
        cfq_fq_per_channel_region_grad,
        cfq_fq_vars_grad_typed,
        cfq_fq_vars_typed,
        cfq_fq_args_typed,
        cfq_fq_args_grad_typed,
        cfq_fq_per_channel_typed,
        cfq_fq_per_channel_grad_typed,
        cfq_fq_vars_and_region_typed,
        cfq_fq_region_grad_typed,
        cfq_fq_per_channel_and_region_typed,
        cfq_fq_per_channel_region_grad_typed,
        cfq_fq_args_and_region,
        cfq_fq_args_and_region_typed,
    };
    return &table;
}
