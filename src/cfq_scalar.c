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

const cfq_kernels cfq_kernels_scalar = {
    "scalar",
    cfq_fq_vars_grad_scalar,
};
