/* The `crypto` global (Web Crypto API): getRandomValues, randomUUID and the
 * lazily created `subtle`; and what the Web Crypto files share: errors
 * with WebCrypto's names, bytes out of BufferSources, algorithm names, and
 * jobs that run expensive work (PBKDF2, RSA key generation) on libuv's
 * thread pool so that one tenant's key stretching does not stall every
 * other tenant on the loop.
 * crypto.DigestStream is in digest_stream.c. */
#include "js/api/crypto_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/clock.h"

/* --- errors --- */

JSValue crypto_throw(JSContext *ctx, const char *name, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The one place to point at DOMException: used when the global scope
     * has it (the webbasics work), else an Error carrying the name. */
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue ctor = JS_GetPropertyStr(ctx, global, "DOMException");
    JS_FreeValue(ctx, global);
    JSValue err;
    if (JS_IsFunction(ctx, ctor)) {
        JSValue args[2] = { JS_NewString(ctx, msg), JS_NewString(ctx, name) };
        err = JS_CallConstructor(ctx, ctor, 2, (JSValueConst *)args);
        JS_FreeValue(ctx, args[0]);
        JS_FreeValue(ctx, args[1]);
    } else {
        if (JS_IsException(ctor))
            JS_FreeValue(ctx, JS_GetException(ctx));
        err = JS_NewError(ctx);
        if (!JS_IsException(err)) {
            JS_DefinePropertyValueStr(ctx, err, "message", JS_NewString(ctx, msg),
                                      JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
            JS_DefinePropertyValueStr(ctx, err, "name", JS_NewString(ctx, name),
                                      JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
        }
    }
    JS_FreeValue(ctx, ctor);
    if (JS_IsException(err))
        return err;
    return JS_Throw(ctx, err);
}

/* --- bytes --- */

int crypto_bytes(JSContext *ctx, JSValueConst v, cbytes *out, const char *what)
{
    out->p = NULL;
    out->n = 0;
    const uint8_t *src = NULL;
    size_t len = 0;
    JSValue ab = JS_UNDEFINED;
    if (!JS_IsObject(v))
        goto bad;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    src = JS_GetArrayBuffer(ctx, &len, v);
    if (!src) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        size_t off, per;
        ab = JS_GetTypedArrayBuffer(ctx, v, &off, &len, &per);
        if (JS_IsException(ab)) {
            JS_FreeValue(ctx, JS_GetException(ctx));
            /* A DataView: no class test in QuickJS's API, so its
             * properties, read through DataView.prototype's getters. */
            int64_t o, l;
            JSValue global = JS_GetGlobalObject(ctx);
            JSValue dv = JS_GetPropertyStr(ctx, global, "DataView");
            JS_FreeValue(ctx, global);
            int is = JS_IsInstanceOf(ctx, v, dv);
            JS_FreeValue(ctx, dv);
            if (is <= 0) {
                if (is < 0)
                    JS_FreeValue(ctx, JS_GetException(ctx));
                goto bad;
            }
            JSValue vo = JS_GetPropertyStr(ctx, v, "byteOffset");
            JSValue vl = JS_GetPropertyStr(ctx, v, "byteLength");
            ab = JS_GetPropertyStr(ctx, v, "buffer");
            int rc = JS_ToInt64(ctx, &o, vo) | JS_ToInt64(ctx, &l, vl);
            JS_FreeValue(ctx, vo);
            JS_FreeValue(ctx, vl);
            if (rc < 0 || JS_IsException(ab))
                goto fail;
            off = (size_t)o;
            len = (size_t)l;
        }
        size_t ablen;
        src = JS_GetArrayBuffer(ctx, &ablen, ab);
        if (!src) {
            if (JS_HasException(ctx))
                goto fail;
            len = 0; /* detached */
        } else if (off > ablen || len > ablen - off) {
            len = 0;
        } else {
            src += off;
        }
    }
    out->p = js_malloc(ctx, len ? len : 1);
    if (!out->p)
        goto fail;
    if (len)
        memcpy(out->p, src, len);
    out->n = len;
    JS_FreeValue(ctx, ab);
    return 0;
bad:
    JS_ThrowTypeError(ctx, "%s must be an ArrayBuffer or an ArrayBufferView", what);
fail:
    JS_FreeValue(ctx, ab);
    return -1;
}

void crypto_bytes_free(JSRuntime *rt, cbytes *b)
{
    if (b->p) {
        OPENSSL_cleanse(b->p, b->n);
        js_free_rt(rt, b->p);
    }
    b->p = NULL;
    b->n = 0;
}

JSValue crypto_array_buffer(JSContext *ctx, const uint8_t *p, size_t n)
{
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    return JS_NewArrayBufferCopy(ctx, p, n);
}

JSValue crypto_uint8_array(JSContext *ctx, const uint8_t *p, size_t n)
{
    JSValue ab = crypto_array_buffer(ctx, p, n);
    if (JS_IsException(ab))
        return ab;
    /* The constructor reads (buffer, byteOffset, length) whatever argc. */
    JSValueConst args[3] = { ab, JS_NewInt32(ctx, 0), JS_NewInt64(ctx, (int64_t)n) };
    JSValue u8 = JS_NewTypedArray(ctx, 3, args, JS_TYPED_ARRAY_UINT8);
    JS_FreeValue(ctx, ab);
    return u8;
}

/* --- algorithm names --- */

static const struct {
    const char *name;
    crypto_alg alg;
} alg_names[] = {
    { "SHA-1", ALG_SHA1 }, { "SHA-256", ALG_SHA256 }, { "SHA-384", ALG_SHA384 },
    { "SHA-512", ALG_SHA512 }, { "HMAC", ALG_HMAC }, { "AES-GCM", ALG_AES_GCM },
    { "AES-CBC", ALG_AES_CBC }, { "ECDSA", ALG_ECDSA }, { "Ed25519", ALG_ED25519 },
    { "RSASSA-PKCS1-v1_5", ALG_RSASSA }, { "RSA-PSS", ALG_RSA_PSS }, { "PBKDF2", ALG_PBKDF2 }, { "HKDF", ALG_HKDF },
    { "AES-CTR", ALG_AES_CTR }, { "AES-KW", ALG_AES_KW }, { "RSA-OAEP", ALG_RSA_OAEP },
    { "ECDH", ALG_ECDH }, { "X25519", ALG_X25519 },
};

const char *crypto_alg_name(crypto_alg a)
{
    for (size_t k = 0; k < sizeof alg_names / sizeof alg_names[0]; k++)
        if (alg_names[k].alg == a)
            return alg_names[k].name;
    return "";
}

crypto_alg crypto_alg_of(JSContext *ctx, JSValueConst v, bool *node)
{
    *node = false;
    JSValue name;
    if (JS_IsString(v)) {
        name = JS_DupValue(ctx, v);
    } else if (JS_IsObject(v)) {
        name = JS_GetPropertyStr(ctx, v, "name");
        if (JS_IsException(name))
            return ALG_NONE;
        if (JS_IsUndefined(name)) {
            JS_ThrowTypeError(ctx, "the algorithm needs a name");
            return ALG_NONE;
        }
    } else {
        JS_ThrowTypeError(ctx, "an algorithm must be a string or an object");
        return ALG_NONE;
    }
    const char *s = JS_ToCString(ctx, name);
    JS_FreeValue(ctx, name);
    if (!s)
        return ALG_NONE;
    crypto_alg a = ALG_NONE;
    for (size_t k = 0; k < sizeof alg_names / sizeof alg_names[0] && !a; k++)
        if (!strcasecmp(s, alg_names[k].name))
            a = alg_names[k].alg;
    if (!a && !strcasecmp(s, "NODE-ED25519")) {
        a = ALG_ED25519;
        *node = true;
    }
    if (!a)
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "Unrecognized or unimplemented algorithm: %.100s", s);
    JS_FreeCString(ctx, s);
    return a;
}

crypto_alg crypto_hash_of(JSContext *ctx, JSValueConst alg, const char *member)
{
    if (!JS_IsObject(alg)) {
        JS_ThrowTypeError(ctx, "the algorithm needs a '%s' member", member);
        return ALG_NONE;
    }
    JSValue h = JS_GetPropertyStr(ctx, alg, member);
    if (JS_IsException(h))
        return ALG_NONE;
    if (JS_IsUndefined(h)) {
        JS_ThrowTypeError(ctx, "the algorithm needs a '%s' member", member);
        return ALG_NONE;
    }
    bool node;
    crypto_alg a = crypto_alg_of(ctx, h, &node);
    JS_FreeValue(ctx, h);
    if (a != ALG_NONE && !crypto_md(a)) {
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s is not a digest algorithm", crypto_alg_name(a));
        return ALG_NONE;
    }
    return a;
}

const EVP_MD *crypto_md(crypto_alg hash)
{
    switch (hash) {
    case ALG_SHA1: return EVP_sha1();
    case ALG_SHA256: return EVP_sha256();
    case ALG_SHA384: return EVP_sha384();
    case ALG_SHA512: return EVP_sha512();
    default: return NULL;
    }
}

/* --- jobs on the thread pool --- */

/* At most this many jobs per isolate on the pool at once (it is shared
 * with file I/O and every tenant); beyond, a job waits in the isolate's
 * queue for one of them to finish. It never runs on the loop instead: a
 * job can take seconds of native code, which no CPU check interrupts, and
 * the loop serves every other tenant of the process (50 PBKDF2 calls at
 * once stalled the worker for minutes). The queue is bounded too: its
 * jobs hold copies of their inputs outside the JavaScript heap. */
#define MAX_POOL_JOBS 2
#define MAX_QUEUED_JOBS 64

typedef struct crypto_pending {
    uv_work_t req;              /* req.data: the pending itself */
    struct crypto_pending *next, *prev;
    JSContext *ctx;             /* NULL once the isolate is gone */
    JSValue resolve, reject;
    crypto_job *job;
    uint64_t cpu_ns;            /* CPU time the pool thread spent */
    int rc;
} crypto_pending;

crypto_job *crypto_job_new(void)
{
    crypto_job *job = xcalloc(1, sizeof *job);
    job->extra = JS_UNDEFINED;
    return job;
}

static void zfree(uint8_t *p, size_t n)
{
    if (p) {
        OPENSSL_cleanse(p, n);
        free(p);
    }
}

/* Frees the job's C memory; its `extra` must already be released. */
static void job_free(crypto_job *job)
{
    zfree(job->in1, job->in1_len);
    zfree(job->in2, job->in2_len);
    zfree(job->out, job->out_len);
    free(job);
}

/* The job's outcome as a promise value: resolved, or rejected with the
 * exception (a failing work is an OperationError). */
static JSValue job_settle(JSContext *ctx, crypto_job *job, int rc)
{
    JSValue v = rc < 0 ? crypto_throw(ctx, CRYPTO_OPERATION, "The operation failed")
                       : job->done(ctx, job);
    JS_FreeValue(ctx, job->extra);
    job->extra = JS_UNDEFINED;
    job_free(job);
    return v;
}

static void start_queued(jsapi_state *st);

static void pool_work(uv_work_t *req)
{
    crypto_pending *p = req->data;
    uint64_t t0 = clock_thread_cpu_ns();
    p->rc = p->job->work(p->job);
    p->cpu_ns = clock_thread_cpu_ns() - t0;
}

static void pool_done(uv_work_t *req, int status)
{
    crypto_pending *p = req->data;
    JSContext *ctx = p->ctx;
    if (!ctx) { /* orphaned: the isolate is gone */
        job_free(p->job);
        free(p);
        return;
    }
    jsapi_state *st = jsapi_state_of(ctx);
    if (p->prev)
        p->prev->next = p->next;
    else
        st->crypto_jobs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    st->crypto_njobs--;
    if (st->host.charge_cpu)
        st->host.charge_cpu(st->host.opaque, p->cpu_ns);
    if (!st->host.enter(st->host.opaque)) {
        /* Broken (a limit): the queued jobs wait for jsapi_crypto_free. */
        JS_FreeValue(ctx, p->job->extra);
        job_free(p->job);
        goto out;
    }
    start_queued(st);
    JSValue v = job_settle(ctx, p->job, status < 0 ? -1 : p->rc);
    JSValue r;
    if (JS_IsException(v)) {
        JSValue exc = JS_GetException(ctx);
        r = JS_Call(ctx, p->reject, JS_UNDEFINED, 1, (JSValueConst *)&exc);
        JS_FreeValue(ctx, exc);
    } else {
        r = JS_Call(ctx, p->resolve, JS_UNDEFINED, 1, (JSValueConst *)&v);
        JS_FreeValue(ctx, v);
    }
    st->host.leave(st->host.opaque, r, "crypto.subtle");
out:
    JS_FreeValue(ctx, p->resolve);
    JS_FreeValue(ctx, p->reject);
    free(p);
}

/* Puts p on the pool and in the isolate's list of running jobs; -1 when
 * libuv refuses it. */
static int start_pending(jsapi_state *st, crypto_pending *p)
{
    if (uv_queue_work(st->host.loop, &p->req, pool_work, pool_done) < 0)
        return -1;
    p->prev = NULL;
    p->next = st->crypto_jobs;
    if (p->next)
        p->next->prev = p;
    st->crypto_jobs = p;
    st->crypto_njobs++;
    return 0;
}

/* Moves queued jobs to the pool while it has room for this isolate; one
 * libuv refuses is rejected. */
static void start_queued(jsapi_state *st)
{
    while (st->crypto_queue && st->crypto_njobs < MAX_POOL_JOBS) {
        crypto_pending *p = st->crypto_queue;
        st->crypto_queue = p->next;
        if (!st->crypto_queue)
            st->crypto_queue_tail = NULL;
        st->crypto_nqueued--;
        if (start_pending(st, p) == 0)
            continue;
        JSContext *ctx = p->ctx;
        JSValue exc = crypto_throw(ctx, CRYPTO_OPERATION, "The operation could not be started");
        JSValue e = JS_GetException(ctx);
        JS_FreeValue(ctx, exc);
        JS_FreeValue(ctx, JS_Call(ctx, p->reject, JS_UNDEFINED, 1, (JSValueConst *)&e));
        JS_FreeValue(ctx, e);
        JS_FreeValue(ctx, p->job->extra);
        job_free(p->job);
        JS_FreeValue(ctx, p->resolve);
        JS_FreeValue(ctx, p->reject);
        free(p);
    }
}

JSValue crypto_job_run(JSContext *ctx, crypto_job *job)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (st->crypto_nqueued >= MAX_QUEUED_JOBS) {
        JS_FreeValue(ctx, job->extra);
        job_free(job);
        return crypto_throw(ctx, CRYPTO_OPERATION,
                            "too many crypto operations in flight (at most %d running and %d waiting)",
                            MAX_POOL_JOBS, MAX_QUEUED_JOBS);
    }
    JSValue funcs[2];
    JSValue promise = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(promise)) {
        JS_FreeValue(ctx, job->extra);
        job_free(job);
        return promise;
    }
    crypto_pending *p = xcalloc(1, sizeof *p);
    p->req.data = p;
    p->ctx = ctx;
    p->resolve = funcs[0];
    p->reject = funcs[1];
    p->job = job;
    if (st->crypto_njobs >= MAX_POOL_JOBS) {
        if (st->crypto_queue_tail)
            st->crypto_queue_tail->next = p;
        else
            st->crypto_queue = p;
        st->crypto_queue_tail = p;
        st->crypto_nqueued++;
        return promise;
    }
    if (start_pending(st, p) < 0) {
        JS_FreeValue(ctx, p->resolve);
        JS_FreeValue(ctx, p->reject);
        JS_FreeValue(ctx, promise);
        free(p);
        JSValue v = job_settle(ctx, job, -1);
        if (JS_IsException(v))
            return v;
        return jsapi_promise_resolve(ctx, v);
    }
    return promise;
}

void jsapi_crypto_free(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    for (crypto_pending *p = st->crypto_jobs, *next; p; p = next) {
        next = p->next;
        JS_FreeValue(ctx, p->resolve);
        JS_FreeValue(ctx, p->reject);
        JS_FreeValue(ctx, p->job->extra);
        p->job->extra = JS_UNDEFINED;
        p->ctx = NULL;
        p->next = p->prev = NULL;
    }
    st->crypto_jobs = NULL;
    st->crypto_njobs = 0;
    /* Queued jobs never started: nothing refers to them but the queue. */
    for (crypto_pending *p = st->crypto_queue, *next; p; p = next) {
        next = p->next;
        JS_FreeValue(ctx, p->resolve);
        JS_FreeValue(ctx, p->reject);
        JS_FreeValue(ctx, p->job->extra);
        job_free(p->job);
        free(p);
    }
    st->crypto_queue = st->crypto_queue_tail = NULL;
    st->crypto_nqueued = 0;
}

/* --- the crypto object --- */

/* Float arrays are typed arrays too, but getRandomValues takes integers
 * only; QuickJS exposes no typed-array kind, so their class ids are
 * learned once from instances (class ids of built-ins are process-wide). */
static JSClassID float32_class_id, float64_class_id;

static void learn_float_classes(JSContext *ctx)
{
    if (float32_class_id)
        return;
    /* The constructor reads three arguments whatever argc. */
    JSValueConst args[3] = { JS_NewInt32(ctx, 0), JS_UNDEFINED, JS_UNDEFINED };
    JSValue a = JS_NewTypedArray(ctx, 3, args, JS_TYPED_ARRAY_FLOAT32);
    JSValue b = JS_NewTypedArray(ctx, 3, args, JS_TYPED_ARRAY_FLOAT64);
    if (!JS_IsException(a) && !JS_IsException(b)) {
        float32_class_id = JS_GetClassID(a);
        float64_class_id = JS_GetClassID(b);
    }
    if (JS_IsException(a) || JS_IsException(b))
        JS_FreeValue(ctx, JS_GetException(ctx));
    JS_FreeValue(ctx, a);
    JS_FreeValue(ctx, b);
}

static JSValue get_random_values(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValueConst v = argc ? argv[0] : JS_UNDEFINED;
    size_t off, len, per;
    JSValue ab = JS_IsObject(v) ? JS_GetTypedArrayBuffer(ctx, v, &off, &len, &per) : JS_EXCEPTION;
    if (JS_IsException(ab)) {
        if (JS_IsObject(v))
            JS_FreeValue(ctx, JS_GetException(ctx));
        return crypto_throw(ctx, CRYPTO_TYPE_MISMATCH,
                            "getRandomValues() takes an integer typed array");
    }
    learn_float_classes(ctx);
    JSClassID id = JS_GetClassID(v);
    if (id == float32_class_id || id == float64_class_id) {
        JS_FreeValue(ctx, ab);
        return crypto_throw(ctx, CRYPTO_TYPE_MISMATCH,
                            "getRandomValues() takes an integer typed array");
    }
    if (len > 65536) {
        JS_FreeValue(ctx, ab);
        return crypto_throw(ctx, CRYPTO_QUOTA,
                            "getRandomValues() fills at most 65536 bytes, %zu requested", len);
    }
    size_t ablen;
    uint8_t *p = JS_GetArrayBuffer(ctx, &ablen, ab);
    JS_FreeValue(ctx, ab);
    if (p && len && off <= ablen && len <= ablen - off && RAND_bytes(p + off, (int)len) != 1)
        return crypto_throw(ctx, CRYPTO_OPERATION, "the random number generator failed");
    return JS_DupValue(ctx, v);
}

static JSValue random_uuid(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return crypto_throw(ctx, CRYPTO_OPERATION, "the random number generator failed");
    b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
    b[8] = (b[8] & 0x3f) | 0x80; /* variant 10 */
    char s[37];
    snprintf(s, sizeof s,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return JS_NewString(ctx, s);
}

/* `subtle` and `DigestStream` replace their getter with the value on
 * first use. */
static JSValue member_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    JSValue s = magic ? jsapi_digest_stream_create(ctx) : jsapi_subtle_create(ctx);
    if (JS_IsException(s))
        return s;
    if (JS_IsObject(this_val))
        JS_DefinePropertyValueStr(ctx, this_val, magic ? "DigestStream" : "subtle",
                                  JS_DupValue(ctx, s),
                                  magic ? JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE
                                        : JS_PROP_CONFIGURABLE);
    return s;
}

static const JSCFunctionListEntry crypto_funcs[] = {
    JS_CFUNC_DEF("getRandomValues", 1, get_random_values),
    JS_CFUNC_DEF("randomUUID", 0, random_uuid),
    JS_CGETSET_MAGIC_DEF("subtle", member_get, NULL, 0),
    JS_CGETSET_MAGIC_DEF("DigestStream", member_get, NULL, 1),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Crypto", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_crypto_create(JSContext *ctx)
{
    JSValue obj = JS_NewObject(ctx);
    if (JS_IsException(obj))
        return obj;
    JS_SetPropertyFunctionList(ctx, obj, crypto_funcs, sizeof crypto_funcs / sizeof crypto_funcs[0]);
    return obj;
}
