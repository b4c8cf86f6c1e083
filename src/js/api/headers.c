/* Headers (WHATWG Fetch): an ordered list of header fields with
 * case-insensitive names. Names are stored lower-cased (as Workers and
 * browsers expose them); iteration yields the sorted, combined view the
 * spec calls "sort and combine", with Set-Cookie values kept apart. */
#include "js/api/api_internal.h"

#include <stdlib.h>
#include <string.h>

static void headers_finalizer(JSRuntime *rt, JSValue val)
{
    jsapi_headers *h = JS_GetOpaque(val, jsapi_headers_class_id);
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++)
        js_free_rt(rt, h->items[i].name);
    js_free_rt(rt, h->items);
    js_free_rt(rt, h);
}

const JSClassDef jsapi_headers_class = { "Headers", .finalizer = headers_finalizer };

jsapi_headers *jsapi_headers_get_list(JSContext *ctx, JSValueConst obj)
{
    return JS_GetOpaque2(ctx, obj, jsapi_headers_class_id);
}

static bool is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_http_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Name as a lower-cased js_malloc'd copy, or NULL with a TypeError. */
static char *take_name(JSContext *ctx, JSValueConst v, size_t *len)
{
    const char *s = JS_ToCStringLen(ctx, len, v);
    if (!s)
        return NULL;
    bool ok = *len > 0;
    for (size_t i = 0; ok && i < *len; i++)
        ok = is_token_char((unsigned char)s[i]);
    if (!ok) {
        JS_ThrowTypeError(ctx, "Invalid header name: '%s'", s);
        JS_FreeCString(ctx, s);
        return NULL;
    }
    char *n = jsapi_strdup(ctx, s, *len);
    JS_FreeCString(ctx, s);
    for (size_t i = 0; n && i < *len; i++)
        if (n[i] >= 'A' && n[i] <= 'Z')
            n[i] = (char)(n[i] + 32);
    return n;
}

/* Value normalized (leading/trailing HTTP whitespace removed), or NULL with
 * a TypeError for NUL, CR or LF inside. */
static char *take_value(JSContext *ctx, JSValueConst v, size_t *len)
{
    size_t n;
    const char *s = JS_ToCStringLen(ctx, &n, v);
    if (!s)
        return NULL;
    const char *p = s;
    while (n && is_http_ws(*p))
        p++, n--;
    while (n && is_http_ws(p[n - 1]))
        n--;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0' || p[i] == '\r' || p[i] == '\n') {
            JS_ThrowTypeError(ctx, "Invalid header value");
            JS_FreeCString(ctx, s);
            return NULL;
        }
    }
    char *r = jsapi_strdup(ctx, p, n);
    *len = n;
    JS_FreeCString(ctx, s);
    return r;
}

int jsapi_headers_append(JSContext *ctx, jsapi_headers *h, const char *name, size_t name_len,
                         const char *value, size_t value_len)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4;
        jsapi_header *items = js_realloc(ctx, h->items, cap * sizeof *items);
        if (!items)
            return -1;
        h->items = items;
        h->cap = cap;
    }
    char *block = js_malloc(ctx, name_len + value_len + 2);
    if (!block)
        return -1;
    for (size_t i = 0; i < name_len; i++)
        block[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
    block[name_len] = '\0';
    memcpy(block + name_len + 1, value, value_len);
    block[name_len + 1 + value_len] = '\0';
    h->items[h->count++] = (jsapi_header){ block, block + name_len + 1, name_len, value_len };
    return 0;
}

static void remove_at(JSContext *ctx, jsapi_headers *h, size_t i)
{
    js_free(ctx, h->items[i].name);
    memmove(&h->items[i], &h->items[i + 1], (h->count - i - 1) * sizeof h->items[0]);
    h->count--;
}

char *jsapi_headers_get(JSContext *ctx, const jsapi_headers *h, const char *name)
{
    size_t total = 0, n = 0;
    for (size_t i = 0; i < h->count; i++)
        if (strcmp(h->items[i].name, name) == 0)
            total += h->items[i].value_len + 2, n++;
    if (!n)
        return NULL;
    char *out = js_malloc(ctx, total + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->items[i].name, name) != 0)
            continue;
        if (p != out)
            memcpy(p, ", ", 2), p += 2;
        memcpy(p, h->items[i].value, h->items[i].value_len);
        p += h->items[i].value_len;
    }
    *p = '\0';
    return out;
}

static jsapi_headers *this_headers(JSContext *ctx, JSValueConst this_val, bool mutate)
{
    jsapi_headers *h = jsapi_headers_get_list(ctx, this_val);
    if (h && mutate && h->guard == JSAPI_GUARD_IMMUTABLE) {
        JS_ThrowTypeError(ctx, "Can't modify immutable headers");
        return NULL;
    }
    return h;
}

JSValue jsapi_headers_new(JSContext *ctx, jsapi_headers **out)
{
    jsapi_lazy(ctx, JSAPI_HEADERS); /* the class prototype */
    JSValue obj = JS_NewObjectClass(ctx, (int)jsapi_headers_class_id);
    if (JS_IsException(obj))
        return obj;
    jsapi_headers *h = js_mallocz(ctx, sizeof *h);
    if (!h) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    JS_SetOpaque(obj, h);
    if (out)
        *out = h;
    return obj;
}

static int append_js(JSContext *ctx, jsapi_headers *h, JSValueConst name, JSValueConst value)
{
    size_t nl, vl;
    char *n = take_name(ctx, name, &nl);
    if (!n)
        return -1;
    char *v = take_value(ctx, value, &vl);
    int rc = v ? jsapi_headers_append(ctx, h, n, nl, v, vl) : -1;
    js_free(ctx, n);
    js_free(ctx, v);
    return rc;
}

/* Array.from(v): the iterator protocol run for us, for sequences that are
 * not arrays (a Map, another Headers' entries(), a generator …). */
static JSValue array_from(JSContext *ctx, JSValueConst v)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue array = JS_GetPropertyStr(ctx, global, "Array");
    JSValue from = JS_GetPropertyStr(ctx, array, "from");
    JSValue r = JS_Call(ctx, from, array, 1, &v);
    JS_FreeValue(ctx, from);
    JS_FreeValue(ctx, array);
    JS_FreeValue(ctx, global);
    return r;
}

/* Appends each [name, value] pair of an array (of arrays or other
 * iterables of two). */
static int fill_pairs(JSContext *ctx, jsapi_headers *h, JSValueConst list)
{
    int64_t len;
    if (jsapi_get_length(ctx, list, &len) < 0)
        return -1;
    for (int64_t i = 0; i < len; i++) {
        JSValue pair = JS_GetPropertyUint32(ctx, list, (uint32_t)i);
        if (!JS_IsException(pair) && JS_IsObject(pair) && JS_IsArray(ctx, pair) == 0) {
            JSValue arr = array_from(ctx, pair);
            JS_FreeValue(ctx, pair);
            pair = arr;
        }
        int64_t plen = -1;
        if (JS_IsException(pair) || !JS_IsObject(pair) || jsapi_get_length(ctx, pair, &plen) < 0 ||
            plen != 2) {
            JS_FreeValue(ctx, pair);
            if (!JS_HasException(ctx))
                JS_ThrowTypeError(ctx, "Headers init pairs must be [name, value]");
            return -1;
        }
        JSValue n = JS_GetPropertyUint32(ctx, pair, (uint32_t)0), v = JS_GetPropertyUint32(ctx, pair, (uint32_t)1);
        int rc = JS_IsException(n) || JS_IsException(v) ? -1 : append_js(ctx, h, n, v);
        JS_FreeValue(ctx, n);
        JS_FreeValue(ctx, v);
        JS_FreeValue(ctx, pair);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Fills h from a HeadersInit: Headers, a sequence of [name, value] pairs
 * (any iterable, as WebIDL converts one: an array, a Map, entries() …),
 * or a record of names to values. */
static int fill(JSContext *ctx, jsapi_headers *h, JSValueConst init)
{
    if (JS_IsUndefined(init) || JS_IsNull(init))
        return 0;
    if (!JS_IsObject(init)) {
        JS_ThrowTypeError(ctx, "Headers init must be an object");
        return -1;
    }
    jsapi_headers *src = JS_GetOpaque(init, jsapi_headers_class_id);
    if (src) {
        for (size_t i = 0; i < src->count; i++)
            if (jsapi_headers_append(ctx, h, src->items[i].name, src->items[i].name_len,
                                     src->items[i].value, src->items[i].value_len) < 0)
                return -1;
        return 0;
    }
    int is_array = JS_IsArray(ctx, init);
    if (is_array < 0)
        return -1;
    if (is_array)
        return fill_pairs(ctx, h, init);
    JSValue m = jsapi_iterator_method(ctx, init);
    if (JS_IsException(m))
        return -1;
    bool iterable = !JS_IsUndefined(m) && !JS_IsNull(m);
    bool callable = JS_IsFunction(ctx, m);
    JS_FreeValue(ctx, m);
    if (iterable) {
        if (!callable) {
            JS_ThrowTypeError(ctx, "Headers init: Symbol.iterator is not a function");
            return -1;
        }
        JSValue arr = array_from(ctx, init);
        int rc = JS_IsException(arr) ? -1 : fill_pairs(ctx, h, arr);
        JS_FreeValue(ctx, arr);
        return rc;
    }
    JSPropertyEnum *props;
    uint32_t nprops;
    if (JS_GetOwnPropertyNames(ctx, &props, &nprops, init, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) < 0)
        return -1;
    int rc = 0;
    for (uint32_t i = 0; i < nprops && rc == 0; i++) {
        JSValue n = JS_AtomToString(ctx, props[i].atom);
        JSValue v = JS_GetProperty(ctx, init, props[i].atom);
        rc = JS_IsException(n) || JS_IsException(v) ? -1 : append_js(ctx, h, n, v);
        JS_FreeValue(ctx, n);
        JS_FreeValue(ctx, v);
    }
    for (uint32_t i = 0; i < nprops; i++)
        JS_FreeAtom(ctx, props[i].atom);
    js_free(ctx, props);
    return rc;
}

JSValue jsapi_headers_from_init(JSContext *ctx, JSValueConst init)
{
    jsapi_headers *h;
    JSValue obj = jsapi_headers_new(ctx, &h);
    if (!JS_IsException(obj) && fill(ctx, h, init) < 0) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

JSValue jsapi_headers_clone(JSContext *ctx, JSValueConst obj)
{
    jsapi_headers *src = jsapi_headers_get_list(ctx, obj);
    if (!src)
        return JS_EXCEPTION;
    JSValue copy = jsapi_headers_from_init(ctx, obj);
    if (!JS_IsException(copy))
        ((jsapi_headers *)JS_GetOpaque(copy, jsapi_headers_class_id))->guard = src->guard;
    return copy;
}

static JSValue headers_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_headers_class_id);
    if (JS_IsException(obj))
        return obj;
    jsapi_headers *h = js_mallocz(ctx, sizeof *h);
    if (!h) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    JS_SetOpaque(obj, h);
    if (argc > 0 && fill(ctx, h, argv[0]) < 0) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

static JSValue headers_append(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, true);
    if (!h)
        return JS_EXCEPTION;
    if (argc < 2)
        return JS_ThrowTypeError(ctx, "Headers.append requires a name and a value");
    return append_js(ctx, h, argv[0], argv[1]) < 0 ? JS_EXCEPTION : JS_UNDEFINED;
}

static JSValue headers_set(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, true);
    if (!h)
        return JS_EXCEPTION;
    if (argc < 2)
        return JS_ThrowTypeError(ctx, "Headers.set requires a name and a value");
    size_t nl, vl;
    char *n = take_name(ctx, argv[0], &nl);
    char *v = n ? take_value(ctx, argv[1], &vl) : NULL;
    if (!v) {
        js_free(ctx, n);
        return JS_EXCEPTION;
    }
    /* The first field of that name takes the value in place; the rest go. */
    size_t first = h->count;
    for (size_t i = 0; i < h->count;) {
        if (strcmp(h->items[i].name, n) != 0) {
            i++;
        } else if (first == h->count) {
            first = i++;
        } else {
            remove_at(ctx, h, i);
        }
    }
    int rc = jsapi_headers_append(ctx, h, n, nl, v, vl);
    if (rc == 0 && first < h->count - 1) {
        jsapi_header added = h->items[h->count - 1];
        js_free(ctx, h->items[first].name);
        h->items[first] = added;
        h->count--;
    }
    js_free(ctx, n);
    js_free(ctx, v);
    return rc < 0 ? JS_EXCEPTION : JS_UNDEFINED;
}

static JSValue headers_delete(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, true);
    if (!h)
        return JS_EXCEPTION;
    size_t nl;
    char *n = take_name(ctx, argc ? argv[0] : JS_UNDEFINED, &nl);
    if (!n)
        return JS_EXCEPTION;
    for (size_t i = 0; i < h->count;)
        if (strcmp(h->items[i].name, n) == 0)
            remove_at(ctx, h, i);
        else
            i++;
    js_free(ctx, n);
    return JS_UNDEFINED;
}

static JSValue headers_get(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, false);
    if (!h)
        return JS_EXCEPTION;
    size_t nl;
    char *n = take_name(ctx, argc ? argv[0] : JS_UNDEFINED, &nl);
    if (!n)
        return JS_EXCEPTION;
    char *v = jsapi_headers_get(ctx, h, n);
    js_free(ctx, n);
    if (!v)
        return JS_HasException(ctx) ? JS_EXCEPTION : JS_NULL;
    JSValue r = JS_NewString(ctx, v);
    js_free(ctx, v);
    return r;
}

static JSValue headers_has(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, false);
    if (!h)
        return JS_EXCEPTION;
    size_t nl;
    char *n = take_name(ctx, argc ? argv[0] : JS_UNDEFINED, &nl);
    if (!n)
        return JS_EXCEPTION;
    bool found = false;
    for (size_t i = 0; i < h->count && !found; i++)
        found = strcmp(h->items[i].name, n) == 0;
    js_free(ctx, n);
    return JS_NewBool(ctx, found);
}

static JSValue headers_get_set_cookie(JSContext *ctx, JSValueConst this_val, int argc,
                                      JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, false);
    if (!h)
        return JS_EXCEPTION;
    JSValue arr = JS_NewArray(ctx);
    uint32_t k = 0;
    for (size_t i = 0; i < h->count && !JS_IsException(arr); i++) {
        if (strcmp(h->items[i].name, "set-cookie") != 0)
            continue;
        JSValue v = JS_NewStringLen(ctx, h->items[i].value, h->items[i].value_len);
        if (JS_IsException(v) || JS_SetPropertyUint32(ctx, arr, k++, v) < 0) {
            JS_FreeValue(ctx, arr);
            arr = JS_EXCEPTION;
        }
    }
    return arr;
}

static int cmp_index_by_name(const void *a, const void *b, void *arg)
{
    const jsapi_headers *h = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(h->items[i].name, h->items[j].name);
    return c ? c : (i < j ? -1 : i > j); /* stable: insertion order among equals */
}

/* The sorted-and-combined pairs as a JS array of [name, value] (kind 0),
 * of names (1) or of values (2). */
static JSValue sorted_pairs(JSContext *ctx, jsapi_headers *h, int kind)
{
    size_t *order = js_malloc(ctx, (h->count + 1) * sizeof *order);
    if (!order)
        return JS_EXCEPTION;
    for (size_t i = 0; i < h->count; i++)
        order[i] = i;
    qsort_r(order, h->count, sizeof *order, cmp_index_by_name, h);
    JSValue arr = JS_NewArray(ctx);
    uint32_t k = 0;
    for (size_t i = 0; i < h->count && !JS_IsException(arr);) {
        const jsapi_header *f = &h->items[order[i]];
        size_t j = i + 1;
        while (j < h->count && strcmp(h->items[order[j]].name, f->name) == 0)
            j++;
        bool cookie = strcmp(f->name, "set-cookie") == 0;
        for (size_t c = i; c < j; c += cookie ? 1 : j - i) {
            JSValue name = JS_NewStringLen(ctx, f->name, f->name_len), value;
            if (cookie) {
                value = JS_NewStringLen(ctx, h->items[order[c]].value, h->items[order[c]].value_len);
            } else {
                char *v = jsapi_headers_get(ctx, h, f->name);
                value = v ? JS_NewString(ctx, v) : JS_EXCEPTION;
                js_free(ctx, v);
            }
            JSValue item;
            if (kind == 1) {
                item = name;
                JS_FreeValue(ctx, value);
            } else if (kind == 2) {
                item = value;
                JS_FreeValue(ctx, name);
            } else {
                item = JS_NewArray(ctx);
                JS_SetPropertyUint32(ctx, item, 0, name);
                JS_SetPropertyUint32(ctx, item, 1, value);
            }
            if (JS_IsException(item) || JS_SetPropertyUint32(ctx, arr, k++, item) < 0) {
                JS_FreeValue(ctx, arr);
                arr = JS_EXCEPTION;
                break;
            }
        }
        i = j;
    }
    js_free(ctx, order);
    return arr;
}

/* entries() (also [Symbol.iterator]), keys(), values(): an iterator over a
 * snapshot of the sorted, combined list (WebIDL's iterators are live). */
static JSValue headers_iter(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic)
{
    jsapi_headers *h = this_headers(ctx, this_val, false);
    if (!h)
        return JS_EXCEPTION;
    JSValue arr = sorted_pairs(ctx, h, magic);
    if (JS_IsException(arr))
        return arr;
    JSValue values = JS_GetPropertyStr(ctx, arr, "values");
    JSValue it = JS_IsException(values) ? values : JS_Call(ctx, values, arr, 0, NULL);
    JS_FreeValue(ctx, values);
    JS_FreeValue(ctx, arr);
    return it;
}

static JSValue headers_for_each(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_headers *h = this_headers(ctx, this_val, false);
    if (!h)
        return JS_EXCEPTION;
    if (argc < 1 || !JS_IsFunction(ctx, argv[0]))
        return JS_ThrowTypeError(ctx, "Headers.forEach requires a function");
    JSValue arr = sorted_pairs(ctx, h, 0);
    if (JS_IsException(arr))
        return arr;
    int64_t len = 0;
    jsapi_get_length(ctx, arr, &len);
    JSValue ret = JS_UNDEFINED;
    for (int64_t i = 0; i < len; i++) {
        JSValue pair = JS_GetPropertyUint32(ctx, arr, (uint32_t)i);
        JSValueConst args[3] = { JS_GetPropertyUint32(ctx, pair, (uint32_t)1), JS_GetPropertyUint32(ctx, pair, (uint32_t)0),
                                 this_val };
        JSValue r = JS_Call(ctx, argv[0], argc > 1 ? argv[1] : JS_UNDEFINED, 3, args);
        JS_FreeValue(ctx, (JSValue)args[0]);
        JS_FreeValue(ctx, (JSValue)args[1]);
        JS_FreeValue(ctx, pair);
        if (JS_IsException(r)) {
            ret = r;
            break;
        }
        JS_FreeValue(ctx, r);
    }
    JS_FreeValue(ctx, arr);
    return ret;
}

static const JSCFunctionListEntry headers_funcs[] = {
    JS_CFUNC_DEF("append", 2, headers_append),
    JS_CFUNC_DEF("delete", 1, headers_delete),
    JS_CFUNC_DEF("get", 1, headers_get),
    JS_CFUNC_DEF("getSetCookie", 0, headers_get_set_cookie),
    JS_CFUNC_DEF("has", 1, headers_has),
    JS_CFUNC_DEF("set", 2, headers_set),
    JS_CFUNC_DEF("forEach", 1, headers_for_each),
    JS_CFUNC_MAGIC_DEF("entries", 0, headers_iter, 0),
    JS_CFUNC_MAGIC_DEF("keys", 0, headers_iter, 1),
    JS_CFUNC_MAGIC_DEF("values", 0, headers_iter, 2),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Headers", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_headers_create(JSContext *ctx)
{
    JSValue ctor = jsapi_make_class(ctx, jsapi_headers_class_id, "Headers", headers_ctor, 0, headers_funcs,
                                    sizeof headers_funcs / sizeof headers_funcs[0], NULL, 0);
    if (JS_IsException(ctor))
        return ctor;
    /* WebIDL: the default iterator is the same function object as entries. */
    JSValue proto = JS_GetClassProto(ctx, jsapi_headers_class_id);
    JSValue entries = JS_GetPropertyStr(ctx, proto, "entries");
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue sym_ctor = JS_GetPropertyStr(ctx, global, "Symbol");
    JSValue sym = JS_GetPropertyStr(ctx, sym_ctor, "iterator");
    JSAtom a = JS_ValueToAtom(ctx, sym);
    JS_DefinePropertyValue(ctx, proto, a, entries, JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeAtom(ctx, a);
    JS_FreeValue(ctx, sym);
    JS_FreeValue(ctx, sym_ctor);
    JS_FreeValue(ctx, global);
    JS_FreeValue(ctx, proto);
    return ctor;
}
