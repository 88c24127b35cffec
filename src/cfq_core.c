/*
 * cfq_core.c -- the public entry points: argument checks, TF's nudge, the
 * chunk loop and the final combination of the sums.  Built at the baseline
 * ISA; the per-element work happens in the table cfq_resolve() returns.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cfq_internal.h"

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
    case CFQ_ESHAPE: return "array sizes are inconsistent or too large";
    default: return "unknown cfq error code";
    }
}

/* TF's Nudge(), in float32 under the caller's flushed FP environment.  The
 * zero point is TF's uint16: clamped to [qmin, qmax], else rounded half away
 * from zero; a NaN one (only from 0/0) converts to 0 on x86-64 and AArch64. */
static void cfq_params_make(float min, float max, int num_bits, int narrow_range, cfq_params *p)
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
    p->quant_zero = floorf(-p->nudged_min * inv_scale + 0.5f);
    p->passthrough = (min == 0.0f && max == 0.0f);
    p->one = 1.0f;
    p->zero = 0.0f;
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

/* ---- Sums across chunks ------------------------------------------------- */

typedef struct cfq_sum {
    double s, c;
} cfq_sum;

/* The float a compensated sum rounds to.  NaN comes out as one fixed quiet
 * NaN so every path and thread count gives the same bits. */
static float cfq_sum_result(const cfq_sum *sum)
{
    if (isnan(sum->s)) {
        const uint32_t bits = 0x7fc00000u;
        float nan_value;
        memcpy(&nan_value, &bits, sizeof nan_value);
        return nan_value;
    }
    if (!isfinite(sum->s))
        return (float)sum->s;
    return (float)(sum->s + sum->c);
}

/* The kernel table for a call, after checking the exec options. */
static const cfq_kernels *cfq_exec_kernels(const cfq_exec *exec, int *rc)
{
    if (exec != NULL && (exec->threads < 1 || exec->threads > CFQ_MAX_THREADS)) {
        *rc = CFQ_ETHREADS;
        return NULL;
    }
    return cfq_resolve(exec, rc);
}

/* outer * channels * inner without overflow (and small enough to index in
 * bytes), or CFQ_ESHAPE. */
static int cfq_count(size_t outer, size_t channels, size_t inner, size_t *total)
{
    const size_t limit = SIZE_MAX / sizeof(float);
    if (channels != 0 && outer > limit / channels)
        return CFQ_ESHAPE;
    if (inner != 0 && outer * channels > limit / inner)
        return CFQ_ESHAPE;
    *total = outer * channels * inner;
    return CFQ_OK;
}

/* ---- FakeQuantWithMinMaxVarsGradient ------------------------------------ */

int cfq_vars_grad_run(const cfq_kernels *k, const float *gradients, const float *inputs,
                      size_t n, float min, float max, int num_bits, int narrow_range,
                      float *backprops_wrt_input, float *backprop_wrt_min,
                      float *backprop_wrt_max)
{
    cfq_fpenv env;
    cfq_params p;
    cfq_sum below = {0.0, 0.0}, above = {0.0, 0.0};
    size_t off;
    int rc;

    cfq_fpenv_enter(&env);
    rc = cfq_params_check_make(min, max, num_bits, narrow_range, &p);
    if (rc == CFQ_OK && p.passthrough) {
        /* TF copies the gradients unchanged: no arithmetic, no flushing. */
        if (n > 0 && backprops_wrt_input != gradients)
            memmove(backprops_wrt_input, gradients, n * sizeof(float));
        *backprop_wrt_min = 0.0f;
        *backprop_wrt_max = 0.0f;
    } else if (rc == CFQ_OK) {
        for (off = 0; off < n; off += CFQ_CHUNK) {
            const size_t m = n - off < CFQ_CHUNK ? n - off : CFQ_CHUNK;
            double sums[2];
            k->vars_grad(gradients + off, inputs + off, m, &p, backprops_wrt_input + off, sums);
            cfq_neumaier_add(&below.s, &below.c, sums[0]);
            cfq_neumaier_add(&above.s, &above.c, sums[1]);
        }
        *backprop_wrt_min = cfq_sum_result(&below);
        *backprop_wrt_max = cfq_sum_result(&above);
    }
    cfq_fpenv_leave(&env);
    return rc;
}

int cfq_fq_vars_grad(const float *gradients, const float *inputs, size_t n,
                     float min, float max, int num_bits, int narrow_range,
                     float *backprops_wrt_input, float *backprop_wrt_min,
                     float *backprop_wrt_max, const cfq_exec *exec)
{
    const cfq_kernels *k;
    int rc = CFQ_OK;

    if (backprop_wrt_min == NULL || backprop_wrt_max == NULL ||
        (n > 0 && (gradients == NULL || inputs == NULL || backprops_wrt_input == NULL)))
        return CFQ_ENULL;
    if (n > SIZE_MAX / sizeof(float))
        return CFQ_ESHAPE;
    if ((k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    return cfq_vars_grad_run(k, gradients, inputs, n, min, max, num_bits, narrow_range,
                             backprops_wrt_input, backprop_wrt_min, backprop_wrt_max);
}

/* ---- FakeQuantWithMinMaxVars and FakeQuantWithMinMaxArgs ---------------- */

int cfq_fq_vars(const float *inputs, size_t n, float min, float max, int num_bits,
                int narrow_range, float *outputs, const cfq_exec *exec)
{
    const cfq_kernels *k;
    cfq_fpenv env;
    cfq_params p;
    int rc = CFQ_OK;

    if (n > 0 && (inputs == NULL || outputs == NULL))
        return CFQ_ENULL;
    if (n > SIZE_MAX / sizeof(float))
        return CFQ_ESHAPE;
    if ((k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    cfq_fpenv_enter(&env);
    rc = cfq_params_check_make(min, max, num_bits, narrow_range, &p);
    if (rc == CFQ_OK && p.passthrough) {
        if (n > 0)
            memset(outputs, 0, n * sizeof(float)); /* TF writes +0.0 */
    } else if (rc == CFQ_OK && n > 0) {
        k->vars_forward(inputs, n, &p, outputs);
    }
    cfq_fpenv_leave(&env);
    return rc;
}

/* The args ops' extra rule, checked as TF does (after denormals read as 0). */
static int cfq_args_params(float min, float max, int num_bits, int narrow_range, cfq_params *p)
{
    int rc = cfq_params_check_make(min, max, num_bits, narrow_range, p);
    if (rc == CFQ_OK && !(min < max))
        rc = CFQ_EMINMAX;
    return rc;
}

int cfq_fq_args(const float *inputs, size_t n, float min, float max, int num_bits,
                int narrow_range, float *outputs, const cfq_exec *exec)
{
    const cfq_kernels *k;
    cfq_fpenv env;
    cfq_params p;
    int rc = CFQ_OK;

    if (n > 0 && (inputs == NULL || outputs == NULL))
        return CFQ_ENULL;
    if (n > SIZE_MAX / sizeof(float))
        return CFQ_ESHAPE;
    if ((k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    cfq_fpenv_enter(&env);
    rc = cfq_args_params(min, max, num_bits, narrow_range, &p);
    if (rc == CFQ_OK && n > 0)
        k->args_forward(inputs, n, &p, outputs);
    cfq_fpenv_leave(&env);
    return rc;
}

int cfq_fq_args_grad(const float *gradients, const float *inputs, size_t n, float min,
                     float max, int num_bits, int narrow_range, float *backprops,
                     const cfq_exec *exec)
{
    const cfq_kernels *k;
    cfq_fpenv env;
    cfq_params p;
    int rc = CFQ_OK;

    if (n > 0 && (gradients == NULL || inputs == NULL || backprops == NULL))
        return CFQ_ENULL;
    if (n > SIZE_MAX / sizeof(float))
        return CFQ_ESHAPE;
    if ((k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    cfq_fpenv_enter(&env);
    rc = cfq_args_params(min, max, num_bits, narrow_range, &p);
    if (rc == CFQ_OK && n > 0)
        k->mask_grad(gradients, inputs, n, &p, backprops);
    cfq_fpenv_leave(&env);
    return rc;
}

/* ---- Per-channel ops ----------------------------------------------------- */

/* Checks every channel's min/max before anything is written. */
static int cfq_pc_check(const float *min, const float *max, size_t channels, int num_bits)
{
    size_t c;
    if (num_bits < 2 || num_bits > 16)
        return CFQ_ENUMBITS;
    for (c = 0; c < channels; c++)
        if (!isfinite(min[c]) || !isfinite(max[c]))
            return CFQ_ENONFINITE;
    return CFQ_OK;
}

/* Parameters of channels [c0, c0 + m) for the last-axis kernels. */
void cfq_pc_block_make(const float *min, const float *max, size_t c0, size_t m,
                              int num_bits, int narrow_range, cfq_pc_params *pp)
{
    size_t j;
    for (j = 0; j < m; j++) {
        cfq_params p;
        cfq_params_make(min[c0 + j], max[c0 + j], num_bits, narrow_range, &p);
        pp->nudged_min[j] = p.nudged_min;
        pp->nudged_max[j] = p.nudged_max;
        pp->scale[j] = p.scale;
        pp->inv_scale[j] = p.inv_scale;
        pp->quant_zero[j] = p.quant_zero;
        pp->keep[j] = p.passthrough ? 0u : 0xffffffffu;
    }
    pp->one = 1.0f;
    pp->zero = 0.0f;
}

static int cfq_pc_prelude(const float *a, const float *b, const float *out, size_t *outer,
                          size_t channels, size_t *inner, const float *min, const float *max,
                          int num_bits, size_t *total)
{
    int rc = cfq_count(*outer, channels, *inner, total);
    if (rc != CFQ_OK)
        return rc;
    if ((*total > 0 && (a == NULL || b == NULL || out == NULL)) ||
        (channels > 0 && (min == NULL || max == NULL)))
        return CFQ_ENULL;
    if ((rc = cfq_pc_check(min, max, channels, num_bits)) != CFQ_OK)
        return rc;
    if (channels == 1) { /* one channel: the whole array is one run */
        *inner *= *outer;
        *outer = 1;
    }
    return CFQ_OK;
}

int cfq_fq_per_channel(const float *inputs, size_t outer, size_t channels, size_t inner,
                       const float *min, const float *max, int num_bits, int narrow_range,
                       float *outputs, const cfq_exec *exec)
{
    const cfq_kernels *k;
    cfq_fpenv env;
    size_t total, c, o;
    int rc = cfq_pc_prelude(inputs, inputs, outputs, &outer, channels, &inner, min, max,
                            num_bits, &total);
    if (rc != CFQ_OK)
        return rc;
    if ((k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    if (total == 0)
        return CFQ_OK;
    cfq_fpenv_enter(&env);
    if (inner == 1) {
        cfq_pc_params pp;
        for (c = 0; c < channels; c += CFQ_PC_BLOCK) {
            const size_t m = channels - c < CFQ_PC_BLOCK ? channels - c : CFQ_PC_BLOCK;
            cfq_pc_block_make(min, max, c, m, num_bits, narrow_range, &pp);
            k->pc_forward(inputs + c, outer, channels, m, &pp, outputs + c);
        }
    } else {
        for (c = 0; c < channels; c++) {
            cfq_params p;
            cfq_params_make(min[c], max[c], num_bits, narrow_range, &p);
            for (o = 0; o < outer; o++) {
                const size_t at = (o * channels + c) * inner;
                if (p.passthrough)
                    memset(outputs + at, 0, inner * sizeof(float));
                else
                    k->args_forward(inputs + at, inner, &p, outputs + at);
            }
        }
    }
    cfq_fpenv_leave(&env);
    return CFQ_OK;
}

int cfq_fq_per_channel_grad(const float *gradients, const float *inputs, size_t outer,
                            size_t channels, size_t inner, const float *min, const float *max,
                            int num_bits, int narrow_range, float *backprops_wrt_input,
                            float *backprop_wrt_min, float *backprop_wrt_max,
                            const cfq_exec *exec)
{
    const cfq_kernels *k;
    cfq_fpenv env;
    size_t total, c, o, j;
    int rc = cfq_pc_prelude(gradients, inputs, backprops_wrt_input, &outer, channels, &inner,
                            min, max, num_bits, &total);
    if (rc != CFQ_OK)
        return rc;
    if (channels > 0 && (backprop_wrt_min == NULL || backprop_wrt_max == NULL))
        return CFQ_ENULL;
    if ((k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    cfq_fpenv_enter(&env);
    if (inner == 1) {
        cfq_pc_params pp;
        cfq_pc_sums acc;
        for (c = 0; c < channels; c += CFQ_PC_BLOCK) {
            const size_t m = channels - c < CFQ_PC_BLOCK ? channels - c : CFQ_PC_BLOCK;
            cfq_pc_block_make(min, max, c, m, num_bits, narrow_range, &pp);
            memset(&acc, 0, sizeof acc);
            if (outer > 0)
                k->pc_grad(gradients + c, inputs + c, outer, channels, m, &pp,
                           backprops_wrt_input + c, &acc);
            for (j = 0; j < m; j++) {
                const cfq_sum below = {acc.below_s[j], acc.below_c[j]};
                const cfq_sum above = {acc.above_s[j], acc.above_c[j]};
                backprop_wrt_min[c + j] = pp.keep[j] ? cfq_sum_result(&below) : 0.0f;
                backprop_wrt_max[c + j] = pp.keep[j] ? cfq_sum_result(&above) : 0.0f;
            }
        }
    } else {
        for (c = 0; c < channels; c++) {
            cfq_params p;
            cfq_sum below = {0.0, 0.0}, above = {0.0, 0.0};
            cfq_params_make(min[c], max[c], num_bits, narrow_range, &p);
            for (o = 0; o < outer; o++) {
                const size_t at = (o * channels + c) * inner;
                size_t off;
                if (p.passthrough) {
                    if (backprops_wrt_input != gradients)
                        memmove(backprops_wrt_input + at, gradients + at, inner * sizeof(float));
                    continue;
                }
                for (off = 0; off < inner; off += CFQ_CHUNK) {
                    const size_t m = inner - off < CFQ_CHUNK ? inner - off : CFQ_CHUNK;
                    double sums[2];
                    k->vars_grad(gradients + at + off, inputs + at + off, m, &p,
                                 backprops_wrt_input + at + off, sums);
                    cfq_neumaier_add(&below.s, &below.c, sums[0]);
                    cfq_neumaier_add(&above.s, &above.c, sums[1]);
                }
            }
            backprop_wrt_min[c] = cfq_sum_result(&below);
            backprop_wrt_max[c] = cfq_sum_result(&above);
        }
    }
    cfq_fpenv_leave(&env);
    return CFQ_OK;
}
