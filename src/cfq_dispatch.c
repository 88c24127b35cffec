/*
 * cfq_dispatch.c -- which kernel table runs: CPU detection (with the OS
 * support checks), the CFQ_ISA override, and the FP environment TF uses.
 * Built at the baseline ISA: nothing here may use AVX.
 */
#include <stdlib.h>
#include <string.h>

#include "cfq_internal.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define CFQ_X86 1
#include <xmmintrin.h>
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

#if defined(_WIN32)
#include <windows.h>
#else
#include <pthread.h>
#endif

static const cfq_kernels *const cfq_tables[CFQ_ISA_COUNT] = {
    &cfq_kernels_scalar, &cfq_kernels_avx2, &cfq_kernels_avx512, &cfq_kernels_neon,
};

/* ---- CPU detection ------------------------------------------------------ */

#ifdef CFQ_X86
static void cfq_cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
#if defined(_MSC_VER)
    int regs[4];
    __cpuidex(regs, (int)leaf, (int)sub);
    r[0] = (unsigned)regs[0]; r[1] = (unsigned)regs[1];
    r[2] = (unsigned)regs[2]; r[3] = (unsigned)regs[3];
#else
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

/* XCR0: which register states the OS saves on a context switch. */
static unsigned long long cfq_xgetbv0(void)
{
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    unsigned lo, hi;
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
#endif
}
#endif

/* 1 if the CPU and OS run this path (whether or not it is compiled in). */
static int cfq_cpu_runs(int isa)
{
    if (isa == CFQ_ISA_SCALAR)
        return 1;
#ifdef CFQ_X86
    {
        unsigned r[4], max_leaf, ebx7;
        unsigned long long xcr0;
        int osxsave_avx, f16c;
        cfq_cpuid(0, 0, r);
        max_leaf = r[0];
        cfq_cpuid(1, 0, r);
        osxsave_avx = ((r[2] >> 27) & 1u) && ((r[2] >> 28) & 1u);
        f16c = (r[2] >> 29) & 1u;
        if (!osxsave_avx || max_leaf < 7)
            return 0;
        xcr0 = cfq_xgetbv0();
        cfq_cpuid(7, 0, r);
        ebx7 = r[1];
        if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
            return 0;
        if (isa == CFQ_ISA_AVX2) /* with F16C, as every AVX2 CPU has */
            return ((ebx7 >> 5) & 1u) && f16c;
        if (isa == CFQ_ISA_AVX512) /* F, BW, VL, plus opmask and both ZMM states */
            return ((ebx7 >> 16) & 1u) && ((ebx7 >> 30) & 1u) && ((ebx7 >> 31) & 1u) &&
                   (xcr0 & 0xe0) == 0xe0;
        return 0;
    }
#elif defined(__aarch64__) || defined(_M_ARM64)
    return isa == CFQ_ISA_NEON;
#else
    return 0;
#endif
}

/* 1 if the CPU and OS run AVX512-BF16 (leaf 7, sub-leaf 1, EAX bit 5), on top
 * of the AVX-512 path. */
static int cfq_cpu_runs_bf16(void)
{
#ifdef CFQ_X86
    unsigned r[4];
    if (!cfq_cpu_runs(CFQ_ISA_AVX512))
        return 0;
    cfq_cpuid(7, 0, r);
    if (r[0] < 1) /* highest sub-leaf of leaf 7 */
        return 0;
    cfq_cpuid(7, 1, r);
    return (int)((r[0] >> 5) & 1u);
#else
    return 0;
#endif
}

/* ---- The active path, resolved once ------------------------------------- */

/* Filled once by cfq_resolve_once(): CPUID can cost microseconds under a
 * hypervisor, so it must never run per call. */
static int cfq_runnable[CFQ_ISA_COUNT];
static int cfq_bf16_runnable;
static int cfq_active = CFQ_ISA_SCALAR;
static int cfq_env_status = CFQ_OK;
static void cfq_init(void);

int cfq_isa_available(int isa)
{
    if (isa < 0 || isa >= CFQ_ISA_COUNT)
        return 0;
    cfq_init();
    return cfq_runnable[isa];
}

const char *cfq_isa_name(int isa)
{
    if (isa < 0 || isa >= CFQ_ISA_COUNT)
        return NULL;
    return cfq_tables[isa]->name;
}

int cfq_isa_from_name(const char *name)
{
    int isa;
    if (name == NULL)
        return CFQ_EISA_UNKNOWN;
    for (isa = 0; isa < CFQ_ISA_COUNT; isa++)
        if (strcmp(name, cfq_tables[isa]->name) == 0)
            return isa;
    return CFQ_EISA_UNKNOWN;
}

static void cfq_resolve_once(void)
{
    static const int preference[] = {CFQ_ISA_AVX512, CFQ_ISA_AVX2, CFQ_ISA_NEON};
    const char *forced = getenv("CFQ_ISA");
    size_t k;
    int isa;

    for (isa = 0; isa < CFQ_ISA_COUNT; isa++)
        cfq_runnable[isa] = cfq_tables[isa]->vars_grad != NULL && cfq_cpu_runs(isa);
    cfq_bf16_runnable = cfq_cpu_runs_bf16();
    cfq_active = CFQ_ISA_SCALAR;
    for (k = 0; k < sizeof preference / sizeof preference[0]; k++) {
        if (cfq_runnable[preference[k]]) {
            cfq_active = preference[k];
            break;
        }
    }
    if (forced != NULL && forced[0] != '\0' && strcmp(forced, "auto") != 0) {
        isa = cfq_isa_from_name(forced);
        if (isa < 0)
            cfq_env_status = CFQ_EISA_UNKNOWN;
        else if (!cfq_runnable[isa])
            cfq_env_status = CFQ_EISA_UNAVAILABLE;
        else
            cfq_active = isa;
    }
}

#if defined(_WIN32)
static INIT_ONCE cfq_once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK cfq_resolve_once_win(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once; (void)param; (void)ctx;
    cfq_resolve_once();
    return TRUE;
}
static void cfq_init(void)
{
    InitOnceExecuteOnce(&cfq_once, cfq_resolve_once_win, NULL, NULL);
}
#else
static pthread_once_t cfq_once = PTHREAD_ONCE_INIT;
static void cfq_init(void)
{
    pthread_once(&cfq_once, cfq_resolve_once);
}
#endif

int cfq_active_isa(void)
{
    cfq_init();
    return cfq_active;
}

int cfq_isa_env_status(void)
{
    cfq_init();
    return cfq_env_status;
}

int cfq_kernel_dtype(const cfq_kernels *k, int dtype)
{
    if (dtype == CFQ_FLOAT32 || dtype == CFQ_FLOAT16)
        return dtype;
    if (dtype != CFQ_BFLOAT16)
        return -1;
    cfq_init();
    return k->bf16_native && cfq_bf16_runnable ? CFQ_BFLOAT16_NATIVE : CFQ_BFLOAT16;
}

const cfq_kernels *cfq_resolve(const cfq_exec *exec, int *err)
{
    int isa = exec != NULL ? exec->isa : CFQ_ISA_AUTO;
    if (isa == CFQ_ISA_AUTO)
        return cfq_tables[cfq_active_isa()];
    if (isa < 0 || isa >= CFQ_ISA_COUNT) {
        *err = CFQ_EISA_UNKNOWN;
        return NULL;
    }
    if (!cfq_isa_available(isa)) {
        *err = CFQ_EISA_UNAVAILABLE;
        return NULL;
    }
    return cfq_tables[isa];
}

/* ---- FP environment ----------------------------------------------------- */

/* The FP control register: MXCSR on x86, FPCR on AArch64, 0 elsewhere. */
unsigned long long cfq_fp_control(void)
{
#ifdef CFQ_X86
    return _mm_getcsr();
#elif defined(__aarch64__) && defined(__GNUC__)
    unsigned long long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
#else
    return 0;
#endif
}

void cfq_fpenv_enter(cfq_fpenv *env)
{
    env->saved = cfq_fp_control();
#ifdef CFQ_X86
    /* FTZ (bit 15) | DAZ (bit 6) | all exceptions masked; round to nearest. */
    _mm_setcsr(0x9fc0u);
#elif defined(__aarch64__) && defined(__GNUC__)
    {
        /* FZ (bit 24) on; round to nearest (bits 22-23), no default NaN (bit
         * 25), no trap enables (bits 8-12, 15), FZ16 (bit 19) off: float16
         * conversions keep subnormals, as NumPy's do. */
        unsigned long long fpcr = env->saved;
        fpcr &= ~((3ull << 22) | (1ull << 25) | (1ull << 19) | 0x9f00ull);
        fpcr |= 1ull << 24;
        __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
    }
#else
    /* No portable way to flush denormals: results match TF except where a
     * denormal appears.  Documented in the README. */
#endif
}

void cfq_fpenv_leave(const cfq_fpenv *env)
{
#ifdef CFQ_X86
    _mm_setcsr((unsigned)env->saved);
#elif defined(__aarch64__) && defined(__GNUC__)
    __asm__ __volatile__("msr fpcr, %0" : : "r"(env->saved));
#else
    (void)env;
#endif
}
