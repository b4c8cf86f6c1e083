/* Declarations shared by the wasm tier's files (compile.c, runtime.c,
 * wasi.c, wagi.c); nothing here is public.
 *
 * How the pieces meet: compile.c appends a small "glue" to the C that
 * wasm2c generates. The glue defines the wasm-rt functions and the WASI
 * imports the generated code calls, each forwarding through one table of
 * host function pointers (`atoll_host`) that compile.c fills after dlopen.
 * So a compiled module has no undefined symbols but libc's, whatever
 * flags the host binary was linked with. Table order: the wasm-rt
 * functions (WASM_RT_FN_COUNT, runtime.c), then wasm__imports (wasi.c). */
#ifndef ATOLL_WASM_INTERNAL_H
#define ATOLL_WASM_INTERNAL_H
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <wasm-rt.h>

#include "core/buf.h"
#include "wasm/wasm.h"

#define WASM_PAGE 65536u
#define WASM_MAX_FILES 64 /* files a guest may hold open from the preopened dir */

typedef void (*wasm__fn)(void);

/* A loaded module; owned by the caller of wasm_module_load. */
struct wasm_module {
    void *so;        /* dlopen handle */
    char *path;      /* owned */
    bool cached;
    size_t instance_size;
    uintptr_t text_lo, text_hi; /* the module's machine code, to tell its faults from ours */
    void (*instantiate)(void *inst, void *wasi);
    void (*free_instance)(void *inst);
    void (*start)(void *inst);
};

/* An open file or directory under the preopened directory. */
typedef struct wasm__file {
    int fd;          /* host fd, -1 when the slot is free */
    bool dir;
    void *dirp;      /* DIR * for fd_readdir, opened on first use */
} wasm__file;

/* One request's instance: owned by wasm_run, on its stack. */
typedef struct wasm__run {
    const wasm_module *mod;
    const wasm_config *cfg;
    sigjmp_buf jmp;
    volatile sig_atomic_t in_wasm;  /* set while guest code (or the host under it) runs */
    volatile sig_atomic_t pending;  /* a limit expired while the host ran: a wasm_trap */
    wasm_trap trap;
    bool exited;
    int exit_code;
    uint64_t wall_deadline_ns;      /* CLOCK_MONOTONIC */
    /* linear memory (one per module: multi-memory is not enabled) */
    wasm_rt_memory_t *mem;
    uint8_t *reserve;               /* the whole mapping, with guard pages */
    size_t reserve_len;
    bool memory_denied;             /* a memory.grow past the cap was refused */
    /* WASI state */
    char **argv, **envp;            /* owned, NULL-terminated */
    size_t argc, envc;
    const buf *stdin_data;
    size_t stdin_off;
    buf out;                        /* CGI output, capped by limits.max_output */
    bool out_overflow;
    buf errline;                    /* the current stderr line */
    unsigned err_lines;             /* stderr lines so far */
    bool stdio_closed[3];
    wasm__file files[WASM_MAX_FILES]; /* guest fd 3 + i; [0] is the preopened directory */
} wasm__run;

/* runtime.c: the wasm-rt side of the host table and the instance lifecycle. */
#define WASM_RT_FN_COUNT 11
extern const wasm__fn wasm__rt_fns[WASM_RT_FN_COUNT];
/* Runs instantiate + _start under the limits; fills r->trap/exited/exit_code. */
int wasm__execute(wasm__run *r, err *e);
_Noreturn void wasm__trap(wasm__run *r, wasm_trap t);

/* wasi.c: the WASI preview 1 imports. `params` has one letter per
 * parameter after the context, i = u32, I = u64; `result` is 'i' or 'v'.
 * A NULL fn makes the glue answer `stub_errno` itself. */
typedef struct wasm__import {
    const char *name;
    const char *params;
    char result;
    wasm__fn fn;
    uint16_t stub_errno;
} wasm__import;
extern const wasm__import wasm__imports[];
extern const size_t wasm__nimports;
void wasm__wasi_close(wasm__run *r); /* closes files; the caller frees the rest */
void wasm__wasi_flush(wasm__run *r); /* logs a last stderr line without newline */

#endif
