/* test_support.c -- see test_support.h. */
#include <string.h>

#include "test_support.h"

long n_passed, n_failed;

uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}

void *line_aligned(void *p)
{
    return (char *)p + (64 - (uintptr_t)p % 64) % 64;
}

int table_runs(int isa)
{
    const cfq_kernels *tables[CFQ_ISA_COUNT] = {
        &cfq_kernels_scalar, &cfq_kernels_avx2, &cfq_kernels_avx512, &cfq_kernels_neon};
#ifdef CFQ_AVX512_EMULATED
    if (isa == CFQ_ISA_AVX512)
        return tables[isa]->vars_grad != NULL;
#endif
    return tables[isa]->vars_grad != NULL && cfq_isa_available(isa);
}

const cfq_kernels *table_of(int isa)
{
    switch (isa) {
    case CFQ_ISA_AVX2: return &cfq_kernels_avx2;
    case CFQ_ISA_AVX512: return &cfq_kernels_avx512;
    case CFQ_ISA_NEON: return &cfq_kernels_neon;
    default: return &cfq_kernels_scalar;
    }
}
