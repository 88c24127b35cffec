/*
 * cfq_ops.c -- the elementwise ops: argument checks, then the work cut into
 * tasks for cfq_parallel_for().  Sums are kept per chunk of CFQ_CHUNK
 * elements and combined in chunk order, so every thread count and every ISA
 * path gives the same bits.  The float32 entry points are the _typed ones
 * with CFQ_FLOAT32.
 */
#include <stdint.h>
#include <string.h>

#include "cfq_reference.h"

/* Chunks per task: big enough to hide the hand-off, small enough to balance. */
#define CFQ_TASK_CHUNKS 4
/* Chunks whose sums are held at once (on the stack: no allocation). */
#define CFQ_ROUND_CHUNKS 256

enum cfq_op { CFQ_OP_VARS, CFQ_OP_ARGS, CFQ_OP_ARGS_GRAD, CFQ_OP_VARS_GRAD, CFQ_OP_REGION_GRAD };

/* Not zeroed at a call: cfq_job_set fills the fields, cfq_run_sums each
 * round's, before they are read (copying a zeroed 5 KB job took about half
 * of a 64-element call's time). */
typedef struct cfq_job {
    enum cfq_op op;
    const cfq_kernels *k;
    const cfq_params *p;
    const void *a;              /* inputs, or gradients for the gradients */
    const void *x;              /* inputs of the two-input ops */
    const unsigned char *codes; /* region codes in */
    void *out;
    unsigned char *region;      /* region codes out, or NULL */
    size_t n;
    size_t first_chunk;         /* sums: the round's first chunk */
    size_t round_chunks;
    double sums[CFQ_ROUND_CHUNKS][2];
    int bad[CFQ_ROUND_CHUNKS];
} cfq_job;

static void cfq_elementwise_task(void *ctx, size_t task)
{
    const cfq_job *j = (const cfq_job *)ctx;
    const int dt = j->p->dtype;
    const size_t span = CFQ_TASK_CHUNKS * CFQ_CHUNK, at = task * span;
    const size_t m = j->n - at < span ? j->n - at : span;
    const void *a = cfq_in(dt, j->a, at);
    void *out = cfq_out(dt, j->out, at);
    unsigned char *region = j->region != NULL ? j->region + at : NULL;
    switch (j->op) {
    case CFQ_OP_VARS: j->k->vars_forward(a, m, j->p, out, region); break;
    case CFQ_OP_ARGS: j->k->args_forward(a, m, j->p, out, region); break;
    case CFQ_OP_ARGS_GRAD: j->k->args_grad(a, cfq_in(dt, j->x, at), m, j->p, out); break;
    default: break;
    }
}

/* Chunks [task * CFQ_TASK_CHUNKS, ...) of the current round, each with its
 * own sums. */
static void cfq_sums_task(void *ctx, size_t task)
{
    cfq_job *j = (cfq_job *)ctx;
    const int dt = j->p->dtype;
    size_t c = task * CFQ_TASK_CHUNKS;
    const size_t end = c + CFQ_TASK_CHUNKS < j->round_chunks ? c + CFQ_TASK_CHUNKS : j->round_chunks;
    for (; c < end; c++) {
        const size_t at = (j->first_chunk + c) * CFQ_CHUNK;
        const size_t m = j->n - at < CFQ_CHUNK ? j->n - at : CFQ_CHUNK;
        if (j->op == CFQ_OP_VARS_GRAD)
            j->k->vars_grad(cfq_in(dt, j->a, at), cfq_in(dt, j->x, at), m, j->p, cfq_out(dt, j->out, at),
                            j->sums[c]);
        else
            j->bad[c] = j->k->region_grad(cfq_in(dt, j->a, at), j->codes + at, m, j->p,
                                          cfq_out(dt, j->out, at), j->sums[c]);
    }
}

static void cfq_job_set(cfq_job *j, enum cfq_op op, const cfq_kernels *k, const cfq_params *p,
                        const void *a, const void *x, const unsigned char *codes, void *out,
                        unsigned char *region, size_t n)
{
    j->op = op;
    j->k = k;
    j->p = p;
    j->a = a;
    j->x = x;
    j->codes = codes;
    j->out = out;
    j->region = region;
    j->n = n;
}

static size_t cfq_ceil_div(size_t a, size_t b)
{
    return a / b + (a % b != 0);
}

static int cfq_threads_of(const cfq_exec *exec)
{
    return exec != NULL ? exec->threads : 1;
}

/* Runs an op without sums. */
static void cfq_run_elementwise(cfq_job *j, int threads)
{
    cfq_parallel_for(threads, cfq_ceil_div(j->n, CFQ_TASK_CHUNKS * CFQ_CHUNK),
                     cfq_elementwise_task, j);
}

/* Runs an op with sums, round by round; returns nonzero if a chunk reported
 * a bad region byte. */
static int cfq_run_sums(cfq_job *j, int threads, float *below_out, float *above_out)
{
    const size_t chunks = cfq_ceil_div(j->n, CFQ_CHUNK);
    cfq_sum below = {0.0, 0.0}, above = {0.0, 0.0};
    size_t c;
    int bad = 0;
    for (j->first_chunk = 0; j->first_chunk < chunks; j->first_chunk += CFQ_ROUND_CHUNKS) {
        j->round_chunks = chunks - j->first_chunk < CFQ_ROUND_CHUNKS ? chunks - j->first_chunk
                                                                     : CFQ_ROUND_CHUNKS;
        memset(j->bad, 0, j->round_chunks * sizeof j->bad[0]);
        cfq_parallel_for(threads, cfq_ceil_div(j->round_chunks, CFQ_TASK_CHUNKS), cfq_sums_task, j);
        for (c = 0; c < j->round_chunks; c++) {
            cfq_twosum_add(&below.s, &below.c, j->sums[c][0]);
            cfq_twosum_add(&above.s, &above.c, j->sums[c][1]);
            bad |= j->bad[c];
        }
    }
    *below_out = cfq_sum_result(&below);
    *above_out = cfq_sum_result(&above);
    return bad;
}

/* Common checks of the one- and two-array ops; sets *kdt to the kernels'
 * dtype. */
static const cfq_kernels *cfq_ops_prelude(int dtype, const void *a, const void *b, const void *out,
                                          size_t n, const cfq_exec *exec, int *kdt, int *rc)
{
    const cfq_kernels *k;
    if (n > 0 && (a == NULL || b == NULL || out == NULL)) {
        *rc = CFQ_ENULL;
        return NULL;
    }
    if (n > SIZE_MAX / sizeof(float)) {
        *rc = CFQ_ESHAPE;
        return NULL;
    }
    if ((k = cfq_exec_kernels(exec, rc)) == NULL)
        return NULL;
    if ((*kdt = cfq_kernel_dtype(k, dtype)) < 0) {
        *rc = CFQ_EDTYPE;
        return NULL;
    }
    return k;
}

/* ---- FakeQuantWithMinMaxVarsGradient ------------------------------------ */

int cfq_vars_grad_run(const cfq_kernels *k, int dtype, const void *gradients, const void *inputs,
                      size_t n, float min, float max, int num_bits, int narrow_range,
                      void *backprops_wrt_input, float *backprop_wrt_min,
                      float *backprop_wrt_max, int threads)
{
    cfq_fpenv env;
    cfq_params p;
    cfq_job j;
    int rc;

    cfq_fpenv_enter(&env);
    rc = cfq_params_check_make(min, max, num_bits, narrow_range, &p);
    p.dtype = dtype;
    if (rc == CFQ_OK && p.passthrough) {
        /* TF copies the gradients unchanged: no arithmetic, no flushing. */
        if (n > 0)
            cfq_copy(dtype, backprops_wrt_input, gradients, n);
        *backprop_wrt_min = 0.0f;
        *backprop_wrt_max = 0.0f;
    } else if (rc == CFQ_OK) {
        p.stream = cfq_should_stream(n, backprops_wrt_input);
        cfq_params_keys(&p, k, n);
        cfq_job_set(&j, CFQ_OP_VARS_GRAD, k, &p, gradients, inputs, NULL, backprops_wrt_input, NULL, n);
        cfq_run_sums(&j, threads, backprop_wrt_min, backprop_wrt_max);
    }
    cfq_fpenv_leave(&env);
    return rc;
}

int cfq_fq_vars_grad_typed(int dtype, const void *gradients, const void *inputs, size_t n,
                           float min, float max, int num_bits, int narrow_range,
                           void *backprops_wrt_input, float *backprop_wrt_min,
                           float *backprop_wrt_max, const cfq_exec *exec)
{
    int rc = CFQ_OK, kdt = CFQ_FLOAT32;
    const cfq_kernels *k = cfq_ops_prelude(dtype, gradients, inputs, backprops_wrt_input, n, exec, &kdt, &rc);
    if (k == NULL)
        return rc;
    if (backprop_wrt_min == NULL || backprop_wrt_max == NULL)
        return CFQ_ENULL;
    return cfq_vars_grad_run(k, kdt, gradients, inputs, n, min, max, num_bits, narrow_range,
                             backprops_wrt_input, backprop_wrt_min, backprop_wrt_max,
                             cfq_threads_of(exec));
}

/* ---- Forward ops and the args gradient ---------------------------------- */

/* The args ops' extra rule, checked as TF does (after denormals read as 0). */
static int cfq_args_params(float min, float max, int num_bits, int narrow_range, cfq_params *p)
{
    int rc = cfq_params_check_make(min, max, num_bits, narrow_range, p);
    if (rc == CFQ_OK && !(min < max))
        rc = CFQ_EMINMAX;
    return rc;
}

/* One elementwise op without sums, from checks to the last task; region is
 * written too where it is not NULL (the vars op only). */
static int cfq_elementwise(int dtype, enum cfq_op op, const void *a, const void *x, size_t n,
                           float min, float max, int num_bits, int narrow_range, void *out,
                           unsigned char *region, const cfq_exec *exec)
{
    cfq_fpenv env;
    cfq_params p;
    cfq_job j;
    int rc = CFQ_OK, kdt = CFQ_FLOAT32;
    const cfq_kernels *k = cfq_ops_prelude(dtype, a, x, out, n, exec, &kdt, &rc);
    if (k == NULL)
        return rc;

    cfq_fpenv_enter(&env);
    if (op == CFQ_OP_ARGS || op == CFQ_OP_ARGS_GRAD)
        rc = cfq_args_params(min, max, num_bits, narrow_range, &p);
    else
        rc = cfq_params_check_make(min, max, num_bits, narrow_range, &p);
    p.dtype = kdt;
    if (rc == CFQ_OK && n > 0) {
        if (p.passthrough && op == CFQ_OP_VARS) {
            memset(out, 0, n * CFQ_ELEMENT_SIZE(dtype)); /* TF writes +0.0 */
            if (region != NULL)
                memset(region, CFQ_REGION_PASS, n);
        } else {
            p.stream = cfq_should_stream(n, out);
            cfq_job_set(&j, op, k, &p, a, x, NULL, out, region, n);
            cfq_run_elementwise(&j, cfq_threads_of(exec));
        }
    }
    cfq_fpenv_leave(&env);
    return rc;
}

int cfq_fq_vars_typed(int dtype, const void *inputs, size_t n, float min, float max,
                      int num_bits, int narrow_range, void *outputs, const cfq_exec *exec)
{
    return cfq_elementwise(dtype, CFQ_OP_VARS, inputs, inputs, n, min, max, num_bits, narrow_range,
                           outputs, NULL, exec);
}

int cfq_fq_args_typed(int dtype, const void *inputs, size_t n, float min, float max,
                      int num_bits, int narrow_range, void *outputs, const cfq_exec *exec)
{
    return cfq_elementwise(dtype, CFQ_OP_ARGS, inputs, inputs, n, min, max, num_bits, narrow_range,
                           outputs, NULL, exec);
}

int cfq_fq_args_grad_typed(int dtype, const void *gradients, const void *inputs, size_t n,
                           float min, float max, int num_bits, int narrow_range, void *backprops,
                           const cfq_exec *exec)
{
    return cfq_elementwise(dtype, CFQ_OP_ARGS_GRAD, gradients, inputs, n, min, max, num_bits,
                           narrow_range, backprops, NULL, exec);
}

/* ---- The region-code path ------------------------------------------------ */

int cfq_fq_vars_and_region_typed(int dtype, const void *inputs, size_t n, float min, float max,
                                 int num_bits, int narrow_range, void *outputs,
                                 unsigned char *region, const cfq_exec *exec)
{
    if (n > 0 && region == NULL)
        return CFQ_ENULL;
    return cfq_elementwise(dtype, CFQ_OP_VARS, inputs, inputs, n, min, max, num_bits, narrow_range,
                           outputs, region, exec);
}

int cfq_fq_args_and_region_typed(int dtype, const void *inputs, size_t n, float min, float max,
                                 int num_bits, int narrow_range, void *outputs,
                                 unsigned char *region, const cfq_exec *exec)
{
    if (n > 0 && region == NULL)
        return CFQ_ENULL;
    return cfq_elementwise(dtype, CFQ_OP_ARGS, inputs, inputs, n, min, max, num_bits, narrow_range,
                           outputs, region, exec);
}

int cfq_fq_region_grad_typed(int dtype, const void *gradients, const unsigned char *region,
                             size_t n, void *backprops_wrt_input, float *backprop_wrt_min,
                             float *backprop_wrt_max, const cfq_exec *exec)
{
    cfq_fpenv env;
    cfq_params p;
    cfq_job j;
    int rc = CFQ_OK, kdt = CFQ_FLOAT32, bad;
    const cfq_kernels *k = cfq_ops_prelude(dtype, gradients, region, backprops_wrt_input, n, exec, &kdt, &rc);
    if (k == NULL)
        return rc;
    if (backprop_wrt_min == NULL || backprop_wrt_max == NULL)
        return CFQ_ENULL;
    cfq_fpenv_enter(&env);
    cfq_params_make(0.0f, 1.0f, 8, 0, &p); /* only one, zero, stream and dtype are read */
    p.dtype = kdt;
    p.stream = cfq_should_stream(n, backprops_wrt_input);
    cfq_job_set(&j, CFQ_OP_REGION_GRAD, k, &p, gradients, NULL, region, backprops_wrt_input, NULL, n);
    bad = cfq_run_sums(&j, cfq_threads_of(exec), backprop_wrt_min, backprop_wrt_max);
    cfq_fpenv_leave(&env);
    return bad ? CFQ_EREGION : CFQ_OK;
}

/* ---- float32 ------------------------------------------------------------- */

int cfq_fq_vars_grad(const float *gradients, const float *inputs, size_t n, float min, float max,
                     int num_bits, int narrow_range, float *backprops_wrt_input,
                     float *backprop_wrt_min, float *backprop_wrt_max, const cfq_exec *exec)
{
    return cfq_fq_vars_grad_typed(CFQ_FLOAT32, gradients, inputs, n, min, max, num_bits,
                                  narrow_range, backprops_wrt_input, backprop_wrt_min,
                                  backprop_wrt_max, exec);
}

int cfq_fq_vars(const float *inputs, size_t n, float min, float max, int num_bits,
                int narrow_range, float *outputs, const cfq_exec *exec)
{
    return cfq_fq_vars_typed(CFQ_FLOAT32, inputs, n, min, max, num_bits, narrow_range, outputs, exec);
}

int cfq_fq_args(const float *inputs, size_t n, float min, float max, int num_bits,
                int narrow_range, float *outputs, const cfq_exec *exec)
{
    return cfq_fq_args_typed(CFQ_FLOAT32, inputs, n, min, max, num_bits, narrow_range, outputs, exec);
}

int cfq_fq_args_grad(const float *gradients, const float *inputs, size_t n, float min, float max,
                     int num_bits, int narrow_range, float *backprops, const cfq_exec *exec)
{
    return cfq_fq_args_grad_typed(CFQ_FLOAT32, gradients, inputs, n, min, max, num_bits,
                                  narrow_range, backprops, exec);
}

int cfq_fq_vars_and_region(const float *inputs, size_t n, float min, float max, int num_bits,
                           int narrow_range, float *outputs, unsigned char *region,
                           const cfq_exec *exec)
{
    return cfq_fq_vars_and_region_typed(CFQ_FLOAT32, inputs, n, min, max, num_bits, narrow_range,
                                        outputs, region, exec);
}

int cfq_fq_args_and_region(const float *inputs, size_t n, float min, float max, int num_bits,
                           int narrow_range, float *outputs, unsigned char *region,
                           const cfq_exec *exec)
{
    return cfq_fq_args_and_region_typed(CFQ_FLOAT32, inputs, n, min, max, num_bits, narrow_range,
                                        outputs, region, exec);
}

int cfq_fq_region_grad(const float *gradients, const unsigned char *region, size_t n,
                       float *backprops_wrt_input, float *backprop_wrt_min,
                       float *backprop_wrt_max, const cfq_exec *exec)
{
    return cfq_fq_region_grad_typed(CFQ_FLOAT32, gradients, region, n, backprops_wrt_input,
                                    backprop_wrt_min, backprop_wrt_max, exec);
}
