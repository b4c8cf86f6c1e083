/* The host half of wasm-rt for compiled modules, and the life of one
 * instance: linear memory behind guard pages, traps, and the CPU and wall
 * limits.
 *
 * Why not Debian's libwasm-rt-impl.a (wabt 1.0.32): its trap target is one
 * process-wide jmp_buf (concurrent requests on several threads would jump
 * into each other), wasm_rt_free_memory unmaps only the used part of the
 * 8 GiB reservation (every request would leak address space), an mmap
 * failure aborts the process, and it knows no memory cap. The generated
 * code needs only the small API of <wasm-rt.h>, implemented here per
 * thread.
 *
 * Memory: like wasm-rt's signal-handler mode, each instance reserves
 * 8 GiB + 64 KiB of PROT_NONE address space, enough to cover any 32-bit
 * address plus 32-bit offset, and makes only its current pages accessible;
 * the generated code then needs no bounds checks, and an out-of-bounds
 * access faults on the guard pages. The fault handler turns a fault inside
 * the module's code into a trap (OOB when the address is in the
 * reservation, stack exhaustion when it is in the thread's stack guard).
 *
 * Limits: two POSIX timers per thread, one on the thread's CPU clock and
 * one on the monotonic clock, armed for each run, deliver a real-time
 * signal to the running thread itself (SIGEV_THREAD_ID). If the signal
 * lands in the module's machine code, the handler jumps out at once: the
 * guest holds no host locks and its state is thrown away. If it lands in
 * host code (a WASI call, libc, malloc), jumping would break the host, so
 * it only records the expiry; the timers then re-fire every millisecond
 * until one lands in guest code, the next WASI call traps on the record,
 * and the one blocking host call (poll_oneoff) checks it itself. This
 * costs nothing inside guest code (no instrumented loops) and four
 * timer_settime calls per request (1.7 us measured here, of about 19 us
 * for a whole small request). The rejected alternatives: a pre-forked
 * child per request isolates host crashes too, but a process hop per
 * request (fork + wait alone measured 110-400 us here) costs more than
 * the request; counters inserted into the generated
 * loops slow the hot code that this tier exists for. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "wasm/internal.h"

/* 2^32 addresses + 2^32 offset, and a page for the widest access past it. */
#define RESERVE_LEN (((size_t)1 << 33) + WASM_PAGE)
#define MAX_PAGES 65535u          /* keeps `size` within wasm-rt's uint32_t */
#define MAX_TABLE (1u << 20)      /* elements: a table is host memory */
#define REFIRE_NS 1000000         /* re-fire period after a limit expired */
#define STACK_GUARD_SLACK (1u << 20)
#define ZERO_IN_PLACE_MAX ((size_t)1 << 20) /* see rt_free_memory */

static __thread wasm__run *tls_run; /* the run on this thread, for the signal handlers */

/* What a thread that runs instances keeps between runs; released by
 * thread_exit when the thread ends. */
typedef struct thread_state {
    bool ready;
    uintptr_t stack_lo;     /* lowest address of this thread's stack */
    void *altstack;         /* ours, when the thread had none */
    size_t altstack_len;
    timer_t cpu, wall;      /* the limits, armed per run */
    uint8_t *spare;         /* a reservation kept for the next instance */
} thread_state;
static __thread thread_state tls;
static pthread_key_t exit_key;

static struct sigaction old_segv, old_bus;
static volatile int timer_signal;

/* ---- wasm-rt: traps ---------------------------------------------------- */

_Noreturn void wasm__trap(wasm__run *r, wasm_trap t)
{
    r->trap = t;
    siglongjmp(r->jmp, 1);
}

static void rt_trap(int code)
{
    wasm_trap t;
    switch ((wasm_rt_trap_t)code) {
    case WASM_RT_TRAP_OOB: t = WASM_TRAP_OOB; break;
    case WASM_RT_TRAP_INT_OVERFLOW: t = WASM_TRAP_INT_OVERFLOW; break;
    case WASM_RT_TRAP_DIV_BY_ZERO: t = WASM_TRAP_DIV_BY_ZERO; break;
    case WASM_RT_TRAP_INVALID_CONVERSION: t = WASM_TRAP_INVALID_CONVERSION; break;
    case WASM_RT_TRAP_CALL_INDIRECT: t = WASM_TRAP_CALL_INDIRECT; break;
    case WASM_RT_TRAP_EXHAUSTION: t = WASM_TRAP_EXHAUSTION; break;
    default: t = WASM_TRAP_UNREACHABLE; break;
    }
    wasm__trap(tls_run, t);
}

/* ---- wasm-rt: function types ------------------------------------------- */

/* Signatures shared by every module in the process, so that call_indirect
 * compares small integers. Registered when a module is loaded. */
typedef struct func_type {
    uint32_t nparams, nresults;
    wasm_rt_type_t *types; /* owned, nparams + nresults */
} func_type;

static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static func_type *types;
static uint32_t ntypes, types_cap;

static uint32_t rt_register_func_type(uint32_t np, uint32_t nr, const wasm_rt_type_t *t)
{
    size_t n = (size_t)np + nr;
    pthread_mutex_lock(&types_lock);
    uint32_t i;
    for (i = 0; i < ntypes; i++)
        if (types[i].nparams == np && types[i].nresults == nr &&
            memcmp(types[i].types, t, n * sizeof *t) == 0)
            goto done;
    if (ntypes == types_cap) {
        types_cap = types_cap ? types_cap * 2 : 64;
        types = xrealloc(types, types_cap * sizeof *types);
    }
    types[i].nparams = np;
    types[i].nresults = nr;
    types[i].types = xmalloc(n ? n * sizeof *t : 1);
    memcpy(types[i].types, t, n * sizeof *t);
    ntypes++;
done:
    pthread_mutex_unlock(&types_lock);
    return i + 1;
}

/* ---- wasm-rt: memory --------------------------------------------------- */

static void rt_allocate_memory(wasm_rt_memory_t *m, uint32_t initial, uint32_t max)
{
    wasm__run *r = tls_run;
    uint32_t cap = r->cfg->limits.memory_pages;
    if (cap > MAX_PAGES)
        cap = MAX_PAGES;
    memset(m, 0, sizeof *m);
    if (max > cap)
        max = cap;
    if (initial > max) {
        log_warn("wasm[%s]: module needs %u pages of memory, the limit is %u", r->cfg->tenant,
                 initial, max);
        wasm__trap(r, WASM_TRAP_MEMORY_LIMIT);
    }
    if (r->reserve)
        wasm__trap(r, WASM_TRAP_HOST); /* a second memory: multi-memory is not enabled */
    void *p = tls.spare;
    tls.spare = NULL;
    if (!p)
        p = mmap(NULL, RESERVE_LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        log_error("wasm[%s]: reserve linear memory: %s", r->cfg->tenant, strerror(errno));
        wasm__trap(r, WASM_TRAP_HOST);
    }
    if (initial && mprotect(p, (size_t)initial * WASM_PAGE, PROT_READ | PROT_WRITE) != 0) {
        munmap(p, RESERVE_LEN); /* never back to tls.spare: its state is unknown */
        wasm__trap(r, WASM_TRAP_HOST);
    }
    r->reserve = p;
    r->reserve_len = RESERVE_LEN;
    r->mem = m;
    m->data = p;
    m->pages = initial;
    m->max_pages = max;
    m->size = initial * WASM_PAGE;
}

static uint32_t rt_grow_memory(wasm_rt_memory_t *m, uint32_t delta)
{
    uint64_t old = m->pages, pages = old + delta;
    if (pages > m->max_pages) {
        tls_run->memory_denied = true;
        return UINT32_MAX;
    }
    if (delta && mprotect(m->data + old * WASM_PAGE, (size_t)delta * WASM_PAGE,
                          PROT_READ | PROT_WRITE) != 0)
        return UINT32_MAX;
    m->pages = (uint32_t)pages;
    m->size = (uint32_t)(pages * WASM_PAGE);
    return (uint32_t)old;
}

/* Unmapping 8 GiB costs more than the rest of a small request (the kernel
 * walks the page tables of the whole range), so each thread keeps one
 * reservation for its next instance: its pages are dropped (they read as
 * zero again, nothing survives into the next request), or zeroed in place
 * when the memory is small (up to 1 MiB: cheaper than the next instance's
 * page faults), and made inaccessible again. */
static void rt_free_memory(wasm_rt_memory_t *m)
{
    if (!m->data)
        return;
    size_t used = (size_t)m->pages * WASM_PAGE;
    /* A small memory is zeroed in place rather than dropped: its pages stay
     * resident, so the next instance takes no page faults on them. */
    bool zeroed = !tls.spare && used <= ZERO_IN_PLACE_MAX;
    if (zeroed)
        memset(m->data, 0, used);
    if (!tls.spare && (zeroed || madvise(m->data, used, MADV_DONTNEED) == 0) &&
        mprotect(m->data, used, PROT_NONE) == 0)
        tls.spare = m->data;
    else
        munmap(m->data, RESERVE_LEN);
    wasm__run *r = tls_run;
    if (r && r->reserve == m->data) {
        r->reserve = NULL;
        r->mem = NULL;
    }
    m->data = NULL;
}

/* ---- wasm-rt: tables --------------------------------------------------- */

static void *table_alloc(uint32_t elements, size_t elem_size)
{
    if (elements > MAX_TABLE)
        wasm__trap(tls_run, WASM_TRAP_MEMORY_LIMIT);
    return xcalloc(elements ? elements : 1, elem_size);
}

static void rt_allocate_funcref_table(wasm_rt_funcref_table_t *t, uint32_t elements, uint32_t max)
{
    t->data = NULL;
    t->data = table_alloc(elements, sizeof *t->data);
    t->size = elements;
    t->max_size = max;
}

static void rt_free_funcref_table(wasm_rt_funcref_table_t *t)
{
    free(t->data);
    t->data = NULL;
}

static uint32_t rt_grow_funcref_table(wasm_rt_funcref_table_t *t, uint32_t delta,
                                      wasm_rt_funcref_t init)
{
    uint64_t old = t->size, n = old + delta;
    if (n > t->max_size || n > MAX_TABLE)
        return UINT32_MAX;
    t->data = xrealloc(t->data, (n ? n : 1) * sizeof *t->data);
    for (uint64_t i = old; i < n; i++)
        t->data[i] = init;
    t->size = (uint32_t)n;
    return (uint32_t)old;
}

static void rt_allocate_externref_table(wasm_rt_externref_table_t *t, uint32_t elements,
                                        uint32_t max)
{
    t->data = NULL;
    t->data = table_alloc(elements, sizeof *t->data);
    t->size = elements;
    t->max_size = max;
}

static void rt_free_externref_table(wasm_rt_externref_table_t *t)
{
    free(t->data);
    t->data = NULL;
}

static uint32_t rt_grow_externref_table(wasm_rt_externref_table_t *t, uint32_t delta,
                                        wasm_rt_externref_t init)
{
    uint64_t old = t->size, n = old + delta;
    if (n > t->max_size || n > MAX_TABLE)
        return UINT32_MAX;
    t->data = xrealloc(t->data, (n ? n : 1) * sizeof *t->data);
    for (uint64_t i = old; i < n; i++)
        t->data[i] = init;
    t->size = (uint32_t)n;
    return (uint32_t)old;
}

/* The order is the glue's (compile.c). */
const wasm__fn wasm__rt_fns[WASM_RT_FN_COUNT] = {
    (wasm__fn)rt_trap,
    (wasm__fn)rt_register_func_type,
    (wasm__fn)rt_allocate_memory,
    (wasm__fn)rt_grow_memory,
    (wasm__fn)rt_free_memory,
    (wasm__fn)rt_allocate_funcref_table,
    (wasm__fn)rt_free_funcref_table,
    (wasm__fn)rt_grow_funcref_table,
    (wasm__fn)rt_allocate_externref_table,
    (wasm__fn)rt_free_externref_table,
    (wasm__fn)rt_grow_externref_table,
};

/* ---- signals ----------------------------------------------------------- */

static uintptr_t interrupted_pc(void *ucv)
{
    ucontext_t *uc = ucv;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
#error "wasm tier: add the program counter of this architecture's ucontext"
#endif
}

static bool in_guest_code(const wasm__run *r, void *uc)
{
    uintptr_t pc = interrupted_pc(uc);
    return pc >= r->mod->text_lo && pc < r->mod->text_hi;
}

static void chain(const struct sigaction *old, int sig, siginfo_t *si, void *uc)
{
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uc);
    } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        /* Returning re-runs the faulting instruction, now fatal (core dump). */
        signal(sig, SIG_DFL);
    } else {
        old->sa_handler(sig);
    }
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    wasm__run *r = tls_run;
    if (r && r->in_wasm) {
        uintptr_t a = (uintptr_t)si->si_addr;
        if (r->reserve && a >= (uintptr_t)r->reserve && a < (uintptr_t)r->reserve + r->reserve_len &&
            in_guest_code(r, uc))
            wasm__trap(r, WASM_TRAP_OOB);
        /* A call too deep runs into the guard below this thread's stack. */
        if (tls.stack_lo && a + STACK_GUARD_SLACK >= tls.stack_lo && a < tls.stack_lo + 65536)
            wasm__trap(r, WASM_TRAP_EXHAUSTION);
    }
    chain(sig == SIGBUS ? &old_bus : &old_segv, sig, si, uc);
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    wasm__run *r = tls_run;
    /* Outside a run (before arming, after disarming) expiries mean nothing:
     * a queued one is delivered at the next return to user mode, which
     * comes before the next run sets in_wasm. */
    if (!r || !r->in_wasm)
        return;
    wasm_trap t = (wasm_trap)si->si_value.sival_int;
    if (in_guest_code(r, uc))
        wasm__trap(r, t);
    r->pending = t;
}

/* Installed at every run, not once: whatever set a SIGSEGV handler after
 * us (a test harness, a crash reporter) is chained to, not lost. */
static void install_handlers(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_fault && timer_signal)
        return;
    pthread_mutex_lock(&lock);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_fault;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && cur.sa_sigaction != on_fault) {
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    }
    if (!timer_signal) {
        /* A real-time signal is queued per timer, and nothing else in atoll
         * uses it. SA_RESTART: an expiry during a host call must not fail
         * its syscalls (sleeps still return EINTR, which poll_oneoff wants). */
        sa.sa_flags |= SA_RESTART;
        sa.sa_sigaction = on_timer;
        sigaction(SIGRTMIN + 4, &sa, NULL);
        timer_signal = SIGRTMIN + 4;
    }
    pthread_mutex_unlock(&lock);
}

static void thread_exit(void *unused)
{
    if (!tls.ready)
        return;
    timer_delete(tls.cpu);
    timer_delete(tls.wall);
    if (tls.spare)
        munmap(tls.spare, RESERVE_LEN);
    if (tls.altstack) {
        stack_t off = {.ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
        munmap(tls.altstack, tls.altstack_len);
    }
    memset(&tls, 0, sizeof tls);
}

static void make_exit_key(void) { pthread_key_create(&exit_key, thread_exit); }

static int make_timer(timer_t *t, clockid_t clock, wasm_trap kind, err *e)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = timer_signal;
    sev.sigev_value.sival_int = (int)kind;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(clock, &sev, t) != 0)
        return err_set(e, -errno, "timer_create: %s", strerror(errno));
    return 0;
}

/* Once per thread: the fault handler needs another stack when the guest
 * exhausted this one; the limits need two timers aimed at this thread. */
static int prepare_thread(err *e)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (tls.ready)
        return 0;
    pthread_once(&once, make_exit_key);
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
        size_t len = 65536 + (size_t)sysconf(_SC_SIGSTKSZ);
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return err_set(e, -errno, "signal stack: %s", strerror(errno));
        stack_t ss = {.ss_sp = p, .ss_size = len, .ss_flags = 0};
        if (sigaltstack(&ss, NULL) != 0) {
            int rc = -errno;
            munmap(p, len);
            return err_set(e, rc, "sigaltstack: %s", strerror(-rc));
        }
        tls.altstack = p;
        tls.altstack_len = len;
    }
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) == 0)
            tls.stack_lo = (uintptr_t)lo;
        pthread_attr_destroy(&attr);
    }
    int rc = make_timer(&tls.cpu, CLOCK_THREAD_CPUTIME_ID, WASM_TRAP_CPU_LIMIT, e);
    if (rc == 0 && (rc = make_timer(&tls.wall, CLOCK_MONOTONIC, WASM_TRAP_WALL_LIMIT, e)) < 0)
        timer_delete(tls.cpu);
    if (rc < 0) {
        if (tls.altstack) {
            stack_t off = {.ss_flags = SS_DISABLE};
            sigaltstack(&off, NULL);
            munmap(tls.altstack, tls.altstack_len);
        }
        memset(&tls, 0, sizeof tls);
        return rc;
    }
    tls.ready = true;
    pthread_setspecific(exit_key, &tls); /* any non-NULL value runs thread_exit */
    return 0;
}

/* First expiry after `ns`, then every millisecond until disarmed (see the
 * top of the file); ns == 0 disarms. */
static int arm(timer_t t, uint64_t ns, err *e)
{
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)},
        .it_interval = {.tv_sec = 0, .tv_nsec = ns ? REFIRE_NS : 0},
    };
    if (timer_settime(t, 0, &its, NULL) != 0)
        return err_set(e, -errno, "timer_settime: %s", strerror(errno));
    return 0;
}

int wasm__execute(wasm__run *r, err *e)
{
    install_handlers(); /* before prepare_thread: its timers need the signal */
    int rc = prepare_thread(e);
    if (rc < 0)
        return rc;

    const wasm_limits *lim = &r->cfg->limits;
    r->wall_deadline_ns = clock_mono_ns() + lim->wall_ms * 1000000u;
    if ((rc = arm(tls.cpu, lim->cpu_ms * 1000000u + 1, e)) < 0 ||
        (rc = arm(tls.wall, lim->wall_ms * 1000000u + 1, e)) < 0) {
        arm(tls.cpu, 0, NULL);
        return rc;
    }

    void *inst = xcalloc(1, r->mod->instance_size);
    tls_run = r;
    if (sigsetjmp(r->jmp, 1) == 0) {
        r->in_wasm = 1;
        r->mod->instantiate(inst, r);
        r->mod->start(inst);
    }
    r->in_wasm = 0;
    arm(tls.cpu, 0, NULL);
    arm(tls.wall, 0, NULL);
    /* Frees the memory and tables, through rt_free_* above. */
    r->mod->free_instance(inst);
    tls_run = NULL;
    free(inst);
    return 0;
}
