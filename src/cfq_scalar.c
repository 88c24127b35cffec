/*
 * cfq_scalar.c -- the reference kernels: plain C, one element at a time,
 * each a loop over cfq_reference.h.  Every SIMD path must produce the same
 * bits as these functions.  Each kernel switches once on the dtype, so the
 * loops are compiled for each element type (CFQ_BFLOAT16_NATIVE is
 * bfloat16 here: its conversion is written out).
 */
#include "cfq_reference.h"

CFQ_INLINE void cfq_vars_grad_of(int dt, const void *g, const void *x, size_t n,
                                 const cfq_params *p, void *dx, double sums[2])
{
    cfq_lanes below, above;
    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    cfq_vars_grad_range(dt, g, x, 0, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

static void cfq_vars_grad(const void *g, const void *x, size_t n, const cfq_params *p, void *dx,
                          double sums[2])
{
    switch (p->dtype) {
    case CFQ_FLOAT32: cfq_vars_grad_of(CFQ_FLOAT32, g, x, n, p, dx, sums); break;
    case CFQ_FLOAT16: cfq_vars_grad_of(CFQ_FLOAT16, g, x, n, p, dx, sums); break;
    default: cfq_vars_grad_of(CFQ_BFLOAT16, g, x, n, p, dx, sums); break;
    }
}

CFQ_INLINE int cfq_region_grad_of(int dt, const void *g, const unsigned char *region, size_t n,
                                  const cfq_params *p, void *dx, double sums[2])
{
    cfq_lanes below, above;
    int bad;
    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    bad = cfq_region_grad_range(dt, g, region, 0, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
    return bad;
}

static int cfq_region_grad(const void *g, const unsigned char *region, size_t n,
                           const cfq_params *p, void *dx, double sums[2])
{
    switch (p->dtype) {
    case CFQ_FLOAT32: return cfq_region_grad_of(CFQ_FLOAT32, g, region, n, p, dx, sums);
    case CFQ_FLOAT16: return cfq_region_grad_of(CFQ_FLOAT16, g, region, n, p, dx, sums);
    default: return cfq_region_grad_of(CFQ_BFLOAT16, g, region, n, p, dx, sums);
    }
}

static void cfq_vars_forward(const void *x, size_t n, const cfq_params *p, void *out,
                             unsigned char *region)
{
    switch (p->dtype) {
    case CFQ_FLOAT32: cfq_forward_range(CFQ_FLOAT32, 1, x, 0, n, p, out, region); break;
    case CFQ_FLOAT16: cfq_forward_range(CFQ_FLOAT16, 1, x, 0, n, p, out, region); break;
    default: cfq_forward_range(CFQ_BFLOAT16, 1, x, 0, n, p, out, region); break;
    }
}

static void cfq_args_forward(const void *x, size_t n, const cfq_params *p, void *out,
                             unsigned char *region)
{
    switch (p->dtype) {
    case CFQ_FLOAT32: cfq_forward_range(CFQ_FLOAT32, 0, x, 0, n, p, out, region); break;
    case CFQ_FLOAT16: cfq_forward_range(CFQ_FLOAT16, 0, x, 0, n, p, out, region); break;
    default: cfq_forward_range(CFQ_BFLOAT16, 0, x, 0, n, p, out, region); break;
    }
}

static void cfq_args_grad(const void *g, const void *x, size_t n, const cfq_params *p, void *dx)
{
    switch (p->dtype) {
    case CFQ_FLOAT32: cfq_args_grad_range(CFQ_FLOAT32, g, x, 0, n, p, dx); break;
    case CFQ_FLOAT16: cfq_args_grad_range(CFQ_FLOAT16, g, x, 0, n, p, dx); break;
    default: cfq_args_grad_range(CFQ_BFLOAT16, g, x, 0, n, p, dx); break;
    }
}

CFQ_INLINE void cfq_per_channel_forward_of(int dt, const void *x, size_t rows, size_t stride,
                                           size_t m, const cfq_channel_params *cp, void *out,
                                           unsigned char *region)
{
    size_t r;
    for (r = 0; r < rows; r++)
        cfq_per_channel_forward_row(dt, cfq_in(dt, x, r * stride), 0, m, cp,
                                    cfq_out(dt, out, r * stride),
                                    region != NULL ? region + r * stride : NULL);
}

static void cfq_per_channel_forward(const void *x, size_t rows, size_t stride, size_t m,
                                    const cfq_channel_params *cp, void *out,
                                    unsigned char *region)
{
    switch (cp->dtype) {
    case CFQ_FLOAT32: cfq_per_channel_forward_of(CFQ_FLOAT32, x, rows, stride, m, cp, out, region); break;
    case CFQ_FLOAT16: cfq_per_channel_forward_of(CFQ_FLOAT16, x, rows, stride, m, cp, out, region); break;
    default: cfq_per_channel_forward_of(CFQ_BFLOAT16, x, rows, stride, m, cp, out, region); break;
    }
}

CFQ_INLINE void cfq_per_channel_grad_of(int dt, const void *g, const void *x, size_t rows,
                                        size_t stride, size_t m, const cfq_channel_params *cp,
                                        void *dx, cfq_channel_sums *acc)
{
    size_t r;
    for (r = 0; r < rows; r++) {
        cfq_per_channel_grad_row(dt, cfq_in(dt, g, r * stride), cfq_in(dt, x, r * stride), 0, m,
                                 cp, cfq_out(dt, dx, r * stride), acc);
        if (cfq_stretch_end(r))
            cfq_channel_sums_flush(acc, 0, m);
    }
}

static void cfq_per_channel_grad(const void *g, const void *x, size_t rows, size_t stride,
                                 size_t m, const cfq_channel_params *cp, void *dx,
                                 cfq_channel_sums *acc)
{
    switch (cp->dtype) {
    case CFQ_FLOAT32: cfq_per_channel_grad_of(CFQ_FLOAT32, g, x, rows, stride, m, cp, dx, acc); break;
    case CFQ_FLOAT16: cfq_per_channel_grad_of(CFQ_FLOAT16, g, x, rows, stride, m, cp, dx, acc); break;
    default: cfq_per_channel_grad_of(CFQ_BFLOAT16, g, x, rows, stride, m, cp, dx, acc); break;
    }
}

CFQ_INLINE int cfq_per_channel_region_grad_of(int dt, const void *g, const unsigned char *region,
                                              size_t rows, size_t stride, size_t m,
                                              const cfq_channel_params *cp, void *dx,
                                              cfq_channel_sums *acc)
{
    size_t r;
    int bad = 0;
    for (r = 0; r < rows; r++) {
        bad |= cfq_per_channel_region_grad_row(dt, cfq_in(dt, g, r * stride), region + r * stride, 0,
                                               m, cp, cfq_out(dt, dx, r * stride), acc);
        if (cfq_stretch_end(r))
            cfq_channel_sums_flush(acc, 0, m);
    }
    return bad;
}

static int cfq_per_channel_region_grad(const void *g, const unsigned char *region, size_t rows,
                                       size_t stride, size_t m, const cfq_channel_params *cp,
                                       void *dx, cfq_channel_sums *acc)
{
    switch (cp->dtype) {
    case CFQ_FLOAT32: return cfq_per_channel_region_grad_of(CFQ_FLOAT32, g, region, rows, stride, m, cp, dx, acc);
    case CFQ_FLOAT16: return cfq_per_channel_region_grad_of(CFQ_FLOAT16, g, region, rows, stride, m, cp, dx, acc);
    default: return cfq_per_channel_region_grad_of(CFQ_BFLOAT16, g, region, rows, stride, m, cp, dx, acc);
    }
}

static void cfq_channel_nudge(const float *min, const float *max, size_t m, int num_bits,
                               int narrow_range, cfq_channel_params *cp)
{
    cp->offset_exact = cfq_channel_params_range(min, max, 0, m, num_bits, narrow_range, cp);
}

const cfq_kernels cfq_kernels_scalar = {
    .name = "scalar",
    .vars_grad = cfq_vars_grad,
    .region_grad = cfq_region_grad,
    .vars_forward = cfq_vars_forward,
    .args_forward = cfq_args_forward,
    .args_grad = cfq_args_grad,
    .per_channel_forward = cfq_per_channel_forward,
    .per_channel_grad = cfq_per_channel_grad,
    .per_channel_region_grad = cfq_per_channel_region_grad,
    .channel_nudge = cfq_channel_nudge,
};
