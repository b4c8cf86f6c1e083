/* Deploy-time compilation of a WebAssembly module into a shared object,
 * and loading it.
 *
 * Pipeline: wasm-validate (its message names the problem) -> wasm2c with
 * the fixed module name "guest", so every module exports the same entry
 * points (Z_guest_instantiate, Z_guestZ__start, …) -> a check of the
 * generated header: only WASI preview 1 imports with their exact
 * signatures (wasm2c does not mangle signatures into names, so a mistyped
 * import would otherwise link and be called with the wrong arguments), and
 * the `_start` and `memory` exports -> the glue appended (see internal.h)
 * -> cc -O2 -fPIC -shared -> renamed atomically into the cache as
 * <key>.so, where key = SHA-256 over the module's bytes, the wabt and
 * compiler versions, the flags, the glue and the edits. The same bytes
 * again only dlopen the cached file. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "wasm/internal.h"

extern char **environ;

/* Names the glue in the generated C; the cache key hashes the glue's text. */
/* -3: modules compiled before the header check refused other kinds of
 * `_start`, `memory` and imports must be checked again, not reused. */
#define GLUE_VERSION "atoll-wasm-glue-3"
/* The flags, measured with bench/wasm_bench.sh (README, WebAssembly):
 * -O3, -march=native, -funroll-loops, -fno-strict-aliasing and clang
 * instead of gcc change no kernel by more than the noise (the 200x200
 * matmul stays at 0.61x of gcc's native code, which is vectorized: the
 * wasm matches native code built without vectorization, and Debian 12's
 * wasm2c cannot translate wasm SIMD); -march=native even halved matmul.
 * -ffp-contract=off is for correctness: wasm forbids fusing a multiply
 * and an add, which gcc does by default wherever the target has FMA
 * (aarch64; x86-64 with -march=native changed the n-body result). */
#define CFLAGS_GUEST "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-DNDEBUG", "-w", \
                     "-fstack-clash-protection", "-fno-plt"
#define TOOL_TIMEOUT_MS 300000 /* a hostile module could make wasm2c or cc run for ever */
#define TOOL_OUTPUT_MAX (64 * 1024)

static atomic_uint_fast64_t compiles;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t wasm_compile_count(void) { return atomic_load(&compiles); }
bool wasm_module_was_cached(const wasm_module *m) { return m->cached; }
const char *wasm_module_path(const wasm_module *m) { return m->path; }

/* ---- SHA-256 for the cache key ----------------------------------------- */

/* OpenSSL's (SHA extensions where the CPU has them): the module is hashed
 * at every load, and a tenant's cold start waits for that load. */
typedef struct sha256 {
    EVP_MD_CTX *ctx;
} sha256;

static void sha256_init(sha256 *s)
{
    s->ctx = EVP_MD_CTX_new();
    if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory */
}

static void sha256_update(sha256 *s, const void *data, size_t len)
{
    EVP_DigestUpdate(s->ctx, data, len);
}

static void sha256_hex(sha256 *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(s->ctx, md, &n);
    EVP_MD_CTX_free(s->ctx);
    s->ctx = NULL;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- running the tools ------------------------------------------------- */

/* The address space each tool may use, in MiB: wasm2c writes a data
 * segment as a C array initializer, and cc needed about 125 bytes of
 * memory per byte of it (4 MiB of data: 500 MB), so one module of 256 MiB
 * of data, within MAX_MODULE_BYTES, would have taken some 30 GB of the
 * machine's memory at deploy. ATOLL_WASM_TOOL_MEMORY_MB overrides it. */
#define TOOL_MEMORY_MB 4096

static int run_tool_unlimited(char *const argv[], buf *output, err *e);

static unsigned long tool_memory_mb(void)
{
    const char *env = getenv("ATOLL_WASM_TOOL_MEMORY_MB");
    unsigned long mb = env ? strtoul(env, NULL, 10) : 0;
    return mb ? mb : TOOL_MEMORY_MB;
}

/* Runs argv (PATH lookup) with stdout and stderr captured into *output
 * (bounded), its memory limited; returns the exit status, or negative
 * errno when it could not run or timed out. */
static int run_tool(char *const argv_in[], buf *output, err *e)
{
    /* Under a shell's `ulimit -v`, which cc's own children (cc1, as, ld)
     * inherit: posix_spawn cannot set a limit, and setting it on the
     * child from here would race with cc starting cc1. */
    size_t n = 0;
    while (argv_in[n])
        n++;
    char limit[96];
    snprintf(limit, sizeof limit, "ulimit -v %lu && exec \"$@\"", tool_memory_mb() * 1024);
    char **argv = xcalloc(n + 5, sizeof *argv);
    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = limit;
    argv[3] = "sh";
    memcpy(argv + 4, argv_in, n * sizeof *argv);
    int rc = run_tool_unlimited(argv, output, e);
    free(argv);
    return rc;
}

static int run_tool_unlimited(char *const argv[], buf *output, err *e)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return err_set(e, -errno, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return err_set(e, -rc, "run %s: %s", argv[0], strerror(rc));
    }
    uint64_t deadline = clock_mono_ns() + (uint64_t)TOOL_TIMEOUT_MS * 1000000u;
    bool timed_out = false;
    for (;;) {
        uint64_t now = clock_mono_ns();
        if (now >= deadline) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
        int n = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char chunk[4096];
        ssize_t got = read(pipefd[0], chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (output->len < output->max) /* keep the head: the first errors matter */
            buf_append(output, chunk, (size_t)got < output->max - output->len
                                          ? (size_t)got
                                          : output->max - output->len);
    }
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        return err_set(e, -ETIMEDOUT, "%s took longer than %d s", argv[0], TOOL_TIMEOUT_MS / 1000);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return err_set(e, -ECHILD, "%s killed by signal %d", argv[0], WTERMSIG(status));
}

/* The first line of `tool --version`, for the cache key. */
static int tool_version(const char *tool, char **out, err *e)
{
    char *argv[] = {(char *)tool, "--version", NULL};
    buf o;
    buf_init(&o, 4096);
    int rc = run_tool(argv, &o, e);
    if (rc > 0)
        rc = err_set(e, -EINVAL, "%s --version failed", tool);
    if (rc == 0) {
        size_t n = strcspn(o.data ? o.data : "", "\n");
        *out = xstrndup(o.data ? o.data : "", n);
    }
    buf_free(&o);
    return rc;
}

/* "wasm-validate: 0000004: error: bad magic value" out of a tool's output:
 * the first line that says error, without the temporary file's name. */
static void first_error(const buf *o, char *out, size_t cap)
{
    const char *s = o->data ? o->data : "", *line = s;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "\n");
        const char *q = strstr(p, "error");
        if (q && q < p + n) {
            line = p;
            break;
        }
        p += n + (p[n] == '\n');
    }
    size_t n = strcspn(line, "\n");
    const char *tmp = strstr(line, "module.wasm:");
    if (tmp && tmp < line + n) {
        n -= (size_t)(tmp + 12 - line);
        line = tmp + 12;
    }
    snprintf(out, cap, "%.*s", (int)n, line);
}

/* ---- checking what wasm2c generated ------------------------------------ */

static void expected_decl(buf *b, const wasm__import *imp)
{
    buf_printf(b, "%s Z_wasi_snapshot_preview1Z_%s(struct Z_wasi_snapshot_preview1_instance_t*",
               imp->result == 'v' ? "void" : "u32", imp->name);
    for (const char *p = imp->params; *p; p++)
        buf_append_str(b, *p == 'I' ? ", u64" : ", u32");
    buf_append_str(b, ");");
}

/* An import comment of the generated header, slash-star then
 * "import: 'MOD' 'NAME'", at any indentation: MOD and NAME as host
 * strings in *mod and *name (owned by the caller), and whether the line
 * was indented, which is how wasm2c declares a memory, table or global
 * import (a pointer in the instance's imports struct) rather than a
 * function. No fixed-size buffers: a module name over 127 bytes made the
 * old sscanf skip the import unchecked. */
static bool parse_import(const char *line, char **mod, char **name, bool *indented)
{
    const char *p = line + strspn(line, " \t");
    static const char head[] = "/* import: '";
    if (strncmp(p, head, sizeof head - 1) != 0)
        return false;
    *indented = p != line;
    p += sizeof head - 1;
    /* The first quote-space-quote ends the module name, the last
     * quote-space-star-slash the import name (check_names refuses quotes
     * in names, so there is one of each). */
    const char *sep = strstr(p, "' '"), *tail = strstr(p, "' */");
    if (!sep || !tail || tail < sep + 3)
        return false;
    const char *last;
    while ((last = strstr(tail + 1, "' */")))
        tail = last;
    *mod = xstrndup(p, (size_t)(sep - p));
    *name = xstrndup(sep + 3, (size_t)(tail - (sep + 3)));
    return true;
}

static int check_header(const char *path, err *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_set(e, -errno, "open %s: %s", path, strerror(errno));
    int rc = 0;
    bool has_start = false, has_memory = false;
    char *line = NULL, *decl = NULL, *mod = NULL, *name = NULL;
    size_t cap = 0, dcap = 0;
    buf want;
    buf_init(&want, BUF_UNLIMITED);
    while (getline(&line, &cap, f) > 0) {
        /* The host calls `_start` as void(instance) and reads `memory` as a
         * memory: an export of another kind or signature under either name
         * would be called with the wrong arguments (a `_start` with
         * parameters reads the host's registers and stack as its
         * arguments, and could hand them to the client). */
        bool is_start = strcmp(line, "/* export: '_start' */\n") == 0;
        bool is_memory = strcmp(line, "/* export: 'memory' */\n") == 0;
        if (is_start || is_memory) {
            ssize_t n = getline(&decl, &dcap, f);
            const char *expect = is_start ? "void Z_guestZ__start(Z_guest_instance_t*);\n"
                                          : "wasm_rt_memory_t* Z_guestZ_memory(Z_guest_instance_t* instance);\n";
            if (n <= 0 || strcmp(decl, expect) != 0) {
                rc = err_set(e, -EINVAL, is_start ? "`_start` is not a function without parameters "
                                                    "or results"
                                                  : "the `memory` export is not a memory");
                goto done;
            }
            *(is_start ? &has_start : &has_memory) = true;
            continue;
        }
        bool indented;
        free(mod);
        free(name);
        mod = name = NULL;
        if (!parse_import(line, &mod, &name, &indented))
            continue;
        if (strcmp(mod, "wasi_snapshot_preview1") != 0) {
            rc = err_set(e, -EINVAL, "imports %.100s.%.100s: only wasi_snapshot_preview1 is provided",
                         mod, name);
            goto done;
        }
        const wasm__import *imp = NULL;
        for (size_t i = 0; i < wasm__nimports; i++)
            if (strcmp(wasm__imports[i].name, name) == 0)
                imp = &wasm__imports[i];
        if (indented) {
            rc = err_set(e, -EINVAL, "imports wasi_snapshot_preview1.%.100s as a memory, table or "
                         "global: only functions are provided", name);
            goto done;
        }
        if (!imp) {
            rc = err_set(e, -EINVAL, "imports unknown WASI function %.100s", name);
            goto done;
        }
        ssize_t n = getline(&decl, &dcap, f);
        if (n > 0 && decl[n - 1] == '\n')
            decl[n - 1] = '\0';
        buf_reset(&want);
        expected_decl(&want, imp);
        if (n <= 0 || strcmp(decl, want.data) != 0) {
            rc = err_set(e, -EINVAL, "imports wasi_snapshot_preview1.%s with a wrong signature",
                         name);
            goto done;
        }
    }
    if (!has_start)
        rc = err_set(e, -EINVAL, "no `_start` export: not a WASI command module");
    else if (!has_memory)
        rc = err_set(e, -EINVAL, "no `memory` export, which WASI requires");
done:
    buf_free(&want);
    free(line);
    free(decl);
    free(mod);
    free(name);
    fclose(f);
    return rc;
}

/* Edits of wasm2c 1.0.32's output for speed, each measured with
 * bench/wasm_compute.c. A pattern that a later wabt no longer emits is
 * simply not found: the code stays correct, only slower.
 * ATOLL_WASM_PATCHES=N applies only the first N, to measure each step.
 * - The empty asm after every load keeps a dead load alive so that it still
 *   faults when out of bounds; it also forbids folding loads into
 *   arithmetic. Without it an unused out-of-bounds load may not trap, which
 *   loses no isolation: the access itself never happens.
 * - Every store into linear memory is a memcpy, which may alias anything,
 *   so the compiler re-reads the memory base (and globals) from the
 *   instance after each one. The instance and the linear memory never
 *   overlap (calloc vs. an mmap reservation) and each function reaches the
 *   instance only through its `instance` parameter, which is what
 *   `restrict` promises; the base then stays in a register. */
static const struct {
    const char *from, *to;
} patches[] = {
    {"    wasm_asm(\"\" ::\"r\"(result));", ""},
    {"Z_guest_instance_t* instance", "Z_guest_instance_t* __restrict instance"},
};

static int write_file(const char *path, const void *data, size_t len, err *e);

/* Extra compiler flags from $ATOLL_WASM_CFLAGS (split on spaces), after the
 * defaults, so that later ones win: for measuring flags (bench/) and for
 * operators. They are part of the cache key. Returns a NULL-terminated
 * vector whose strings live in *storage; the caller frees both. */
#define MAX_EXTRA_FLAGS 32
static char **extra_flags(char **storage)
{
    const char *env = getenv("ATOLL_WASM_CFLAGS");
    char **v = xcalloc(MAX_EXTRA_FLAGS + 1, sizeof *v);
    *storage = xstrdup(env ? env : "");
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(*storage, " \t", &save); t && n < MAX_EXTRA_FLAGS;
         t = strtok_r(NULL, " \t", &save))
        v[n++] = t;
    return v;
}

static size_t patches_applied(void)
{
    size_t all = sizeof patches / sizeof *patches;
    const char *env = getenv("ATOLL_WASM_PATCHES");
    return env && (size_t)atoi(env) < all ? (size_t)atoi(env) : all;
}

static int patch_source(const char *path, err *e)
{
    buf src, out;
    buf_init(&src, BUF_UNLIMITED);
    buf_init(&out, BUF_UNLIMITED);
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(e, -errno, "open %s: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&src, chunk, n);
    fclose(f);
    for (size_t i = 0; i < patches_applied(); i++) {
        size_t flen = strlen(patches[i].from);
        const char *p = src.data ? src.data : "", *end = p + src.len;
        buf_reset(&out);
        for (const char *hit; (hit = memmem(p, (size_t)(end - p), patches[i].from, flen));
             p = hit + flen) {
            buf_append(&out, p, (size_t)(hit - p));
            buf_append_str(&out, patches[i].to);
        }
        buf_append(&out, p, (size_t)(end - p));
        buf tmp = src;
        src = out;
        out = tmp;
    }
    rc = write_file(path, src.data ? src.data : "", src.len, e);
    buf_free(&src);
    buf_free(&out);
    return rc;
}

/* The glue appended to the generated C: wasm-rt and WASI imports that
 * forward through atoll_host[] (filled after dlopen). */
static void write_glue(buf *g)
{
    size_t n = WASM_RT_FN_COUNT + wasm__nimports;
    buf_printf(g,
        "\n/* ---- appended by atoll (" GLUE_VERSION ") ---- */\n"
        "#include <stdarg.h>\n"
        "typedef void (*atoll_fn)(void);\n"
        "atoll_fn atoll_host[%zu];\n"
        "const size_t atoll_instance_size = sizeof(Z_guest_instance_t);\n"
        "struct Z_wasi_snapshot_preview1_instance_t;\n"
        "bool wasm_rt_is_initialized(void) { return true; }\n"
        "void wasm_rt_trap(wasm_rt_trap_t c) { ((void (*)(int))atoll_host[0])((int)c); "
        "__builtin_unreachable(); }\n"
        "uint32_t wasm_rt_register_func_type(uint32_t np, uint32_t nr, ...) {\n"
        "  wasm_rt_type_t t[np + nr + 1]; va_list ap; va_start(ap, nr);\n"
        "  for (uint32_t i = 0; i < np + nr; i++) t[i] = (wasm_rt_type_t)va_arg(ap, int);\n"
        "  va_end(ap);\n"
        "  return ((uint32_t (*)(uint32_t, uint32_t, const wasm_rt_type_t *))atoll_host[1])"
        "(np, nr, t);\n}\n"
        "void wasm_rt_allocate_memory(wasm_rt_memory_t *m, uint32_t i, uint32_t x) "
        "{ ((void (*)(wasm_rt_memory_t *, uint32_t, uint32_t))atoll_host[2])(m, i, x); }\n"
        "uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *m, uint32_t d) "
        "{ return ((uint32_t (*)(wasm_rt_memory_t *, uint32_t))atoll_host[3])(m, d); }\n"
        "void wasm_rt_free_memory(wasm_rt_memory_t *m) "
        "{ ((void (*)(wasm_rt_memory_t *))atoll_host[4])(m); }\n"
        "#define ATOLL_TABLE(T, A, F, G) \\\n"
        "void wasm_rt_allocate_##T##_table(wasm_rt_##T##_table_t *t, uint32_t e, uint32_t x) "
        "{ ((void (*)(wasm_rt_##T##_table_t *, uint32_t, uint32_t))atoll_host[A])(t, e, x); } \\\n"
        "void wasm_rt_free_##T##_table(wasm_rt_##T##_table_t *t) "
        "{ ((void (*)(wasm_rt_##T##_table_t *))atoll_host[F])(t); } \\\n"
        "uint32_t wasm_rt_grow_##T##_table(wasm_rt_##T##_table_t *t, uint32_t d, wasm_rt_##T##_t v) "
        "{ return ((uint32_t (*)(wasm_rt_##T##_table_t *, uint32_t, wasm_rt_##T##_t))"
        "atoll_host[G])(t, d, v); }\n"
        "ATOLL_TABLE(funcref, 5, 6, 7)\n"
        "ATOLL_TABLE(externref, 8, 9, 10)\n",
        n);
    for (size_t i = 0; i < wasm__nimports; i++) {
        const wasm__import *imp = &wasm__imports[i];
        const char *ret = imp->result == 'v' ? "void" : "u32";
        buf_printf(g, "%s Z_wasi_snapshot_preview1Z_%s(struct Z_wasi_snapshot_preview1_instance_t *c",
                   ret, imp->name);
        for (size_t k = 0; imp->params[k]; k++)
            buf_printf(g, ", %s a%zu", imp->params[k] == 'I' ? "u64" : "u32", k);
        if (!imp->fn) {
            buf_printf(g, ") { return %u; }\n", imp->stub_errno);
            continue;
        }
        buf_printf(g, ") { %s((%s (*)(struct Z_wasi_snapshot_preview1_instance_t *",
                   imp->result == 'v' ? "" : "return ", ret);
        for (size_t k = 0; imp->params[k]; k++)
            buf_append_str(g, imp->params[k] == 'I' ? ", u64" : ", u32");
        buf_printf(g, "))atoll_host[%zu])(c", WASM_RT_FN_COUNT + i);
        for (size_t k = 0; imp->params[k]; k++)
            buf_printf(g, ", a%zu", k);
        buf_append_str(g, "); }\n");
    }
}

static int append_file(const char *path, const buf *b, err *e)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, -errno, "open %s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(fd, b->data + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = -errno;
            close(fd);
            return err_set(e, rc, "write %s: %s", path, strerror(-rc));
        }
        off += (size_t)n;
    }
    close(fd);
    return 0;
}

static int write_file(const char *path, const void *data, size_t len, err *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(e, -errno, "create %s: %s", path, strerror(errno));
    close(fd);
    buf b = {.data = (char *)data, .len = len, .cap = len, .max = len};
    return append_file(path, &b, e);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

static int mkdir_p(const char *path, err *e)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = err_set(e, -errno, "mkdir %s: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

/* ---- names that wasm2c copies into C ------------------------------------ */

/* wasm2c 1.0.32 writes every import's module and field name and every
 * export's name into the generated C as they are, inside comments
 * ("/" "* export: 'NAME' *" "/"), without escaping: an export named
 * "x' *" "/ __attribute__((constructor)) ... /" "*" became C that ran inside the
 * host at dlopen (tests: a name that closes the comment). So the import and
 * export sections are read here, after wasm-validate accepted the module's
 * structure, and a name with a control character (a newline would also
 * forge the lines check_header reads), a quote (which ends the names in
 * those comments) or the comment's end is refused. Debug names are not
 * copied (wasm2c mangles them), data is written as numbers. */
typedef struct reader {
    const uint8_t *p, *end;
} reader;

static bool read_leb(reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; r->p < r->end && shift < 64; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool read_byte(reader *r, uint8_t *out)
{
    if (r->p >= r->end)
        return false;
    *out = *r->p++;
    return true;
}

/* A name, checked; -EINVAL with the reason in *e when it is unsafe or the
 * bytes end early. */
static int read_name(reader *r, const char *what, err *e)
{
    uint64_t n;
    if (!read_leb(r, &n) || n > (uint64_t)(r->end - r->p))
        return err_set(e, -EINVAL, "invalid module: truncated %s name", what);
    const uint8_t *s = r->p;
    r->p += n;
    for (uint64_t i = 0; i < n; i++) {
        bool closes = s[i] == '*' && i + 1 < n && s[i + 1] == '/';
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\'' || closes)
            return err_set(e, -EINVAL, "unsupported module: %s name \"%.*s\" holds a control "
                           "character, a quote or \"*/\", which the C translation cannot "
                           "carry", what, (int)(i < 40 ? i : 40), (const char *)s);
    }
    return 0;
}

static bool skip_limits(reader *r)
{
    uint8_t flags;
    uint64_t v;
    if (!read_byte(r, &flags) || !read_leb(r, &v))
        return false;
    return !(flags & 1) || read_leb(r, &v);
}

static int check_names(const void *bytes, size_t len, err *e)
{
    reader r = {.p = (const uint8_t *)bytes + 8, .end = (const uint8_t *)bytes + len};
    if (len < 8)
        return err_set(e, -EINVAL, "invalid module: too short");
    while (r.p < r.end) {
        uint8_t id;
        uint64_t size, count, v;
        if (!read_byte(&r, &id) || !read_leb(&r, &size) || size > (uint64_t)(r.end - r.p))
            return err_set(e, -EINVAL, "invalid module: truncated section");
        reader sec = {.p = r.p, .end = r.p + size};
        r.p += size;
        if (id != 2 && id != 7)
            continue;
        if (!read_leb(&sec, &count))
            return err_set(e, -EINVAL, "invalid module: truncated section");
        for (uint64_t i = 0; i < count; i++) {
            int rc;
            uint8_t kind = 0, b;
            if (id == 2) {
                if ((rc = read_name(&sec, "import module", e)) < 0 ||
                    (rc = read_name(&sec, "import", e)) < 0)
                    return rc;
                bool ok = read_byte(&sec, &kind);
                /* Only what follows the name is needed to reach the next. */
                if (ok && kind == 0)
                    ok = read_leb(&sec, &v); /* function: type index */
                else if (ok && kind == 1)
                    ok = read_byte(&sec, &b) && skip_limits(&sec); /* table */
                else if (ok && kind == 2)
                    ok = skip_limits(&sec); /* memory */
                else if (ok && kind == 3)
                    ok = read_byte(&sec, &b) && read_byte(&sec, &b); /* global */
                else
                    ok = false; /* a tag: exceptions are not enabled */
                if (!ok)
                    return err_set(e, -EINVAL, "unsupported module: import kind %u", kind);
            } else {
                if ((rc = read_name(&sec, "export", e)) < 0)
                    return rc;
                if (!read_byte(&sec, &kind) || !read_leb(&sec, &v))
                    return err_set(e, -EINVAL, "invalid module: truncated export");
            }
        }
    }
    return 0;
}

/* wasm-validate, wasm2c, header check, glue, cc; the .so lands at `so_path`. */
static int compile(const void *bytes, size_t len, const char *cc, const char *cache_dir,
                   const char *so_path, err *e)
{
    char *dir = xasprintf("%s/tmp.XXXXXX", cache_dir);
    char *wasm = NULL, *c = NULL, *h = NULL, *so = NULL;
    buf out, glue;
    buf_init(&out, TOOL_OUTPUT_MAX);
    buf_init(&glue, BUF_UNLIMITED);
    int rc;
    if (!mkdtemp(dir)) {
        rc = err_set(e, -errno, "mkdtemp %s: %s", dir, strerror(errno));
        free(dir);
        dir = NULL;
        goto fail;
    }
    wasm = xasprintf("%s/module.wasm", dir);
    c = xasprintf("%s/module.c", dir);
    h = xasprintf("%s/module.h", dir);
    so = xasprintf("%s/module.so", dir);
    if ((rc = write_file(wasm, bytes, len, e)) < 0)
        goto fail;

    /* SIMD off: Debian 12's wasm2c validates SIMD but cannot translate it. */
    char *validate[] = {"wasm-validate", "--disable-simd", wasm, NULL};
    rc = run_tool(validate, &out, e);
    if (rc > 0) {
        char msg[300];
        first_error(&out, msg, sizeof msg);
        char *with_simd[] = {"wasm-validate", wasm, NULL};
        buf_reset(&out);
        if (run_tool(with_simd, &out, NULL) == 0)
            rc = err_set(e, -EINVAL, "unsupported module: it uses SIMD, which this wasm2c "
                         "cannot compile (build it without -msimd128)");
        else
            rc = err_set(e, -EINVAL, "invalid module: %s", msg);
    }
    if (rc < 0)
        goto fail;
    if ((rc = check_names(bytes, len, e)) < 0)
        goto fail;

    char *w2c[] = {"wasm2c", "-n", "guest", wasm, "-o", c, NULL};
    buf_reset(&out);
    rc = run_tool(w2c, &out, e);
    if (rc > 0) {
        char msg[300];
        first_error(&out, msg, sizeof msg);
        rc = err_set(e, -EINVAL, "wasm2c: %s", msg);
    }
    if (rc == -ECHILD)
        err_prefix(e, "unsupported module: wasm2c cannot translate it");
    if (rc < 0)
        goto fail;
    if ((rc = check_header(h, e)) < 0) {
        err_prefix(e, "unsupported module");
        goto fail;
    }

    write_glue(&glue);
    if ((rc = patch_source(c, e)) < 0 || (rc = append_file(c, &glue, e)) < 0)
        goto fail;

    static const char *base[] = {CFLAGS_GUEST};
    static const char *tail[] = {"-o", NULL, NULL, "-lm", "-Wl,-z,defs", "-Wl,-Bsymbolic"};
    char *storage, **extra = extra_flags(&storage);
    size_t nbase = sizeof base / sizeof *base, ntail = sizeof tail / sizeof *tail, nextra = 0, k = 0;
    while (extra[nextra])
        nextra++;
    char **ccv = xcalloc(1 + nbase + nextra + ntail + 1, sizeof *ccv);
    ccv[k++] = (char *)cc;
    for (size_t i = 0; i < nbase; i++)
        ccv[k++] = (char *)base[i];
    for (size_t i = 0; i < nextra; i++)
        ccv[k++] = extra[i];
    for (size_t i = 0; i < ntail; i++)
        ccv[k++] = i == 1 ? so : i == 2 ? c : (char *)tail[i];
    buf_reset(&out);
    uint64_t t0 = clock_mono_ns();
    rc = run_tool(ccv, &out, e);
    free(ccv);
    free(extra);
    free(storage);
    if (rc > 0) {
        char msg[300];
        first_error(&out, msg, sizeof msg);
        rc = err_set(e, -EIO, "%s failed: %s", cc, msg);
    }
    if (rc < 0)
        goto fail;
    atomic_fetch_add(&compiles, 1);
    log_info("wasm: compiled %zu-byte module in %.0f ms", len, (clock_mono_ns() - t0) / 1e6);
    /* Atomic: concurrent deploys of the same bytes each see a whole file. */
    if (rename(so, so_path) != 0)
        rc = err_set(e, -errno, "rename to %s: %s", so_path, strerror(errno));
fail:
    if (dir)
        remove_tree(dir);
    buf_free(&out);
    buf_free(&glue);
    free(dir);
    free(wasm);
    free(c);
    free(h);
    free(so);
    return rc;
}

/* ---- loading ----------------------------------------------------------- */

typedef struct text_range {
    uintptr_t base, lo, hi;
} text_range;

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    text_range *t = arg;
    if (info->dlpi_addr != t->base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (!t->lo || lo < t->lo)
            t->lo = lo;
        if (hi > t->hi)
            t->hi = hi;
    }
    return 1;
}

static int load_so(wasm_module *m, err *e)
{
    pthread_mutex_lock(&load_lock);
    int rc = 0;
    m->so = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
    if (!m->so) {
        rc = err_set(e, -ENOEXEC, "dlopen: %s", dlerror());
        goto done;
    }
    wasm__fn *host = dlsym(m->so, "atoll_host");
    const size_t *size = dlsym(m->so, "atoll_instance_size");
    void (*init)(void) = (void (*)(void))dlsym(m->so, "Z_guest_init_module");
    m->instantiate = (void (*)(void *, void *))dlsym(m->so, "Z_guest_instantiate");
    m->free_instance = (void (*)(void *))dlsym(m->so, "Z_guest_free");
    m->start = (void (*)(void *))dlsym(m->so, "Z_guestZ__start");
    if (!host || !size || !init || !m->instantiate || !m->free_instance || !m->start) {
        rc = err_set(e, -ENOEXEC, "%s lacks atoll's entry points", m->path);
        goto done;
    }
    memcpy(host, wasm__rt_fns, sizeof wasm__rt_fns);
    for (size_t i = 0; i < wasm__nimports; i++)
        host[WASM_RT_FN_COUNT + i] = wasm__imports[i].fn;
    m->instance_size = *size;
    struct link_map *lm;
    if (dlinfo(m->so, RTLD_DI_LINKMAP, &lm) != 0) {
        rc = err_set(e, -ENOEXEC, "dlinfo: %s", dlerror());
        goto done;
    }
    text_range t = {.base = lm->l_addr};
    dl_iterate_phdr(find_text, &t);
    m->text_lo = t.lo;
    m->text_hi = t.hi;
    init(); /* registers the module's function types */
done:
    pthread_mutex_unlock(&load_lock);
    return rc;
}

/* "wasm2c 1.0.32\ncc (Debian 12.2.0-14) 12.2.0\n<glue>" for the cache key,
 * asked once per compiler and remembered (one entry: one compiler in
 * practice). Caller frees. */
static char *versions_of(const char *cc, err *e)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char *known_cc, *known; /* process lifetime */
    char *out = NULL, *w = NULL, *c = NULL;
    pthread_mutex_lock(&lock);
    if (known_cc && strcmp(known_cc, cc) == 0) {
        out = xstrdup(known);
        goto done;
    }
    if (tool_version("wasm2c", &w, e) < 0 || tool_version(cc, &c, e) < 0)
        goto done;
    out = xasprintf("%s\n%s\n%s", w, c, GLUE_VERSION);
    free(known_cc);
    free(known);
    known_cc = xstrdup(cc);
    known = xstrdup(out);
done:
    pthread_mutex_unlock(&lock);
    free(w);
    free(c);
    return out;
}

int wasm_toolchain_probe(const char *cc, err *e)
{
    if (!cc)
        cc = getenv("ATOLL_WASM_CC") ? getenv("ATOLL_WASM_CC") : "cc";
    char *versions = versions_of(cc, e);
    if (!versions)
        return err_prefix(e, "wasm toolchain: are wabt and %s installed?", cc);
    free(versions);
    return 0;
}

int wasm_module_load(const void *bytes, size_t len, const wasm_compile_opts *opts,
                     wasm_module **out, err *e)
{
    *out = NULL;
    const char *cc = opts->cc ? opts->cc : getenv("ATOLL_WASM_CC") ? getenv("ATOLL_WASM_CC") : "cc";
    if (!opts->cache_dir)
        return err_set(e, -EINVAL, "wasm module: no cache directory");
    int rc = mkdir_p(opts->cache_dir, e);
    if (rc < 0)
        return err_prefix(e, "wasm module");
    char *versions = versions_of(cc, e);
    if (!versions)
        return err_prefix(e, "wasm module: are wabt and %s installed?", cc);

    static const char *flags[] = {CFLAGS_GUEST};
    sha256 s;
    char key[65], body[65];
    sha256_init(&s);
    sha256_update(&s, bytes, len);
    sha256_hex(&s, body);
    sha256_init(&s);
    sha256_update(&s, body, 64);
    sha256_update(&s, versions, strlen(versions));
    /* The glue and the edits themselves: a host built with another import
     * table or other edits never loads a stale .so. */
    buf glue;
    buf_init(&glue, BUF_UNLIMITED);
    write_glue(&glue);
    sha256_update(&s, glue.data, glue.len);
    buf_free(&glue);
    for (size_t i = 0; i < patches_applied(); i++) {
        sha256_update(&s, patches[i].from, strlen(patches[i].from) + 1);
        sha256_update(&s, patches[i].to, strlen(patches[i].to) + 1);
    }
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        sha256_update(&s, flags[i], strlen(flags[i]) + 1);
    char *storage, **extra = extra_flags(&storage);
    for (size_t i = 0; extra[i]; i++)
        sha256_update(&s, extra[i], strlen(extra[i]) + 1);
    free(extra);
    free(storage);
    sha256_hex(&s, key);
    free(versions);

    wasm_module *m = xcalloc(1, sizeof *m);
    m->path = xasprintf("%s/%s.so", opts->cache_dir, key);
    m->cached = access(m->path, R_OK) == 0;
    if (m->cached && load_so(m, e) == 0)
        goto done;
    if (m->cached) { /* unreadable or from a broken disk: build it again */
        log_warn("wasm: cached %s unusable (%s), recompiling", m->path, e ? e->msg : "");
        if (m->so)
            dlclose(m->so);
        m->so = NULL;
        m->cached = false;
        unlink(m->path);
    }
    if ((rc = compile(bytes, len, cc, opts->cache_dir, m->path, e)) < 0 ||
        (rc = load_so(m, e)) < 0)
        goto fail;
done:
    if (e)
        err_clear(e);
    *out = m;
    return 0;
fail:
    err_prefix(e, "wasm module");
    wasm_module_free(m);
    return rc;
}

void wasm_module_free(wasm_module *m)
{
    if (!m)
        return;
    if (m->so)
        dlclose(m->so);
    free(m->path);
    free(m);
}
