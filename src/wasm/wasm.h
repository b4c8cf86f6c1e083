/* The WebAssembly tier's public interface: compile a WASI module ahead of
 * time once (wasm2c + the system C compiler, cached by content), then answer
 * each HTTP request with a fresh instance that speaks WAGI (CGI for wasm):
 * the request as environment variables and stdin, the response as CGI
 * output on stdout.
 *
 * Threads: wasm_module_load and wasm_run block and may run on any thread
 * (libuv's thread pool: see the _async wrappers); a loaded module is
 * immutable and shared by concurrent runs. Ownership: the caller owns a
 * wasm_module (wasm_module_free) and a wasm_response (wasm_response_free);
 * everything else passed in is borrowed for the duration of the call.
 *
 * Process-wide effects the server should know of: the tier installs a
 * SIGSEGV/SIGBUS handler (re-installed at each run if replaced; faults
 * outside guest code are passed on to the previous handler) and uses
 * SIGRTMIN+4 for its CPU and wall timers. A thread that ran an instance
 * keeps two timers, a signal stack and one 8 GiB address-space reservation
 * until it exits. A run occupies its thread for up to limits.wall_ms (a
 * guest may sleep), so the thread pool should be sized for that
 * (UV_THREADPOOL_SIZE). Requirements at run time: wasm-validate and wasm2c
 * (Debian's wabt), a C compiler, and <wasm-rt.h>. */
#ifndef ATOLL_WASM_WASM_H
#define ATOLL_WASM_WASM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "http/message.h"

/* ---- compile at deploy ---------------------------------------------- */

typedef struct wasm_module wasm_module;

typedef struct wasm_compile_opts {
    const char *cache_dir; /* required; created if missing */
    const char *cc;        /* C compiler; NULL: $ATOLL_WASM_CC or "cc" */
} wasm_compile_opts;

/* Validates `bytes`, translates and compiles them into
 * CACHE_DIR/<sha256 of bytes, wabt and compiler versions>.so unless that
 * file exists, and loads it. An invalid module fails with -EINVAL and a
 * message naming the problem. Blocking (about a second per new module). */
int wasm_module_load(const void *bytes, size_t len, const wasm_compile_opts *opts,
                     wasm_module **out, err *e);
void wasm_module_free(wasm_module *m); /* only once no run uses it any more */
/* Asks wasm2c and the compiler (NULL: $ATOLL_WASM_CC or "cc") for their
 * versions, which key the cache, and remembers them for this process and
 * its children: a sandboxed child that may not run programs can then still
 * load modules from the cache. */
int wasm_toolchain_probe(const char *cc, err *e);
bool wasm_module_was_cached(const wasm_module *m); /* true when no compile ran */
const char *wasm_module_path(const wasm_module *m); /* the cached .so */
/* Compiles (wasm2c + cc) performed by this process: for tests and metrics. */
uint64_t wasm_compile_count(void);

/* ---- run one request ------------------------------------------------- */

typedef struct wasm_limits {
    uint64_t cpu_ms;       /* CPU time of the instance's thread; default 50 */
    uint64_t wall_ms;      /* wall-clock time including sleeps; default 30000 */
    uint32_t memory_pages; /* linear memory cap in 64 KiB pages; default 2048 (128 MiB) */
    size_t max_output;     /* bytes of CGI output on stdout; default 16 MiB */
} wasm_limits;

typedef struct wasm_var {
    const char *name, *value;
} wasm_var;

/* Everything about a tenant that a run needs; borrowed. */
typedef struct wasm_config {
    const char *tenant;        /* tags log lines; default "wasm" */
    const wasm_var *vars;      /* config `vars`, passed as environment variables */
    size_t nvars;
    const char *preopen_dir;   /* host directory shared read-only, or NULL */
    const char *preopen_guest; /* its name in the guest; default "/" */
    const char *script_name;   /* the route prefix (SCRIPT_NAME); default "" */
    const char *server_name;   /* default: the Host header, else "localhost" */
    int server_port;           /* default 80 */
    const char *remote_addr;   /* default "127.0.0.1" */
    wasm_limits limits;
} wasm_config;

void wasm_config_init(wasm_config *c); /* zero plus the defaults above */

/* Why an instance stopped. */
typedef enum wasm_trap {
    WASM_TRAP_NONE = 0,           /* _start returned or called proc_exit */
    WASM_TRAP_OOB,                /* out-of-bounds memory or table access */
    WASM_TRAP_INT_OVERFLOW,       /* INT_MIN / -1, or float->int out of range */
    WASM_TRAP_DIV_BY_ZERO,
    WASM_TRAP_INVALID_CONVERSION, /* NaN -> int */
    WASM_TRAP_UNREACHABLE,        /* `unreachable` (abort(), __builtin_trap) */
    WASM_TRAP_CALL_INDIRECT,      /* null or mistyped function pointer */
    WASM_TRAP_EXHAUSTION,         /* call stack exhausted */
    WASM_TRAP_CPU_LIMIT,
    WASM_TRAP_WALL_LIMIT,
    WASM_TRAP_MEMORY_LIMIT,       /* initial memory or a table above the cap */
    WASM_TRAP_HOST,               /* the host failed (e.g. out of address space) */
} wasm_trap;

const char *wasm_trap_name(wasm_trap t); /* "out of bounds", "cpu limit", … */

/* A run's result: the parsed CGI response, or after a trap an error page:
 * 503 for the CPU limit, 504 for the wall-clock limit, 507 for the memory
 * limit (as the JavaScript tier answers its limits), 500 for the others. */
typedef struct wasm_response {
    int status;
    const char *error;   /* static; non-NULL: send this as an error page instead */
    http_headers headers;
    buf body;
    wasm_trap trap;
    int exit_code;       /* proc_exit's argument, 0 when _start returned */
    uint64_t cpu_ns, wall_ns;
} wasm_response;

/* Runs a fresh instance of `m` for `req`. Returns 0 with *resp filled (a
 * trap or a malformed CGI response yields an error status, logged with the
 * tenant); negative errno only when the host could not run it at all. */
int wasm_run(const wasm_module *m, const wasm_config *cfg, const http_request *req,
             wasm_response *resp, err *e);
int wasm_response_send(const wasm_response *resp, http_writer *w);
void wasm_response_free(wasm_response *resp);

/* wasm_run + send + free: the synchronous whole. */
int wasm_handle(const wasm_module *m, const wasm_config *cfg, const http_request *req,
                http_writer *w);

/* ---- off the event loop (libuv thread pool) -------------------------- */

typedef struct wasm_load_req wasm_load_req;
/* status 0: *mod is loaded and owned by the callback; else req->error says why. */
typedef void (*wasm_load_cb)(wasm_load_req *req, int status, wasm_module *mod);
struct wasm_load_req {
    void *data;          /* for the caller */
    err error;
    /* private */
    uv_work_t work;
    const void *bytes;   /* borrowed until the callback */
    size_t len;
    wasm_compile_opts opts;
    wasm_module *mod;
    int status;
    wasm_load_cb cb;
};
int wasm_module_load_async(uv_loop_t *loop, wasm_load_req *req, const void *bytes, size_t len,
                           const wasm_compile_opts *opts, wasm_load_cb cb);

typedef struct wasm_run_req wasm_run_req;
/* Called on the loop thread after the response went to the writer;
 * req->resp.trap, cpu_ns and wall_ns still tell how the instance ended
 * (zero when it could not run). */
typedef void (*wasm_run_cb)(wasm_run_req *req, int status);
struct wasm_run_req {
    void *data;
    /* private; module, config, request and writer are borrowed until the callback */
    uv_work_t work;
    const wasm_module *mod;
    const wasm_config *cfg;
    const http_request *req;
    http_writer *w;
    wasm_response resp;
    int status;
    wasm_run_cb cb;
};
int wasm_run_async(uv_loop_t *loop, wasm_run_req *req, const wasm_module *m, const wasm_config *cfg,
                   const http_request *hreq, http_writer *w, wasm_run_cb cb);

#endif
