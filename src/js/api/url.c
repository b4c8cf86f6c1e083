/* URL and URLSearchParams (WHATWG URL Standard) as JS classes over the C
 * parser in web/url.h. A URL's searchParams object is created on first
 * access and kept in step both ways: URL setters re-parse its list, and
 * its mutations write the query back ("update steps"). The two objects
 * hold each other strongly (a cycle QuickJS's GC collects), so neither
 * finalizer ever looks into the other object.
 *
 * web/url allocates with malloc, outside the isolate's heap cap; so that a
 * tenant cannot hold unbounded memory in URLs, each object large enough to
 * matter also holds a js_malloc'd "charge" block of about the size of its
 * C data, which counts against the cap (and, untouched, costs little
 * resident memory). */
#include "js/api/api_internal.h"

#include <errno.h>
#include <string.h>

#include "web/url.h"

typedef struct charge {
    void *block; /* js_malloc'd, never read or written */
    size_t size;
} charge;

typedef struct jsurl {
    url *u;
    JSValue params; /* the URLSearchParams object, or undefined until used */
    charge charge;
} jsurl;

typedef struct jsparams {
    url_params list;
    JSValue owner; /* the URL object whose query this list is, or undefined */
    charge charge;
} jsparams;

/* Below this many bytes of C data an object is not charged: small URLs
 * cost more in JS objects than in C strings. */
#define CHARGE_MIN 1024

/* Charges about `bytes` to the JS heap; 0, or -1 with an out-of-memory
 * exception when the cap refuses it. */
static int charge_to(JSContext *ctx, charge *c, size_t bytes)
{
    if (bytes < CHARGE_MIN)
        bytes = 0;
    if (bytes <= c->size && bytes >= c->size / 2)
        return 0;
    js_free(ctx, c->block);
    c->block = NULL;
    c->size = 0;
    if (!bytes)
        return 0;
    c->block = js_malloc(ctx, bytes);
    if (!c->block)
        return -1;
    c->size = bytes;
    return 0;
}

/* The C data of a url: its serialization, and about as much again for
 * the components it keeps apart. */
static size_t url_bytes(const url *u)
{
    size_t n;
    url_get(u, URL_HREF, &n);
    return 2 * n;
}

static size_t params_bytes(const url_params *l)
{
    size_t n = l->cap * sizeof *l->items;
    for (size_t i = 0; i < l->len; i++)
        n += l->items[i].name_len + l->items[i].value_len + 2;
    return n;
}

/* --- URL --- */

static void url_finalizer(JSRuntime *rt, JSValue val)
{
    jsurl *p = JS_GetOpaque(val, jsapi_url_class_id);
    if (!p)
        return;
    url_free(p->u);
    JS_FreeValueRT(rt, p->params);
    js_free_rt(rt, p->charge.block);
    js_free_rt(rt, p);
}

static void url_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    jsurl *p = JS_GetOpaque(val, jsapi_url_class_id);
    if (p)
        JS_MarkValue(rt, p->params, mark);
}

const JSClassDef jsapi_url_class = { "URL", .finalizer = url_finalizer, .gc_mark = url_mark };

static void params_finalizer(JSRuntime *rt, JSValue val)
{
    jsparams *p = JS_GetOpaque(val, jsapi_params_class_id);
    if (!p)
        return;
    url_params_free(&p->list);
    JS_FreeValueRT(rt, p->owner);
    js_free_rt(rt, p->charge.block);
    js_free_rt(rt, p);
}

static void params_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    jsparams *p = JS_GetOpaque(val, jsapi_params_class_id);
    if (p)
        JS_MarkValue(rt, p->owner, mark);
}

const JSClassDef jsapi_params_class = { "URLSearchParams", .finalizer = params_finalizer,
                                        .gc_mark = params_mark };

static JSValue throw_invalid(JSContext *ctx, int rc, const char *input)
{
    if (rc == -E2BIG)
        return JS_ThrowRangeError(ctx, "URL too long");
    return JS_ThrowTypeError(ctx, "Invalid URL: '%.200s'", input);
}

/* Parses input (and base, unless undefined) into a url; NULL with an
 * exception (TypeError) or, with `quiet`, NULL and no exception. */
static url *parse_args(JSContext *ctx, JSValueConst input, JSValueConst base, bool quiet)
{
    size_t ilen, blen = 0;
    const char *b = NULL;
    const char *s = jsapi_to_usv(ctx, input, &ilen);
    if (!s)
        return NULL;
    if (!JS_IsUndefined(base)) {
        b = jsapi_to_usv(ctx, base, &blen);
        if (!b) {
            JS_FreeCString(ctx, s);
            return NULL;
        }
    }
    url *u = NULL;
    int rc = url_parse_str(s, ilen, b, blen, &u);
    if (rc < 0 && !quiet)
        throw_invalid(ctx, rc, s);
    JS_FreeCString(ctx, s);
    if (b)
        JS_FreeCString(ctx, b);
    return rc < 0 ? NULL : u;
}

static JSValue wrap_url(JSContext *ctx, JSValueConst new_target, url *u)
{
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_url_class_id);
    jsurl *p = JS_IsException(obj) ? NULL : js_mallocz(ctx, sizeof *p);
    if (!p) {
        url_free(u);
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    p->u = u;
    p->params = JS_UNDEFINED;
    JS_SetOpaque(obj, p);
    if (charge_to(ctx, &p->charge, url_bytes(u)) < 0) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

static JSValue url_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "URL constructor: at least 1 argument required");
    url *u = parse_args(ctx, argv[0], argc > 1 ? argv[1] : JS_UNDEFINED, false);
    return u ? wrap_url(ctx, new_target, u) : JS_EXCEPTION;
}

static JSValue url_can_parse_js(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "URL.canParse: at least 1 argument required");
    url *u = parse_args(ctx, argv[0], argc > 1 ? argv[1] : JS_UNDEFINED, true);
    if (!u)
        return JS_HasException(ctx) ? JS_EXCEPTION : JS_FALSE;
    url_free(u);
    return JS_TRUE;
}

static JSValue url_parse_js(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "URL.parse: at least 1 argument required");
    url *u = parse_args(ctx, argv[0], argc > 1 ? argv[1] : JS_UNDEFINED, true);
    if (!u)
        return JS_HasException(ctx) ? JS_EXCEPTION : JS_NULL;
    /* `this` is URL or a subclass when called as URL.parse(). */
    return wrap_url(ctx, JS_IsConstructor(ctx, this_val) ? this_val : JS_UNDEFINED, u);
}

static jsurl *this_url(JSContext *ctx, JSValueConst this_val)
{
    return JS_GetOpaque2(ctx, this_val, jsapi_url_class_id);
}

/* Re-reads the URL's query into its searchParams list, if it has one. */
static void sync_params(JSContext *ctx, jsurl *p)
{
    jsparams *sp = JS_GetOpaque(p->params, jsapi_params_class_id);
    if (!sp)
        return;
    url_params_clear(&sp->list);
    size_t n;
    const char *q = url_get(p->u, URL_SEARCH, &n);
    if (n > 1)
        url_params_parse(&sp->list, q + 1, n - 1); /* fits: it came from a parsed URL */
    /* A refused charge leaves an out-of-memory exception for the caller;
     * the isolate is over its cap and is discarded anyway. */
    charge_to(ctx, &sp->charge, params_bytes(&sp->list));
}

static JSValue url_get_part(JSContext *ctx, JSValueConst this_val, int magic)
{
    jsurl *p = this_url(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    size_t n;
    const char *s = url_get(p->u, (url_part)magic, &n);
    return JS_NewStringLen(ctx, s, n);
}

static JSValue url_set_part(JSContext *ctx, JSValueConst this_val, JSValueConst val, int magic)
{
    jsurl *p = this_url(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    size_t n;
    const char *s = jsapi_to_usv(ctx, val, &n);
    if (!s)
        return JS_EXCEPTION;
    int rc = url_set(p->u, (url_part)magic, s, n);
    if (rc < 0) {
        throw_invalid(ctx, rc, s);
        JS_FreeCString(ctx, s);
        return JS_EXCEPTION;
    }
    JS_FreeCString(ctx, s);
    if (magic == URL_HREF || magic == URL_SEARCH)
        sync_params(ctx, p);
    if (charge_to(ctx, &p->charge, url_bytes(p->u)) < 0 || JS_HasException(ctx))
        return JS_EXCEPTION;
    return JS_UNDEFINED;
}

static JSValue params_wrap(JSContext *ctx, JSValueConst new_target, jsparams **out);

static JSValue url_search_params(JSContext *ctx, JSValueConst this_val)
{
    jsurl *p = this_url(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    if (JS_IsUndefined(p->params)) {
        if (JS_IsException(jsapi_lazy(ctx, JSAPI_URLSEARCHPARAMS)))
            return JS_EXCEPTION;
        jsparams *sp;
        JSValue obj = params_wrap(ctx, JS_UNDEFINED, &sp);
        if (JS_IsException(obj))
            return obj;
        sp->owner = JS_DupValue(ctx, this_val);
        p->params = obj;
        sync_params(ctx, p);
        if (JS_HasException(ctx))
            return JS_EXCEPTION;
    }
    return JS_DupValue(ctx, p->params);
}

static JSValue url_to_string(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return url_get_part(ctx, this_val, URL_HREF);
}

static const JSCFunctionListEntry url_funcs[] = {
    JS_CGETSET_MAGIC_DEF("href", url_get_part, url_set_part, URL_HREF),
    JS_CGETSET_MAGIC_DEF("origin", url_get_part, NULL, URL_ORIGIN),
    JS_CGETSET_MAGIC_DEF("protocol", url_get_part, url_set_part, URL_PROTOCOL),
    JS_CGETSET_MAGIC_DEF("username", url_get_part, url_set_part, URL_USERNAME),
    JS_CGETSET_MAGIC_DEF("password", url_get_part, url_set_part, URL_PASSWORD),
    JS_CGETSET_MAGIC_DEF("host", url_get_part, url_set_part, URL_HOST),
    JS_CGETSET_MAGIC_DEF("hostname", url_get_part, url_set_part, URL_HOSTNAME),
    JS_CGETSET_MAGIC_DEF("port", url_get_part, url_set_part, URL_PORT),
    JS_CGETSET_MAGIC_DEF("pathname", url_get_part, url_set_part, URL_PATHNAME),
    JS_CGETSET_MAGIC_DEF("search", url_get_part, url_set_part, URL_SEARCH),
    JS_CGETSET_DEF("searchParams", url_search_params, NULL),
    JS_CGETSET_MAGIC_DEF("hash", url_get_part, url_set_part, URL_HASH),
    JS_CFUNC_DEF("toString", 0, url_to_string),
    JS_CFUNC_DEF("toJSON", 0, url_to_string),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "URL", JS_PROP_CONFIGURABLE),
};

static const JSCFunctionListEntry url_statics[] = {
    JS_CFUNC_DEF("canParse", 1, url_can_parse_js),
    JS_CFUNC_DEF("parse", 1, url_parse_js),
};

JSValue jsapi_url_create(JSContext *ctx)
{
    return jsapi_make_class(ctx, jsapi_url_class_id, "URL", url_ctor, 1, url_funcs,
                            sizeof url_funcs / sizeof url_funcs[0], url_statics,
                            sizeof url_statics / sizeof url_statics[0]);
}

/* --- URLSearchParams --- */

static JSValue params_wrap(JSContext *ctx, JSValueConst new_target, jsparams **out)
{
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_params_class_id);
    jsparams *p = JS_IsException(obj) ? NULL : js_mallocz(ctx, sizeof *p);
    if (!p) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    url_params_init(&p->list);
    p->owner = JS_UNDEFINED;
    JS_SetOpaque(obj, p);
    *out = p;
    return obj;
}

/* Appends the pair (name, value) converted to USVStrings. */
static int append_pair(JSContext *ctx, jsparams *p, JSValueConst name, JSValueConst value)
{
    size_t nl, vl;
    const char *n = jsapi_to_usv(ctx, name, &nl);
    const char *v = n ? jsapi_to_usv(ctx, value, &vl) : NULL;
    if (v)
        url_params_append(&p->list, n, nl, v, vl);
    if (n)
        JS_FreeCString(ctx, n);
    if (v)
        JS_FreeCString(ctx, v);
    return v ? 0 : -1;
}

/* A sequence of pairs: each item must itself be a sequence of two. */
static int init_from_sequence(JSContext *ctx, jsparams *p, JSValueConst init)
{
    JSValue arr = JS_UNDEFINED, item = JS_UNDEFINED, pair = JS_UNDEFINED;
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue array = JS_GetPropertyStr(ctx, global, "Array");
    JSValue from = JS_GetPropertyStr(ctx, array, "from");
    JS_FreeValue(ctx, global);
    int rc = -1;
    /* Array.from runs the iterator protocol for us. */
    arr = JS_Call(ctx, from, array, 1, &init);
    if (JS_IsException(arr))
        goto done;
    int64_t len;
    if (jsapi_get_length(ctx, arr, &len) < 0)
        goto done;
    for (int64_t i = 0; i < len; i++) {
        item = JS_GetPropertyUint32(ctx, arr, (uint32_t)i);
        if (JS_IsException(item))
            goto done;
        if (!JS_IsObject(item)) {
            JS_ThrowTypeError(ctx, "URLSearchParams: each pair must be a sequence");
            goto done;
        }
        pair = JS_Call(ctx, from, array, 1, (JSValueConst *)&item);
        int64_t plen;
        if (JS_IsException(pair) || jsapi_get_length(ctx, pair, &plen) < 0)
            goto done;
        if (plen != 2) {
            JS_ThrowTypeError(ctx, "URLSearchParams: each pair must have exactly two items");
            goto done;
        }
        JSValue n = JS_GetPropertyUint32(ctx, pair, 0), v = JS_GetPropertyUint32(ctx, pair, 1);
        int r = JS_IsException(n) || JS_IsException(v) ? -1 : append_pair(ctx, p, n, v);
        JS_FreeValue(ctx, n);
        JS_FreeValue(ctx, v);
        if (r < 0)
            goto done;
        JS_FreeValue(ctx, item);
        JS_FreeValue(ctx, pair);
        item = pair = JS_UNDEFINED;
    }
    rc = 0;
done:
    JS_FreeValue(ctx, item);
    JS_FreeValue(ctx, pair);
    JS_FreeValue(ctx, arr);
    JS_FreeValue(ctx, from);
    JS_FreeValue(ctx, array);
    return rc;
}

/* A record<USVString, USVString>: own enumerable string keys. */
static int init_from_record(JSContext *ctx, jsparams *p, JSValueConst init)
{
    JSPropertyEnum *props;
    uint32_t n;
    if (JS_GetOwnPropertyNames(ctx, &props, &n, init, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) < 0)
        return -1;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        JSValue key = JS_AtomToString(ctx, props[i].atom);
        JSValue v = JS_GetProperty(ctx, init, props[i].atom);
        rc = JS_IsException(key) || JS_IsException(v) ? -1 : append_pair(ctx, p, key, v);
        JS_FreeValue(ctx, key);
        JS_FreeValue(ctx, v);
    }
    for (uint32_t i = 0; i < n; i++)
        JS_FreeAtom(ctx, props[i].atom);
    js_free(ctx, props);
    return rc;
}

static JSValue params_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    JSValueConst init = argc > 0 ? argv[0] : JS_UNDEFINED;
    jsparams *p;
    JSValue obj = params_wrap(ctx, new_target, &p);
    if (JS_IsException(obj))
        return obj;
    int rc = 0;
    if (JS_IsObject(init)) {
        JSValue m = jsapi_iterator_method(ctx, init);
        if (JS_IsException(m))
            rc = -1;
        else if (!JS_IsUndefined(m) && !JS_IsNull(m))
            rc = JS_IsFunction(ctx, m) ? init_from_sequence(ctx, p, init)
                                       : (JS_ThrowTypeError(ctx, "URLSearchParams: not iterable"), -1);
        else
            rc = init_from_record(ctx, p, init);
        JS_FreeValue(ctx, m);
    } else if (!JS_IsUndefined(init)) {
        size_t n;
        const char *s = jsapi_to_usv(ctx, init, &n);
        if (!s) {
            rc = -1;
        } else {
            size_t skip = n && s[0] == '?';
            if (url_params_parse(&p->list, s + skip, n - skip) < 0)
                rc = (JS_ThrowRangeError(ctx, "URLSearchParams: input too long"), -1);
            JS_FreeCString(ctx, s);
        }
    }
    if (rc == 0)
        rc = charge_to(ctx, &p->charge, params_bytes(&p->list));
    if (rc < 0) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

static jsparams *this_params(JSContext *ctx, JSValueConst this_val)
{
    return JS_GetOpaque2(ctx, this_val, jsapi_params_class_id);
}

/* The update steps: the owner URL's query becomes the serialization. */
static int update(JSContext *ctx, jsparams *p)
{
    if (charge_to(ctx, &p->charge, params_bytes(&p->list)) < 0)
        return -1;
    jsurl *o = JS_GetOpaque(p->owner, jsapi_url_class_id);
    if (!o)
        return 0;
    buf b;
    buf_init(&b, URL_MAX_INPUT * 3);
    int rc = url_params_serialize(&p->list, &b);
    if (rc == 0)
        url_set_query_raw(o->u, b.data ? b.data : "", b.len);
    buf_free(&b);
    if (rc < 0)
        JS_ThrowRangeError(ctx, "URLSearchParams: query too long");
    else if (charge_to(ctx, &o->charge, url_bytes(o->u)) < 0)
        rc = -1;
    return rc;
}

/* Name (and, when `want_value` and given, value) as USVStrings. */
typedef struct nv {
    const char *n, *v;
    size_t nl, vl;
} nv;

static int get_nv(JSContext *ctx, int argc, JSValueConst *argv, int need, bool want_value, nv *a)
{
    memset(a, 0, sizeof *a);
    if (argc < need) {
        JS_ThrowTypeError(ctx, "URLSearchParams: %d argument(s) required", need);
        return -1;
    }
    a->n = jsapi_to_usv(ctx, argv[0], &a->nl);
    if (!a->n)
        return -1;
    if (want_value && argc > 1 && !JS_IsUndefined(argv[1])) {
        a->v = jsapi_to_usv(ctx, argv[1], &a->vl);
        if (!a->v) {
            JS_FreeCString(ctx, a->n);
            return -1;
        }
    }
    return 0;
}

static void free_nv(JSContext *ctx, nv *a)
{
    if (a->n)
        JS_FreeCString(ctx, a->n);
    if (a->v)
        JS_FreeCString(ctx, a->v);
}

enum { P_APPEND, P_DELETE, P_GET, P_GETALL, P_HAS, P_SET };

static bool pair_is(const url_param *e, const nv *a, bool with_value)
{
    return e->name_len == a->nl && !memcmp(e->name, a->n, a->nl) &&
           (!with_value || (e->value_len == a->vl && !memcmp(e->value, a->v, a->vl)));
}

static JSValue params_op(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                         int magic)
{
    jsparams *p = this_params(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    nv a;
    int need = magic == P_APPEND || magic == P_SET ? 2 : 1;
    if (get_nv(ctx, argc, argv, need, magic != P_GET && magic != P_GETALL, &a) < 0)
        return JS_EXCEPTION;
    JSValue r = JS_UNDEFINED;
    switch (magic) {
    case P_APPEND:
        url_params_append(&p->list, a.n, a.nl, a.v ? a.v : "undefined", a.v ? a.vl : 9);
        break;
    case P_SET:
        url_params_set(&p->list, a.n, a.nl, a.v ? a.v : "undefined", a.v ? a.vl : 9);
        break;
    case P_DELETE:
        url_params_delete(&p->list, a.n, a.nl, a.v, a.vl);
        break;
    case P_GET: {
        long i = url_params_find(&p->list, a.n, a.nl);
        r = i < 0 ? JS_NULL
                  : JS_NewStringLen(ctx, p->list.items[i].value, p->list.items[i].value_len);
        break;
    }
    case P_GETALL: {
        r = JS_NewArray(ctx);
        uint32_t k = 0;
        for (size_t i = 0; i < p->list.len && !JS_IsException(r); i++) {
            if (!pair_is(&p->list.items[i], &a, false))
                continue;
            JSValue v = JS_NewStringLen(ctx, p->list.items[i].value, p->list.items[i].value_len);
            if (JS_IsException(v) || JS_SetPropertyUint32(ctx, r, k++, v) < 0) {
                JS_FreeValue(ctx, r);
                r = JS_EXCEPTION;
            }
        }
        break;
    }
    case P_HAS: {
        bool found = false;
        for (size_t i = 0; i < p->list.len && !found; i++)
            found = pair_is(&p->list.items[i], &a, a.v != NULL);
        r = JS_NewBool(ctx, found);
        break;
    }
    }
    free_nv(ctx, &a);
    if ((magic == P_APPEND || magic == P_SET || magic == P_DELETE) && update(ctx, p) < 0)
        return JS_EXCEPTION;
    return r;
}

static JSValue params_sort(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsparams *p = this_params(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    url_params_sort(&p->list);
    return update(ctx, p) < 0 ? JS_EXCEPTION : JS_UNDEFINED;
}

static JSValue params_to_string(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsparams *p = this_params(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    buf b;
    buf_init(&b, URL_MAX_INPUT * 3);
    if (url_params_serialize(&p->list, &b) < 0) {
        buf_free(&b);
        return JS_ThrowRangeError(ctx, "URLSearchParams: too long");
    }
    JSValue r = JS_NewStringLen(ctx, b.data ? b.data : "", b.len);
    buf_free(&b);
    return r;
}

static JSValue params_size(JSContext *ctx, JSValueConst this_val)
{
    jsparams *p = this_params(ctx, this_val);
    return p ? JS_NewInt64(ctx, (int64_t)p->list.len) : JS_EXCEPTION;
}

/* entries(), keys(), values() and [Symbol.iterator]: a live iterator, as
 * the standard has it: it walks the list by index, so pairs deleted or
 * added during the iteration are seen as such. */
typedef struct params_cursor {
    JSValue params;
    uint32_t index;
    int kind; /* 0 [name, value], 1 names, 2 values */
} params_cursor;

static void iter_finalizer(JSRuntime *rt, JSValue val)
{
    params_cursor *it = JS_GetOpaque(val, jsapi_params_iter_class_id);
    if (!it)
        return;
    JS_FreeValueRT(rt, it->params);
    js_free_rt(rt, it);
}

static void iter_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    params_cursor *it = JS_GetOpaque(val, jsapi_params_iter_class_id);
    if (it)
        JS_MarkValue(rt, it->params, mark);
}

const JSClassDef jsapi_params_iter_class = { "URLSearchParams Iterator",
                                             .finalizer = iter_finalizer, .gc_mark = iter_mark };

static JSValue params_iter(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                           int magic)
{
    if (!this_params(ctx, this_val))
        return JS_EXCEPTION;
    JSValue obj = JS_NewObjectClass(ctx, (int)jsapi_params_iter_class_id);
    params_cursor *it = JS_IsException(obj) ? NULL : js_malloc(ctx, sizeof *it);
    if (!it) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    it->params = JS_DupValue(ctx, this_val);
    it->index = 0;
    it->kind = magic;
    JS_SetOpaque(obj, it);
    return obj;
}

static JSValue iter_result(JSContext *ctx, JSValue value, bool done)
{
    JSValue r = JS_NewObject(ctx);
    if (JS_IsException(r) || JS_IsException(value)) {
        JS_FreeValue(ctx, r);
        JS_FreeValue(ctx, value);
        return JS_EXCEPTION;
    }
    JS_SetPropertyStr(ctx, r, "value", value);
    JS_SetPropertyStr(ctx, r, "done", JS_NewBool(ctx, done));
    return r;
}

static JSValue iter_next(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    params_cursor *it = JS_GetOpaque2(ctx, this_val, jsapi_params_iter_class_id);
    if (!it)
        return JS_EXCEPTION;
    jsparams *p = JS_GetOpaque(it->params, jsapi_params_class_id);
    if (!p || it->index >= p->list.len)
        return iter_result(ctx, JS_UNDEFINED, true);
    const url_param *e = &p->list.items[it->index++];
    JSValue item;
    if (it->kind == 1) {
        item = JS_NewStringLen(ctx, e->name, e->name_len);
    } else if (it->kind == 2) {
        item = JS_NewStringLen(ctx, e->value, e->value_len);
    } else {
        item = JS_NewArray(ctx);
        if (!JS_IsException(item)) {
            JS_SetPropertyUint32(ctx, item, 0, JS_NewStringLen(ctx, e->name, e->name_len));
            JS_SetPropertyUint32(ctx, item, 1, JS_NewStringLen(ctx, e->value, e->value_len));
        }
    }
    return iter_result(ctx, item, false);
}

static const JSCFunctionListEntry iter_funcs[] = {
    JS_CFUNC_DEF("next", 0, iter_next),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "URLSearchParams Iterator", JS_PROP_CONFIGURABLE),
};

/* The iterator prototype inherits from %IteratorPrototype% (so iterators
 * are iterable), which C reaches through an array iterator. */
static int make_iter_proto(JSContext *ctx)
{
    JSValue arr = JS_NewArray(ctx);
    JSValue values = JS_GetPropertyStr(ctx, arr, "values");
    JSValue ai = JS_IsFunction(ctx, values) ? JS_Call(ctx, values, arr, 0, NULL) : JS_EXCEPTION;
    JSValue ai_proto = JS_IsException(ai) ? JS_EXCEPTION : JS_GetPrototype(ctx, ai);
    JSValue iter_proto = JS_IsException(ai_proto) ? JS_EXCEPTION : JS_GetPrototype(ctx, ai_proto);
    JSValue proto = JS_IsException(iter_proto) ? JS_EXCEPTION : JS_NewObjectProto(ctx, iter_proto);
    JS_FreeValue(ctx, iter_proto);
    JS_FreeValue(ctx, ai_proto);
    JS_FreeValue(ctx, ai);
    JS_FreeValue(ctx, values);
    JS_FreeValue(ctx, arr);
    if (JS_IsException(proto)) {
        if (!JS_HasException(ctx))
            JS_ThrowTypeError(ctx, "URLSearchParams: no iterator prototype");
        return -1;
    }
    JS_SetPropertyFunctionList(ctx, proto, iter_funcs, sizeof iter_funcs / sizeof iter_funcs[0]);
    JS_SetClassProto(ctx, jsapi_params_iter_class_id, proto);
    return 0;
}

static JSValue params_for_each(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsparams *p = this_params(ctx, this_val);
    if (!p)
        return JS_EXCEPTION;
    if (argc < 1 || !JS_IsFunction(ctx, argv[0]))
        return JS_ThrowTypeError(ctx, "URLSearchParams.forEach requires a function");
    /* The callback may change the list: index it afresh on every turn. */
    for (size_t i = 0; i < p->list.len; i++) {
        const url_param *e = &p->list.items[i];
        JSValue args[3] = { JS_NewStringLen(ctx, e->value, e->value_len),
                            JS_NewStringLen(ctx, e->name, e->name_len), JS_DupValue(ctx, this_val) };
        JSValue r = JS_IsException(args[0]) || JS_IsException(args[1])
                        ? JS_EXCEPTION
                        : JS_Call(ctx, argv[0], argc > 1 ? argv[1] : JS_UNDEFINED, 3,
                                  (JSValueConst *)args);
        for (int k = 0; k < 3; k++)
            JS_FreeValue(ctx, args[k]);
        if (JS_IsException(r))
            return r;
        JS_FreeValue(ctx, r);
    }
    return JS_UNDEFINED;
}

static const JSCFunctionListEntry params_funcs[] = {
    JS_CFUNC_MAGIC_DEF("append", 2, params_op, P_APPEND),
    JS_CFUNC_MAGIC_DEF("delete", 1, params_op, P_DELETE),
    JS_CFUNC_MAGIC_DEF("get", 1, params_op, P_GET),
    JS_CFUNC_MAGIC_DEF("getAll", 1, params_op, P_GETALL),
    JS_CFUNC_MAGIC_DEF("has", 1, params_op, P_HAS),
    JS_CFUNC_MAGIC_DEF("set", 2, params_op, P_SET),
    JS_CFUNC_DEF("sort", 0, params_sort),
    JS_CFUNC_DEF("toString", 0, params_to_string),
    JS_CFUNC_DEF("forEach", 1, params_for_each),
    JS_CGETSET_DEF("size", params_size, NULL),
    JS_CFUNC_MAGIC_DEF("entries", 0, params_iter, 0),
    JS_CFUNC_MAGIC_DEF("keys", 0, params_iter, 1),
    JS_CFUNC_MAGIC_DEF("values", 0, params_iter, 2),
    JS_CFUNC_MAGIC_DEF("[Symbol.iterator]", 0, params_iter, 0),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "URLSearchParams", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_params_create(JSContext *ctx)
{
    if (make_iter_proto(ctx) < 0)
        return JS_EXCEPTION;
    return jsapi_make_class(ctx, jsapi_params_class_id, "URLSearchParams", params_ctor, 0,
                            params_funcs, sizeof params_funcs / sizeof params_funcs[0], NULL, 0);
}
