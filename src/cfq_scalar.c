/*
 * cfq_scalar.c -- the reference kernels: plain C, one element at a time,
 * each a loop over cfq_reference.h.  Every SIMD path must produce the same
 * bits as these functions.
 */
#include "cfq_reference.h"

static void cfq_vars_grad(const float *g, const float *x, size_t n, const cfq_params *p,
                          float *dx, double sums[2])
{
    cfq_lanes below, above;
    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    cfq_vars_grad_range(g, x, 0, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

static void cfq_vars_forward(const float *x, size_t n, const cfq_params *p, float *out)
{
    cfq_vars_forward_range(x, 0, n, p, out);
}

static void cfq_args_forward(const float *x, size_t n, const cfq_params *p, float *out)
{
    cfq_args_forward_range(x, 0, n, p, out);
}

static void cfq_args_grad(const float *g, const float *x, size_t n, const cfq_params *p,
                          float *dx)
{
    cfq_args_grad_range(g, x, 0, n, p, dx);
}

static void cfq_per_channel_forward(const float *x, size_t rows, size_t stride, size_t m,
                                    const cfq_channel_params *cp, float *out)
{
    size_t r;
    for (r = 0; r < rows; r++)
        cfq_per_channel_forward_row(x + r * stride, 0, m, cp, out + r * stride);
}

static void cfq_per_channel_grad(const float *g, const float *x, size_t rows, size_t stride,
                                 size_t m, const cfq_channel_params *cp, float *dx,
                                 cfq_channel_sums *acc)
{
    size_t r;
    for (r = 0; r < rows; r++)
        cfq_per_channel_grad_row(g + r * stride, x + r * stride, 0, m, cp, dx + r * stride, acc);
}

static void cfq_region_forward(const float *x, size_t n, const cfq_params *p, float *out,
                               unsigned char *region)
{
    cfq_region_forward_range(x, 0, n, p, out, region);
}

static int cfq_region_grad(const float *g, const unsigned char *region, size_t n,
                           const cfq_params *p, float *dx, double sums[2])
{
    cfq_lanes below, above;
    int bad;
    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    bad = cfq_region_grad_range(g, region, 0, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
    return bad;
}

const cfq_kernels cfq_kernels_scalar = {
    .name = "scalar",
    .vars_grad = cfq_vars_grad,
    .vars_forward = cfq_vars_forward,
    .args_forward = cfq_args_forward,
    .args_grad = cfq_args_grad,
    .per_channel_forward = cfq_per_channel_forward,
    .per_channel_grad = cfq_per_channel_grad,
    .region_forward = cfq_region_forward,
    .region_grad = cfq_region_grad,
};
