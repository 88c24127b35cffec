/*
 * test_support.h -- what the C test files share: the check counters, bit
 * views, a deterministic random source and the kernel tables this process
 * runs.
 */
#ifndef CFQ_TEST_SUPPORT_H
#define CFQ_TEST_SUPPORT_H

#include <stdint.h>
#include <stdio.h>

#include "cfq_reference.h"

extern long n_passed, n_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            n_passed++;                                                    \
        } else {                                                           \
            n_failed++;                                                    \
            if (n_failed <= 20) {                                          \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                \
                printf(__VA_ARGS__);                                       \
                printf("\n");                                              \
            }                                                              \
        }                                                                  \
    } while (0)

uint32_t bits_of(float f);
float float_of(uint32_t u);
uint64_t rng_next(void);
float rng_uniform(float lo, float hi);
/* The first 64-byte boundary at or after p (p's buffer has 63 bytes to spare). */
void *line_aligned(void *p);
/* Tables this process can run: the dispatcher's available ones, plus the
 * AVX-512 table when it is built on SIMDe's emulation. */
int table_runs(int isa);
const cfq_kernels *table_of(int isa);

/* test_half.c */
void test_half_dtypes(void);

#endif /* CFQ_TEST_SUPPORT_H */
