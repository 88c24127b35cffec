/*
 * cfq_per_channel.c -- FakeQuantWithMinMaxVarsPerChannel and its gradient
 * (from inputs or from region codes) on a C-contiguous array viewed as
 * [outer, channels, inner], so the channel axis may be anywhere.  inner == 1
 * (TF's layout) runs the kernels that vectorize across channels, in blocks
 * of CFQ_CHANNEL_BLOCK channels; inner > 1 runs the one-parameter kernels on
 * each contiguous run of a channel.  Threads split whole channel blocks or
 * channels, so each channel's sums are made by one thread in a fixed order:
 * the same bits for any thread count.
 */
#include <string.h>

#include "cfq_reference.h"

typedef struct cfq_per_channel_job {
    const cfq_kernels *k;
    const void *g, *x;
    const unsigned char *codes; /* region codes in (the region gradient) */
    const float *min, *max;     /* NULL for the region gradient */
    void *out;
    unsigned char *region;      /* region codes out, or NULL */
    float *dmin, *dmax;
    size_t outer, channels, inner;
    int num_bits, narrow_range;
    int dtype;  /* the kernels' */
    int stream; /* outputs past the caches, every run or row 16-byte aligned */
    int bad;    /* a task met a byte that is no region code */
    /* inner > 1, up to CFQ_CHANNEL_BLOCK channels: every channel's
     * parameters, made at once (nudged one by one they had cost 10 ns a
     * channel) */
    int have_params;
    cfq_channel_params params;
} cfq_per_channel_job;

/* Checks every channel's min/max before anything is written. */
static int cfq_per_channel_check(const float *min, const float *max, size_t channels, int num_bits)
{
    size_t c;
    if (num_bits < 2 || num_bits > 16)
        return CFQ_ENUMBITS;
    for (c = 0; c < channels; c++)
        if (!isfinite(min[c]) || !isfinite(max[c]))
            return CFQ_ENONFINITE;
    return CFQ_OK;
}

int cfq_channel_params_range(const float *min, const float *max, size_t j0, size_t m,
                             int num_bits, int narrow_range, cfq_channel_params *cp)
{
    size_t j;
    int exact = 1;
    for (j = j0; j < m; j++) {
        cfq_params p;
        cfq_params_make(min[j], max[j], num_bits, narrow_range, &p);
        cp->nudged_min[j] = p.nudged_min;
        cp->nudged_max[j] = p.nudged_max;
        cp->scale[j] = p.scale;
        cp->inv_scale[j] = p.inv_scale;
        cp->quant_zero[j] = p.quant_zero;
        cp->offset[j] = p.offset;
        cp->keep[j] = p.passthrough ? 0u : 0xffffffffu;
        exact &= p.offset_exact || p.passthrough; /* which writes +0 */
    }
    return exact;
}

void cfq_channel_params_make(const float *min, const float *max, size_t c0, size_t m,
                             int num_bits, int narrow_range, cfq_channel_params *cp)
{
    cp->offset_exact = cfq_channel_params_range(min + c0, max + c0, 0, m, num_bits, narrow_range, cp);
    cp->one = 1.0f;
    cp->zero = 0.0f;
    cp->stream = 0;
    cp->dtype = CFQ_FLOAT32;
}

static size_t cfq_block_size(const cfq_per_channel_job *j, size_t block)
{
    const size_t c0 = block * CFQ_CHANNEL_BLOCK;
    return j->channels - c0 < CFQ_CHANNEL_BLOCK ? j->channels - c0 : CFQ_CHANNEL_BLOCK;
}

/* The parameters of a block of channels, or, for the region gradient
 * (which reads only one, zero and the dtype), none. */
static void cfq_block_params(const cfq_per_channel_job *j, size_t c0, size_t m, cfq_channel_params *cp)
{
    if (j->min != NULL) /* vectorized: the nudge one channel at a time took 10 ns each */
        j->k->channel_nudge(j->min + c0, j->max + c0, m, j->num_bits, j->narrow_range, cp);
    cp->one = 1.0f;
    cp->zero = 0.0f;
    cp->stream = 0;
    cp->dtype = j->dtype;
}

/* inner == 1: one block of channels, all rows. */
static void cfq_per_channel_forward_block(void *ctx, size_t block)
{
    const cfq_per_channel_job *j = (const cfq_per_channel_job *)ctx;
    const size_t c0 = block * CFQ_CHANNEL_BLOCK, m = cfq_block_size(j, block);
    cfq_channel_params cp;
    cfq_block_params(j, c0, m, &cp);
    cp.stream = j->stream;
    j->k->per_channel_forward(cfq_in(j->dtype, j->x, c0), j->outer, j->channels, m, &cp,
                              cfq_out(j->dtype, j->out, c0), j->region != NULL ? j->region + c0 : NULL);
}

static void cfq_per_channel_grad_block(void *ctx, size_t block)
{
    cfq_per_channel_job *j = (cfq_per_channel_job *)ctx;
    const size_t c0 = block * CFQ_CHANNEL_BLOCK, m = cfq_block_size(j, block);
    const int dt = j->dtype;
    cfq_channel_params cp;
    cfq_channel_sums acc;
    size_t c;
    cfq_block_params(j, c0, m, &cp);
    cp.stream = j->stream;
    /* the kernels touch channels [0, m) only, not all 8 KB */
    memset(acc.below_s, 0, m * sizeof acc.below_s[0]);
    memset(acc.below_c, 0, m * sizeof acc.below_c[0]);
    memset(acc.above_s, 0, m * sizeof acc.above_s[0]);
    memset(acc.above_c, 0, m * sizeof acc.above_c[0]);
    memset(acc.below_p, 0, m * sizeof acc.below_p[0]);
    memset(acc.above_p, 0, m * sizeof acc.above_p[0]);
    if (j->codes != NULL) {
        if (j->k->per_channel_region_grad(cfq_in(dt, j->g, c0), j->codes + c0, j->outer, j->channels, m,
                                          &cp, cfq_out(dt, j->out, c0), &acc))
            cfq_flag_set(&j->bad);
    } else {
        j->k->per_channel_grad(cfq_in(dt, j->g, c0), cfq_in(dt, j->x, c0), j->outer, j->channels, m, &cp,
                               cfq_out(dt, j->out, c0), &acc);
    }
    cfq_channel_sums_flush(&acc, 0, m); /* the last stretch */
    for (c = 0; c < m; c++) {
        const cfq_sum below = {acc.below_s[c], acc.below_c[c]};
        const cfq_sum above = {acc.above_s[c], acc.above_c[c]};
        const int keep = j->codes != NULL || cp.keep[c];
        j->dmin[c0 + c] = keep ? cfq_sum_result(&below) : 0.0f;
        j->dmax[c0 + c] = keep ? cfq_sum_result(&above) : 0.0f;
    }
}

/* Channel c's parameters, for the ops over runs (inner > 1). */
static void cfq_channel_params_of(const cfq_per_channel_job *j, size_t c, cfq_params *p)
{
    if (j->have_params) {
        const cfq_channel_params *cp = &j->params;
        p->nudged_min = cp->nudged_min[c];
        p->nudged_max = cp->nudged_max[c];
        p->scale = cp->scale[c];
        p->inv_scale = cp->inv_scale[c];
        p->quant_zero = cp->quant_zero[c];
        p->offset = cp->offset[c];
        p->offset_exact = cp->offset_exact; /* all channels': each one's check cost [64, 16] 1.15x */
        p->passthrough = cp->keep[c] == 0;
        p->one = 1.0f;
        p->zero = 0.0f;
        p->keyed = 0; /* as cfq_params_make leaves it */
    } else {
        cfq_params_make(j->min[c], j->max[c], j->num_bits, j->narrow_range, p);
    }
}

/* inner > 1: one channel, its run in every outer slice. */
static void cfq_per_channel_forward_channel(void *ctx, size_t c)
{
    const cfq_per_channel_job *j = (const cfq_per_channel_job *)ctx;
    const int dt = j->dtype;
    cfq_params p;
    size_t o;
    cfq_channel_params_of(j, c, &p);
    p.stream = j->stream;
    p.dtype = dt;
    for (o = 0; o < j->outer; o++) {
        const size_t at = (o * j->channels + c) * j->inner;
        unsigned char *region = j->region != NULL ? j->region + at : NULL;
        if (p.passthrough) {
            memset(cfq_out(dt, j->out, at), 0, j->inner * CFQ_ELEMENT_SIZE(dt)); /* TF writes +0.0 */
            if (region != NULL)
                memset(region, CFQ_REGION_PASS, j->inner);
        } else {
            j->k->args_forward(cfq_in(dt, j->x, at), j->inner, &p, cfq_out(dt, j->out, at), region);
        }
    }
}

static void cfq_per_channel_grad_channel(void *ctx, size_t c)
{
    cfq_per_channel_job *j = (cfq_per_channel_job *)ctx;
    const int dt = j->dtype;
    cfq_params p;
    cfq_sum below = {0.0, 0.0}, above = {0.0, 0.0};
    size_t o, off;
    if (j->codes != NULL)
        cfq_params_make(0.0f, 1.0f, 8, 0, &p); /* the region gradient reads one, zero, stream, dtype */
    else
        cfq_channel_params_of(j, c, &p);
    p.stream = j->stream;
    p.dtype = dt;
    if (j->codes == NULL && !p.passthrough) /* a pass-through channel copies g */
        cfq_params_keys(&p, j->k, j->inner);
    for (o = 0; o < j->outer; o++) {
        const size_t at = (o * j->channels + c) * j->inner;
        if (p.passthrough) {
            /* TF copies: no arithmetic, no flushing */
            cfq_copy(dt, cfq_out(dt, j->out, at), cfq_in(dt, j->g, at), j->inner);
            continue;
        }
        for (off = 0; off < j->inner; off += CFQ_CHUNK) {
            const size_t m = j->inner - off < CFQ_CHUNK ? j->inner - off : CFQ_CHUNK;
            const size_t e = at + off;
            double sums[2];
            if (j->codes != NULL) {
                if (j->k->region_grad(cfq_in(dt, j->g, e), j->codes + e, m, &p, cfq_out(dt, j->out, e), sums))
                    cfq_flag_set(&j->bad);
            } else {
                j->k->vars_grad(cfq_in(dt, j->g, e), cfq_in(dt, j->x, e), m, &p, cfq_out(dt, j->out, e), sums);
            }
            cfq_twosum_add(&below.s, &below.c, sums[0]);
            cfq_twosum_add(&above.s, &above.c, sums[1]);
        }
    }
    j->dmin[c] = p.passthrough ? 0.0f : cfq_sum_result(&below);
    j->dmax[c] = p.passthrough ? 0.0f : cfq_sum_result(&above);
}

/* Over runs (inner > 1) of few enough channels, all their parameters at
 * once; inside the FP environment, as every nudge. */
static void cfq_per_channel_prepare(cfq_per_channel_job *j)
{
    if (j->inner > 1 && j->min != NULL && j->channels <= CFQ_CHANNEL_BLOCK) {
        j->k->channel_nudge(j->min, j->max, j->channels, j->num_bits, j->narrow_range, &j->params);
        j->have_params = 1;
    }
}

/* Fills the job and checks what the ops share; picks the task split.  min
 * and max are NULL for the region gradient. */
static int cfq_per_channel_setup(cfq_per_channel_job *j, int dtype, const void *g, const void *x,
                                 const unsigned char *codes, size_t outer, size_t channels,
                                 size_t inner, const float *min, const float *max, int num_bits,
                                 int narrow_range, void *out, unsigned char *region, float *dmin,
                                 float *dmax, const cfq_exec *exec, size_t *tasks, int *threads)
{
    size_t total;
    int rc;
    memset(j, 0, offsetof(cfq_per_channel_job, params)); /* not the 6 KB of parameters */
    j->g = g;
    j->x = x;
    j->codes = codes;
    j->min = min;
    j->max = max;
    j->out = out;
    j->region = region;
    j->dmin = dmin;
    j->dmax = dmax;
    j->outer = outer;
    j->channels = channels;
    j->inner = inner;
    j->num_bits = num_bits;
    j->narrow_range = narrow_range;
    rc = cfq_count(outer, channels, inner, &total);
    if (rc != CFQ_OK)
        return rc;
    if (total > 0 && ((codes == NULL && x == NULL) || g == NULL || out == NULL))
        return CFQ_ENULL;
    if (codes == NULL) {
        if (channels > 0 && (min == NULL || max == NULL))
            return CFQ_ENULL;
        if ((rc = cfq_per_channel_check(min, max, channels, num_bits)) != CFQ_OK)
            return rc;
    }
    if ((j->k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    if ((j->dtype = cfq_kernel_dtype(j->k, dtype)) < 0)
        return CFQ_EDTYPE;
    if (j->channels == 1) { /* one channel: the whole array is one run */
        j->inner *= j->outer;
        j->outer = 1;
    }
    j->stream = cfq_should_stream(total, out) && (j->inner == 1 ? j->channels : j->inner) % 8 == 0;
    *tasks = j->inner == 1 ? j->channels / CFQ_CHANNEL_BLOCK + (j->channels % CFQ_CHANNEL_BLOCK != 0)
                           : j->channels;
    *threads = exec != NULL ? exec->threads : 1;
    return CFQ_OK;
}

/* The forward op, with region codes where region is not NULL. */
static int cfq_per_channel_forward(int dtype, const void *inputs, size_t outer, size_t channels,
                                   size_t inner, const float *min, const float *max, int num_bits,
                                   int narrow_range, void *outputs, unsigned char *region,
                                   const cfq_exec *exec)
{
    cfq_per_channel_job j;
    cfq_fpenv env;
    size_t tasks = 0;
    int threads = 1, rc;
    rc = cfq_per_channel_setup(&j, dtype, inputs, inputs, NULL, outer, channels, inner, min, max,
                               num_bits, narrow_range, outputs, region, NULL, NULL, exec, &tasks, &threads);
    if (rc != CFQ_OK)
        return rc;
    if (j.outer == 0 || j.inner == 0)
        return CFQ_OK;
    cfq_fpenv_enter(&env);
    cfq_per_channel_prepare(&j);
    cfq_parallel_for(threads, tasks, j.inner == 1 ? cfq_per_channel_forward_block : cfq_per_channel_forward_channel, &j);
    cfq_fpenv_leave(&env);
    return CFQ_OK;
}

/* The gradient from inputs (codes NULL) or from region codes (min, max and
 * inputs NULL). */
static int cfq_per_channel_gradient(int dtype, const void *gradients, const void *inputs,
                                    const unsigned char *codes, size_t outer, size_t channels,
                                    size_t inner, const float *min, const float *max, int num_bits,
                                    int narrow_range, void *backprops_wrt_input,
                                    float *backprop_wrt_min, float *backprop_wrt_max,
                                    const cfq_exec *exec)
{
    cfq_per_channel_job j;
    cfq_fpenv env;
    size_t tasks = 0;
    int threads = 1, rc;
    rc = cfq_per_channel_setup(&j, dtype, gradients, inputs, codes, outer, channels, inner, min, max,
                               num_bits, narrow_range, backprops_wrt_input, NULL, backprop_wrt_min,
                               backprop_wrt_max, exec, &tasks, &threads);
    if (rc != CFQ_OK)
        return rc;
    if (channels > 0 && (backprop_wrt_min == NULL || backprop_wrt_max == NULL))
        return CFQ_ENULL;
    if (j.outer == 0 || j.inner == 0) { /* no elements (the arrays may be NULL) */
        size_t c;
        for (c = 0; c < channels; c++)
            backprop_wrt_min[c] = backprop_wrt_max[c] = 0.0f;
        return CFQ_OK;
    }
    cfq_fpenv_enter(&env);
    cfq_per_channel_prepare(&j);
    cfq_parallel_for(threads, tasks, j.inner == 1 ? cfq_per_channel_grad_block : cfq_per_channel_grad_channel, &j);
    cfq_fpenv_leave(&env);
    return j.bad ? CFQ_EREGION : CFQ_OK;
}

int cfq_fq_per_channel_typed(int dtype, const void *inputs, size_t outer, size_t channels,
                             size_t inner, const float *min, const float *max, int num_bits,
                             int narrow_range, void *outputs, const cfq_exec *exec)
{
    return cfq_per_channel_forward(dtype, inputs, outer, channels, inner, min, max, num_bits,
                                   narrow_range, outputs, NULL, exec);
}

int cfq_fq_per_channel_and_region_typed(int dtype, const void *inputs, size_t outer,
                                        size_t channels, size_t inner, const float *min,
                                        const float *max, int num_bits, int narrow_range,
                                        void *outputs, unsigned char *region,
                                        const cfq_exec *exec)
{
    size_t total;
    if (cfq_count(outer, channels, inner, &total) == CFQ_OK && total > 0 && region == NULL)
        return CFQ_ENULL;
    return cfq_per_channel_forward(dtype, inputs, outer, channels, inner, min, max, num_bits,
                                   narrow_range, outputs, region, exec);
}

int cfq_fq_per_channel_grad_typed(int dtype, const void *gradients, const void *inputs,
                                  size_t outer, size_t channels, size_t inner, const float *min,
                                  const float *max, int num_bits, int narrow_range,
                                  void *backprops_wrt_input, float *backprop_wrt_min,
                                  float *backprop_wrt_max, const cfq_exec *exec)
{
    return cfq_per_channel_gradient(dtype, gradients, inputs, NULL, outer, channels, inner, min, max,
                                    num_bits, narrow_range, backprops_wrt_input, backprop_wrt_min,
                                    backprop_wrt_max, exec);
}

int cfq_fq_per_channel_region_grad_typed(int dtype, const void *gradients,
                                         const unsigned char *region, size_t outer,
                                         size_t channels, size_t inner,
                                         void *backprops_wrt_input, float *backprop_wrt_min,
                                         float *backprop_wrt_max, const cfq_exec *exec)
{
    size_t total;
    if (cfq_count(outer, channels, inner, &total) == CFQ_OK && total > 0 && region == NULL)
        return CFQ_ENULL;
    return cfq_per_channel_gradient(dtype, gradients, NULL, region, outer, channels, inner, NULL, NULL,
                                    2, 0, backprops_wrt_input, backprop_wrt_min, backprop_wrt_max, exec);
}

/* ---- float32 ------------------------------------------------------------- */

int cfq_fq_per_channel(const float *inputs, size_t outer, size_t channels, size_t inner,
                       const float *min, const float *max, int num_bits, int narrow_range,
                       float *outputs, const cfq_exec *exec)
{
    return cfq_fq_per_channel_typed(CFQ_FLOAT32, inputs, outer, channels, inner, min, max, num_bits,
                                    narrow_range, outputs, exec);
}

int cfq_fq_per_channel_grad(const float *gradients, const float *inputs, size_t outer,
                            size_t channels, size_t inner, const float *min, const float *max,
                            int num_bits, int narrow_range, float *backprops_wrt_input,
                            float *backprop_wrt_min, float *backprop_wrt_max,
                            const cfq_exec *exec)
{
    return cfq_fq_per_channel_grad_typed(CFQ_FLOAT32, gradients, inputs, outer, channels, inner, min,
                                         max, num_bits, narrow_range, backprops_wrt_input,
                                         backprop_wrt_min, backprop_wrt_max, exec);
}

int cfq_fq_per_channel_and_region(const float *inputs, size_t outer, size_t channels, size_t inner,
                                  const float *min, const float *max, int num_bits, int narrow_range,
                                  float *outputs, unsigned char *region, const cfq_exec *exec)
{
    return cfq_fq_per_channel_and_region_typed(CFQ_FLOAT32, inputs, outer, channels, inner, min, max,
                                               num_bits, narrow_range, outputs, region, exec);
}

int cfq_fq_per_channel_region_grad(const float *gradients, const unsigned char *region,
                                   size_t outer, size_t channels, size_t inner,
                                   float *backprops_wrt_input, float *backprop_wrt_min,
                                   float *backprop_wrt_max, const cfq_exec *exec)
{
    return cfq_fq_per_channel_region_grad_typed(CFQ_FLOAT32, gradients, region, outer, channels,
                                                inner, backprops_wrt_input, backprop_wrt_min,
                                                backprop_wrt_max, exec);
}
