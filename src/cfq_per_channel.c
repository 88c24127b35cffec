/*
 * cfq_per_channel.c -- FakeQuantWithMinMaxVarsPerChannel and its gradient on
 * a C-contiguous array viewed as [outer, channels, inner], so the channel
 * axis may be anywhere.  inner == 1 (TF's layout) runs the kernels that
 * vectorize across channels, in blocks of CFQ_CHANNEL_BLOCK channels; inner > 1
 * runs the one-parameter kernels on each contiguous run of a channel.
 * Threads split whole channel blocks or channels, so each channel's sums are
 * made by one thread in a fixed order: the same bits for any thread count.
 */
#include <string.h>

#include "cfq_reference.h"

typedef struct cfq_per_channel_job {
    const cfq_kernels *k;
    const float *g, *x, *min, *max;
    float *out, *dmin, *dmax;
    size_t outer, channels, inner;
    int num_bits, narrow_range;
    int stream; /* outputs past the caches, every run or row 16-byte aligned */
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

void cfq_channel_params_make(const float *min, const float *max, size_t c0, size_t m,
                             int num_bits, int narrow_range, cfq_channel_params *cp)
{
    size_t j;
    for (j = 0; j < m; j++) {
        cfq_params p;
        cfq_params_make(min[c0 + j], max[c0 + j], num_bits, narrow_range, &p);
        cp->nudged_min[j] = p.nudged_min;
        cp->nudged_max[j] = p.nudged_max;
        cp->scale[j] = p.scale;
        cp->inv_scale[j] = p.inv_scale;
        cp->quant_zero[j] = p.quant_zero;
        cp->keep[j] = p.passthrough ? 0u : 0xffffffffu;
    }
    cp->one = 1.0f;
    cp->zero = 0.0f;
    cp->stream = 0;
}

static size_t cfq_block_size(const cfq_per_channel_job *j, size_t block)
{
    const size_t c0 = block * CFQ_CHANNEL_BLOCK;
    return j->channels - c0 < CFQ_CHANNEL_BLOCK ? j->channels - c0 : CFQ_CHANNEL_BLOCK;
}

/* inner == 1: one block of channels, all rows. */
static void cfq_per_channel_forward_block(void *ctx, size_t block)
{
    const cfq_per_channel_job *j = (const cfq_per_channel_job *)ctx;
    const size_t c0 = block * CFQ_CHANNEL_BLOCK, m = cfq_block_size(j, block);
    cfq_channel_params cp;
    cfq_channel_params_make(j->min, j->max, c0, m, j->num_bits, j->narrow_range, &cp);
    cp.stream = j->stream;
    j->k->per_channel_forward(j->x + c0, j->outer, j->channels, m, &cp, j->out + c0);
}

static void cfq_per_channel_grad_block(void *ctx, size_t block)
{
    const cfq_per_channel_job *j = (const cfq_per_channel_job *)ctx;
    const size_t c0 = block * CFQ_CHANNEL_BLOCK, m = cfq_block_size(j, block);
    cfq_channel_params cp;
    cfq_channel_sums acc;
    size_t c;
    cfq_channel_params_make(j->min, j->max, c0, m, j->num_bits, j->narrow_range, &cp);
    memset(&acc, 0, sizeof acc);
    j->k->per_channel_grad(j->g + c0, j->x + c0, j->outer, j->channels, m, &cp, j->out + c0, &acc);
    for (c = 0; c < m; c++) {
        const cfq_sum below = {acc.below_s[c], acc.below_c[c]};
        const cfq_sum above = {acc.above_s[c], acc.above_c[c]};
        j->dmin[c0 + c] = cp.keep[c] ? cfq_sum_result(&below) : 0.0f;
        j->dmax[c0 + c] = cp.keep[c] ? cfq_sum_result(&above) : 0.0f;
    }
}

/* inner > 1: one channel, its run in every outer slice. */
static void cfq_per_channel_forward_channel(void *ctx, size_t c)
{
    const cfq_per_channel_job *j = (const cfq_per_channel_job *)ctx;
    cfq_params p;
    size_t o;
    cfq_params_make(j->min[c], j->max[c], j->num_bits, j->narrow_range, &p);
    p.stream = j->stream;
    for (o = 0; o < j->outer; o++) {
        const size_t at = (o * j->channels + c) * j->inner;
        if (p.passthrough)
            memset(j->out + at, 0, j->inner * sizeof(float)); /* TF writes +0.0 */
        else
            j->k->args_forward(j->x + at, j->inner, &p, j->out + at);
    }
}

static void cfq_per_channel_grad_channel(void *ctx, size_t c)
{
    const cfq_per_channel_job *j = (const cfq_per_channel_job *)ctx;
    cfq_params p;
    cfq_sum below = {0.0, 0.0}, above = {0.0, 0.0};
    size_t o, off;
    cfq_params_make(j->min[c], j->max[c], j->num_bits, j->narrow_range, &p);
    p.stream = j->stream;
    for (o = 0; o < j->outer; o++) {
        const size_t at = (o * j->channels + c) * j->inner;
        if (p.passthrough) {
            if (j->out != j->g) /* TF copies: no arithmetic, no flushing */
                memmove(j->out + at, j->g + at, j->inner * sizeof(float));
            continue;
        }
        for (off = 0; off < j->inner; off += CFQ_CHUNK) {
            const size_t m = j->inner - off < CFQ_CHUNK ? j->inner - off : CFQ_CHUNK;
            double sums[2];
            j->k->vars_grad(j->g + at + off, j->x + at + off, m, &p, j->out + at + off, sums);
            cfq_twosum_add(&below.s, &below.c, sums[0]);
            cfq_twosum_add(&above.s, &above.c, sums[1]);
        }
    }
    j->dmin[c] = p.passthrough ? 0.0f : cfq_sum_result(&below);
    j->dmax[c] = p.passthrough ? 0.0f : cfq_sum_result(&above);
}

/* Fills the job and checks what both ops share; picks the task split. */
static int cfq_per_channel_setup(cfq_per_channel_job *j, const float *g, const float *x, size_t outer,
                        size_t channels, size_t inner, const float *min, const float *max,
                        int num_bits, int narrow_range, float *out, float *dmin, float *dmax,
                        const cfq_exec *exec, size_t *tasks, int *threads)
{
    size_t total;
    int rc;
    memset(j, 0, sizeof *j);
    j->g = g;
    j->x = x;
    j->min = min;
    j->max = max;
    j->out = out;
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
    if ((total > 0 && (j->x == NULL || j->g == NULL || j->out == NULL)) ||
        (j->channels > 0 && (j->min == NULL || j->max == NULL)))
        return CFQ_ENULL;
    if ((rc = cfq_per_channel_check(j->min, j->max, j->channels, j->num_bits)) != CFQ_OK)
        return rc;
    if ((j->k = cfq_exec_kernels(exec, &rc)) == NULL)
        return rc;
    if (j->channels == 1) { /* one channel: the whole array is one run */
        j->inner *= j->outer;
        j->outer = 1;
    }
    j->stream = cfq_should_stream(total, out) && (j->inner == 1 ? j->channels : j->inner) % 4 == 0;
    *tasks = j->inner == 1 ? j->channels / CFQ_CHANNEL_BLOCK + (j->channels % CFQ_CHANNEL_BLOCK != 0)
                           : j->channels;
    *threads = exec != NULL ? exec->threads : 1;
    return CFQ_OK;
}

int cfq_fq_per_channel(const float *inputs, size_t outer, size_t channels, size_t inner,
                       const float *min, const float *max, int num_bits, int narrow_range,
                       float *outputs, const cfq_exec *exec)
{
    cfq_per_channel_job j;
    cfq_fpenv env;
    size_t tasks = 0;
    int threads = 1, rc;
    rc = cfq_per_channel_setup(&j, inputs, inputs, outer, channels, inner, min, max, num_bits,
                      narrow_range, outputs, NULL, NULL, exec, &tasks, &threads);
    if (rc != CFQ_OK)
        return rc;
    if (j.outer == 0 || j.inner == 0)
        return CFQ_OK;
    cfq_fpenv_enter(&env);
    cfq_parallel_for(threads, tasks, j.inner == 1 ? cfq_per_channel_forward_block : cfq_per_channel_forward_channel, &j);
    cfq_fpenv_leave(&env);
    return CFQ_OK;
}

int cfq_fq_per_channel_grad(const float *gradients, const float *inputs, size_t outer,
                            size_t channels, size_t inner, const float *min, const float *max,
                            int num_bits, int narrow_range, float *backprops_wrt_input,
                            float *backprop_wrt_min, float *backprop_wrt_max,
                            const cfq_exec *exec)
{
    cfq_per_channel_job j;
    cfq_fpenv env;
    size_t tasks = 0;
    int threads = 1, rc;
    rc = cfq_per_channel_setup(&j, gradients, inputs, outer, channels, inner, min, max, num_bits,
                      narrow_range, backprops_wrt_input, backprop_wrt_min, backprop_wrt_max, exec,
                      &tasks, &threads);
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
    cfq_parallel_for(threads, tasks, j.inner == 1 ? cfq_per_channel_grad_block : cfq_per_channel_grad_channel, &j);
    cfq_fpenv_leave(&env);
    return CFQ_OK;
}
