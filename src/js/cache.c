/* The bytecode cache (see cache.h): a chained hash table of path -> the
 * bytecode of the file's last seen version. One lock makes it safe for
 * several loop threads; lookups are short. */
#include "js/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "js/isolate.h"

typedef struct entry {
    struct entry *next;
    char *path;
    int64_t mtime_ns;
    int64_t size;
    bool is_module;
    uint8_t *code;  /* malloc'd by QuickJS's JS_WriteObject allocator: copied into ours */
    size_t code_len;
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry **table;
static size_t nbuckets, nentries;
static uint64_t hits, misses;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void grow(void)
{
    size_t n = nbuckets ? nbuckets * 2 : 64;
    entry **t = xcalloc(n, sizeof *t);
    for (size_t i = 0; i < nbuckets; i++) {
        for (entry *e = table[i], *next; e; e = next) {
            next = e->next;
            size_t b = hash(e->path) & (n - 1);
            e->next = t[b];
            t[b] = e;
        }
    }
    free(table);
    table = t;
    nbuckets = n;
}

static entry **find_slot(const char *path)
{
    if (!nbuckets)
        grow();
    entry **p = &table[hash(path) & (nbuckets - 1)];
    while (*p && strcmp((*p)->path, path) != 0)
        p = &(*p)->next;
    return p;
}

static void free_entry(entry *e)
{
    free(e->path);
    free(e->code);
    free(e);
}

/* Stores code for path, replacing an older version. */
static void store(const char *path, const struct stat *st, bool is_module, const uint8_t *code,
                  size_t len)
{
    pthread_mutex_lock(&lock);
    if (nentries >= nbuckets)
        grow();
    entry **slot = find_slot(path);
    entry *e = *slot;
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->path = xstrdup(path);
        *slot = e;
        nentries++;
    } else {
        free(e->code);
    }
    e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    e->size = st->st_size;
    e->is_module = is_module;
    e->code = xmalloc(len);
    memcpy(e->code, code, len);
    e->code_len = len;
    pthread_mutex_unlock(&lock);
}

static char *read_file(const char *path, size_t *len, err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, -errno, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf b;
    buf_init(&b, 64u << 20); /* a worker script larger than 64 MiB is refused */
    char chunk[16384];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(&b, chunk, n);
    bool failed = ferror(f) || rc < 0;
    fclose(f);
    if (failed) {
        buf_free(&b);
        err_set(e, rc < 0 ? rc : -EIO, "%s: %s", path, rc < 0 ? "file too large" : "read error");
        return NULL;
    }
    buf_append(&b, "", 0);
    return buf_steal(&b, len);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

JSValue iso_cache_load(JSContext *ctx, const char *abs_path, iso_code_kind kind, bool *is_module,
                       err *e)
{
    struct stat st;
    if (stat(abs_path, &st) < 0) {
        err_set(e, -errno, "%s: %s", abs_path, strerror(errno));
        return JS_EXCEPTION;
    }
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;

    pthread_mutex_lock(&lock);
    entry *hit = *find_slot(abs_path);
    if (hit && hit->mtime_ns == mtime && hit->size == st.st_size &&
        (kind == ISO_CODE_DETECT || hit->is_module == (kind == ISO_CODE_MODULE))) {
        hits++;
        *is_module = hit->is_module;
        JSValue fn = JS_ReadObject(ctx, hit->code, hit->code_len, JS_READ_OBJ_BYTECODE);
        pthread_mutex_unlock(&lock);
        return fn;
    }
    misses++;
    pthread_mutex_unlock(&lock);

    size_t len;
    char *src = read_file(abs_path, &len, e);
    if (!src)
        return JS_EXCEPTION;
    bool module = kind == ISO_CODE_MODULE ||
                  (kind == ISO_CODE_DETECT && (ends_with(abs_path, ".mjs") || JS_DetectModule(src, len)));
    int flags = JS_EVAL_FLAG_COMPILE_ONLY | (module ? JS_EVAL_TYPE_MODULE : JS_EVAL_TYPE_GLOBAL);
    JSValue fn = JS_Eval(ctx, src, len, abs_path, flags);
    if (JS_IsException(fn) && kind == ISO_CODE_DETECT && !module) {
        /* JS_DetectModule only looks at the first statement; a module that
         * starts with other code fails as a script. Try it as a module and
         * keep the error that explains more. */
        JSValue script_exc = JS_GetException(ctx);
        fn = JS_Eval(ctx, src, len, abs_path, JS_EVAL_FLAG_COMPILE_ONLY | JS_EVAL_TYPE_MODULE);
        if (!JS_IsException(fn)) {
            module = true;
            JS_FreeValue(ctx, script_exc);
        } else {
            const char *msg = JS_ToCString(ctx, script_exc);
            bool about_modules = msg && (strstr(msg, "import") || strstr(msg, "export"));
            JS_FreeCString(ctx, msg);
            if (about_modules) {
                JS_FreeValue(ctx, script_exc);
            } else {
                JS_FreeValue(ctx, JS_GetException(ctx));
                JS_Throw(ctx, script_exc);
            }
        }
    }
    free(src);
    if (JS_IsException(fn))
        return fn;
    size_t code_len;
    uint8_t *code = JS_WriteObject(ctx, &code_len, fn, JS_WRITE_OBJ_BYTECODE);
    if (code) {
        store(abs_path, &st, module, code, code_len);
        js_free(ctx, code);
    } else {
        JS_FreeValue(ctx, JS_GetException(ctx)); /* not cached, still usable */
    }
    *is_module = module;
    return fn;
}

void iso_cache_stats(iso_cache_info *info)
{
    pthread_mutex_lock(&lock);
    info->entries = nentries;
    info->hits = hits;
    info->misses = misses;
    size_t bytes = 0;
    for (size_t i = 0; i < nbuckets; i++)
        for (entry *e = table[i]; e; e = e->next)
            bytes += e->code_len;
    info->bytes = bytes;
    pthread_mutex_unlock(&lock);
}

void iso_cache_clear(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nbuckets; i++) {
        for (entry *e = table[i], *next; e; e = next) {
            next = e->next;
            free_entry(e);
        }
    }
    free(table);
    table = NULL;
    nbuckets = nentries = 0;
    hits = misses = 0;
    pthread_mutex_unlock(&lock);
}
