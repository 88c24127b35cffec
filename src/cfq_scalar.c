/*
 * cfq_scalar.c -- the reference kernels.  Plain C, one element at a time;
 * every SIMD file must produce the same bits as these functions.
 */
#include "cfq_internal.h"

static void cfq_fq_vars_grad_scalar(const float *g, const float *x, size_t n,
                                    const cfq_params *p, float *dx,
                                    double sums[2])
{
    cfq_lanes below, above;
    cfq_lanes_zero(&below);
    cfq_lanes_zero(&above);
    cfq_vars_grad_range(g, x, 0, n, p, dx, &below, &above);
    sums[0] = cfq_lanes_total(&below);
    sums[1] = cfq_lanes_total(&above);
}

static void cfq_fq_vars_scalar(const float *x, size_t n, const cfq_params *p, float *out)
{
    cfq_vars_forward_range(x, 0, n, p, out);
}

static void cfq_fq_args_scalar(const float *x, size_t n, const cfq_params *p, float *out)
{
    cfq_args_forward_range(x, 0, n, p, out);
}

static void cfq_fq_mask_grad_scalar(const float *g, const float *x, size_t n,
                                    const cfq_params *p, float *dx)
{
    cfq_mask_grad_range(g, x, 0, n, p, dx);
}

static void cfq_fq_pc_scalar(const float *x, size_t rows, size_t stride, size_t m,
                             const cfq_pc_params *pp, float *out)
{
    size_t r;
    for (r = 0; r < rows; r++)
        cfq_pc_forward_row(x + r * stride, 0, m, pp, out + r * stride);
}

static void cfq_fq_pc_grad_scalar(const float *g, const float *x, size_t rows, size_t stride,
                                  size_t m, const cfq_pc_params *pp, float *dx,
                                  cfq_pc_sums *acc)
{
    size_t r;
    for (r = 0; r < rows; r++)
        cfq_pc_grad_row(g + r * stride, x + r * stride, 0, m, pp, dx + r * stride, acc);
}

static void cfq_fq_vars_region_scalar(const float *x, size_t n, const cfq_params *p,
                                      float *out, unsigned char *region)
{
    cfq_region_forward_range(x, 0, n, p, out, region);
}

static int cfq_fq_region_grad_scalar(const float *g, const unsigned char *region, size_t n,
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
    "scalar",
    cfq_fq_vars_grad_scalar,
    cfq_fq_vars_scalar,
    cfq_fq_args_scalar,
    cfq_fq_mask_grad_scalar,
    cfq_fq_pc_scalar,
    cfq_fq_pc_grad_scalar,
    cfq_fq_vars_region_scalar,
    cfq_fq_region_grad_scalar,
};
