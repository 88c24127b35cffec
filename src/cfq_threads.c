/*
 * cfq_threads.c -- a small persistent thread pool for the elementwise ops.
 *
 * A call splits its work into tasks and runs them on up to `threads`
 * threads (the caller included).  Results never depend on how tasks land on
 * threads: tasks write disjoint outputs, and sums are kept per fixed-size
 * chunk and combined in chunk order by the caller.  One job runs at a time;
 * a call that finds the pool busy runs its tasks on its own thread.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include <stdlib.h>

#include "cfq_internal.h"

#if defined(_WIN32)
#include <windows.h>
typedef SRWLOCK cfq_mutex;
typedef CONDITION_VARIABLE cfq_cond;
#define CFQ_MUTEX_INIT SRWLOCK_INIT
#define CFQ_COND_INIT CONDITION_VARIABLE_INIT
static void cfq_lock(cfq_mutex *m) { AcquireSRWLockExclusive(m); }
static void cfq_unlock(cfq_mutex *m) { ReleaseSRWLockExclusive(m); }
static int cfq_trylock(cfq_mutex *m) { return TryAcquireSRWLockExclusive(m) != 0; }
static void cfq_wait(cfq_cond *c, cfq_mutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static void cfq_signal_all(cfq_cond *c) { WakeAllConditionVariable(c); }
static void cfq_cond_init(cfq_cond *c) { InitializeConditionVariable(c); }
#else
#include <pthread.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif
typedef pthread_mutex_t cfq_mutex;
typedef pthread_cond_t cfq_cond;
#define CFQ_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define CFQ_COND_INIT PTHREAD_COND_INITIALIZER
static void cfq_lock(cfq_mutex *m) { pthread_mutex_lock(m); }
static void cfq_unlock(cfq_mutex *m) { pthread_mutex_unlock(m); }
static void cfq_pool_reset_after_fork(void);
static int cfq_trylock(cfq_mutex *m) { return pthread_mutex_trylock(m) == 0; }
static void cfq_wait(cfq_cond *c, cfq_mutex *m) { pthread_cond_wait(c, m); }
static void cfq_signal_all(cfq_cond *c) { pthread_cond_broadcast(c); }
static void cfq_cond_init(cfq_cond *c) { pthread_cond_init(c, NULL); }
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <emmintrin.h>
static void cfq_pause(void) { _mm_pause(); }
#else
static void cfq_pause(void) {}
#endif

/* Rounds of (unlock, pause, lock) a thread waits before it sleeps: about
 * 100-200 us.  A sleeping thread can take tens of microseconds to wake
 * (65 us for a condition-variable round trip on the VMs this was tuned on),
 * as long as a whole 1M-element call; back-to-back calls should not pay it. */
#define CFQ_SPIN_ROUNDS 4000

/* Processors this process may run on (its affinity mask where the OS has
 * one: taskset, cpusets), or a large number when unknown. */
static int cfq_online_cpus(void)
{
    long n = 0;
#if defined(_WIN32)
    DWORD_PTR process_mask, system_mask;
    if (GetProcessAffinityMask(GetCurrentProcess(), &process_mask, &system_mask))
        for (; process_mask != 0; process_mask &= process_mask - 1)
            n++;
#else
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
#endif
#if defined(_SC_NPROCESSORS_ONLN)
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
#endif
    return n > 0 && n < CFQ_MAX_THREADS ? (int)n : CFQ_MAX_THREADS;
}

/* Waits, the pool lock held, until *value differs from `from`: spinning
 * `spin` rounds first, then sleeping on `cond` with *sleeping set. */
static void cfq_wait_change(volatile unsigned long *value, unsigned long from, int spin,
                            cfq_cond *cond, int *sleeping);

/* Held by the one caller whose job is in the pool. */
static cfq_mutex cfq_job_lock = CFQ_MUTEX_INIT;

/* Everything below is guarded by cfq_pool_lock. */
static cfq_mutex cfq_pool_lock = CFQ_MUTEX_INIT;
static cfq_cond cfq_work_done = CFQ_COND_INIT;
static int cfq_caller_sleeping;
/* One wake-up condition per worker, so a job wakes only the workers it
 * uses: a pool once grown wide (threads=64) must not make every later
 * narrow call wake, or spin against, the idle ones. */
static cfq_cond cfq_work_ready[CFQ_MAX_THREADS];
static int cfq_worker_sleeping[CFQ_MAX_THREADS];
static int cfq_workers;            /* threads started so far */
static int cfq_cpus;               /* processors we may use, read at first use */
static int cfq_conds_made;         /* cfq_work_ready[0..cfq_conds_made-1] are initialised */
static volatile unsigned long cfq_job_id;   /* bumped for every job */
static int cfq_job_helpers;        /* workers 0..cfq_job_helpers-1 take part */
static volatile unsigned long cfq_job_pending; /* helpers not finished with the job */
static cfq_task_fn cfq_job_fn;
static void *cfq_job_ctx;
static size_t cfq_job_tasks, cfq_job_next;

/* Runs tasks until none is left; called with the pool lock held. */
static void cfq_take_tasks(void)
{
    while (cfq_job_next < cfq_job_tasks) {
        const size_t task = cfq_job_next++;
        cfq_task_fn fn = cfq_job_fn;
        void *ctx = cfq_job_ctx;
        cfq_unlock(&cfq_pool_lock);
        fn(ctx, task);
        cfq_lock(&cfq_pool_lock);
    }
}

static void cfq_wait_change(volatile unsigned long *value, unsigned long from, int spin,
                            cfq_cond *cond, int *sleeping)
{
    int spins = 0;
    while (*value == from) {
        if (spins++ < spin) {
            cfq_unlock(&cfq_pool_lock);
            cfq_pause();
            cfq_lock(&cfq_pool_lock);
        } else {
            *sleeping = 1;
            cfq_wait(cond, &cfq_pool_lock);
            *sleeping = 0;
        }
    }
}

/* A worker starts with seen = 0 < cfq_job_id, so it joins the job it was
 * started for.  Only a worker that took part in the last job and has a
 * processor of its own (the caller has one too) spins for the next one; the
 * others sleep until a job that uses them signals them, so neither an idle
 * wide pool nor an oversubscribed one burns the cores the work needs. */
static void cfq_worker_loop(int index)
{
    unsigned long seen = 0;
    int took_part = 1;
    cfq_lock(&cfq_pool_lock);
    for (;;) {
        int spin = took_part && index + 1 < cfq_cpus;
        cfq_wait_change(&cfq_job_id, seen, spin ? CFQ_SPIN_ROUNDS : 0,
                        &cfq_work_ready[index], &cfq_worker_sleeping[index]);
        seen = cfq_job_id;
        took_part = index < cfq_job_helpers;
        if (!took_part)
            continue;
        /* Each worker runs the FP environment the kernels need. */
        {
            cfq_fpenv env;
            cfq_fpenv_enter(&env);
            cfq_take_tasks();
            cfq_fpenv_leave(&env);
        }
        if (--cfq_job_pending == 0 && cfq_caller_sleeping)
            cfq_signal_all(&cfq_work_done);
    }
}

#if defined(_WIN32)
static DWORD WINAPI cfq_worker_main(LPVOID arg)
{
    cfq_worker_loop((int)(size_t)arg);
    return 0;
}
static int cfq_start_worker(int index)
{
    HANDLE h = CreateThread(NULL, 0, cfq_worker_main, (LPVOID)(size_t)index, 0, NULL);
    if (h == NULL)
        return 0;
    CloseHandle(h);
    return 1;
}
#else
static void *cfq_worker_main(void *arg)
{
    cfq_worker_loop((int)(size_t)arg);
    return NULL;
}
static int cfq_start_worker(int index)
{
    pthread_t t;
    pthread_attr_t attr;
    int ok;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &attr, cfq_worker_main, (void *)(size_t)index) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}
#endif

#if !defined(_WIN32)
/* A forked child has none of the parent's workers: start from scratch. */
static void cfq_pool_reset_after_fork(void)
{
    pthread_mutex_init(&cfq_job_lock, NULL);
    pthread_mutex_init(&cfq_pool_lock, NULL);
    pthread_cond_init(&cfq_work_done, NULL);
    cfq_caller_sleeping = 0;
    cfq_conds_made = 0;
    cfq_workers = 0;
    cfq_job_pending = 0;
}
static pthread_once_t cfq_atfork_once = PTHREAD_ONCE_INIT;
static void cfq_register_atfork(void)
{
    pthread_atfork(NULL, NULL, cfq_pool_reset_after_fork);
}
#endif

void cfq_parallel_for(int threads, size_t tasks, cfq_task_fn fn, void *ctx)
{
    size_t t;
    int w, helpers = threads - 1;

    if ((size_t)helpers > tasks - (tasks > 0))
        helpers = (int)(tasks > 0 ? tasks - 1 : 0);
    if (helpers <= 0 || !cfq_trylock(&cfq_job_lock)) {
        for (t = 0; t < tasks; t++)
            fn(ctx, t);
        return;
    }
#if !defined(_WIN32)
    pthread_once(&cfq_atfork_once, cfq_register_atfork);
#endif
    cfq_lock(&cfq_pool_lock);
    if (cfq_cpus == 0)
        cfq_cpus = cfq_online_cpus();
    while (cfq_workers < helpers) {
        if (cfq_conds_made <= cfq_workers) { /* a failed start leaves it made */
            cfq_cond_init(&cfq_work_ready[cfq_workers]);
            cfq_conds_made = cfq_workers + 1;
        }
        cfq_worker_sleeping[cfq_workers] = 0;
        if (!cfq_start_worker(cfq_workers))
            break;
        cfq_workers++;
    }
    if (helpers > cfq_workers)
        helpers = cfq_workers; /* could not start more: fewer helpers */
    cfq_job_fn = fn;
    cfq_job_ctx = ctx;
    cfq_job_tasks = tasks;
    cfq_job_next = 0;
    cfq_job_helpers = helpers;
    cfq_job_pending = (unsigned long)helpers;
    cfq_job_id++;
    for (w = 0; w < helpers; w++)
        if (cfq_worker_sleeping[w])
            cfq_signal_all(&cfq_work_ready[w]);
    cfq_take_tasks();
    while (cfq_job_pending > 0)
        cfq_wait_change(&cfq_job_pending, cfq_job_pending, CFQ_SPIN_ROUNDS, &cfq_work_done,
                        &cfq_caller_sleeping);
    cfq_unlock(&cfq_pool_lock);
    cfq_unlock(&cfq_job_lock);
}

void cfq_flag_set(int *flag)
{
#if defined(_MSC_VER)
    _InterlockedExchange((volatile long *)flag, 1);
#else
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
#endif
}
