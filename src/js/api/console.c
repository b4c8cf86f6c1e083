/* console: log/info/warn/error/debug as log lines tagged with the tenant's
 * name, and V8's other console methods (assert, count, time, trace, dir,
 * table, group) that code written for Workers calls. The text is formatted by inspect.js (a bytecode bundle loaded on
 * the first console call: format specifiers, Map/Set/typed arrays, Web API
 * objects by their getters, as Node's util.inspect does); the small C
 * formatter here is the fallback, and what the host uses for uncaught
 * exceptions (jsapi_inspect): strings as they are at the top level,
 * objects and arrays as `{ a: 1, b: 'x' }`, errors with their stack. */
#include "js/api/api_internal.h"

#include <math.h>
#include <string.h>

#include "core/log.h"

/* A single console call's text is capped (longer text is cut, and says
 * so); a tenant cannot flood the log with one call. */
#define CONSOLE_MAX_BYTES (64 * 1024)
/* Nor with many: each isolate may write a burst of CONSOLE_BURST_BYTES,
 * then CONSOLE_RATE_BYTES a second; lines past that are dropped (the
 * first drop is logged, and the next line written says how many were) (a loop of console.log calls
 * wrote 450 MB into the log in the 6 s before the CPU limit stopped it). */
#define CONSOLE_BURST_BYTES (1024 * 1024)
#define CONSOLE_RATE_BYTES (256 * 1024)
/* Room kept at the end of a cut text for saying so. */
#define CUT_NOTE_BYTES 64
#define INSPECT_DEPTH 2
#define INSPECT_MAX_ITEMS 100
#define INSPECT_STACK_LINES 10

static void inspect(JSContext *ctx, JSValueConst v, buf *b, int depth, bool top);

/* Appends s, or as much of it as fits in b (cut at a UTF-8 character
 * boundary) and a note of how much was left out. */
static void append_capped(buf *b, const char *s, size_t len)
{
    if (buf_append(b, s, len) == 0)
        return;
    size_t room = b->max > b->len + CUT_NOTE_BYTES ? b->max - b->len - CUT_NOTE_BYTES : 0;
    size_t n = room < len ? room : len;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    buf_append(b, s, n);
    buf_printf(b, "... [%zu more bytes]", len - n);
}

static void append_cstr_of(JSContext *ctx, JSValueConst v, buf *b)
{
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, v);
    if (!s) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        buf_append_str(b, "[unprintable]");
        return;
    }
    append_capped(b, s, len);
    JS_FreeCString(ctx, s);
}

static void quote(JSContext *ctx, JSValueConst v, buf *b)
{
    buf_append_str(b, "'");
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, v);
    for (size_t i = 0; s && i < len; i++) {
        if (s[i] == '\'' || s[i] == '\\')
            buf_printf(b, "\\%c", s[i]);
        else if (s[i] == '\n')
            buf_append_str(b, "\\n");
        else
            buf_append(b, &s[i], 1);
    }
    JS_FreeCString(ctx, s);
    buf_append_str(b, "'");
}

static bool is_identifier(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '$'))
            return false;
    return true;
}

/* The constructor's name when it is not plain Object, e.g. "Headers". */
static char *class_name(JSContext *ctx, JSValueConst v)
{
    JSValue c = JS_GetPropertyStr(ctx, v, "constructor");
    JSValue n = JS_IsObject(c) ? JS_GetPropertyStr(ctx, c, "name") : JS_UNDEFINED;
    char *r = NULL;
    if (JS_IsString(n)) {
        const char *s = JS_ToCString(ctx, n);
        if (s && strcmp(s, "Object") != 0 && *s)
            r = jsapi_strdup(ctx, s, strlen(s));
        JS_FreeCString(ctx, s);
    }
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
    JS_FreeValue(ctx, n);
    JS_FreeValue(ctx, c);
    return r;
}

static void inspect_object(JSContext *ctx, JSValueConst v, buf *b, int depth)
{
    if (JS_IsFunction(ctx, v)) {
        JSValue n = JS_GetPropertyStr(ctx, v, "name");
        buf_append_str(b, "[Function: ");
        if (JS_IsString(n))
            append_cstr_of(ctx, n, b);
        else
            buf_append_str(b, "(anonymous)");
        buf_append_str(b, "]");
        JS_FreeValue(ctx, n);
        return;
    }
    if (JS_IsError(ctx, v)) {
        JSValue stack = JS_GetPropertyStr(ctx, v, "stack");
        append_cstr_of(ctx, v, b);
        const char *st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
        if (st && *st) {
            /* Endless recursion makes endless stacks; the first frames tell. */
            const char *p = st;
            int lines = 0;
            while (*p && lines < INSPECT_STACK_LINES) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                buf_append_str(b, "\n");
                buf_append(b, p, n);
                p += n + (nl != NULL);
                lines++;
            }
            int more = 0;
            for (; *p; p++)
                more += *p == '\n';
            if (more)
                buf_printf(b, "\n    ... %d more", more);
        }
        JS_FreeCString(ctx, st);
        JS_FreeValue(ctx, stack);
        return;
    }
    int is_array = JS_IsArray(ctx, v);
    if (depth > INSPECT_DEPTH) {
        buf_append_str(b, is_array > 0 ? "[Array]" : "[Object]");
        return;
    }
    /* Headers keep their fields internally; show them instead of {}. */
    jsapi_headers *h = JS_GetOpaque(v, jsapi_headers_class_id);
    if (h) {
        buf_append_str(b, h->count ? "Headers { " : "Headers {}");
        for (size_t i = 0; i < h->count; i++)
            buf_printf(b, "%s'%s': '%s'", i ? ", " : "", h->items[i].name, h->items[i].value);
        if (h->count)
            buf_append_str(b, " }");
        return;
    }
    char *cname = class_name(ctx, v);
    if (is_array > 0) {
        int64_t len = 0;
        jsapi_get_length(ctx, v, &len);
        buf_append_str(b, len ? "[ " : "[]");
        for (int64_t i = 0; i < len && i < INSPECT_MAX_ITEMS; i++) {
            JSValue e = JS_GetPropertyUint32(ctx, v, (uint32_t)i);
            if (i)
                buf_append_str(b, ", ");
            inspect(ctx, e, b, depth + 1, false);
            JS_FreeValue(ctx, e);
        }
        if (len > INSPECT_MAX_ITEMS)
            buf_printf(b, ", ... %lld more items", (long long)(len - INSPECT_MAX_ITEMS));
        if (len)
            buf_append_str(b, " ]");
        js_free(ctx, cname);
        return;
    }
    JSPropertyEnum *props = NULL;
    uint32_t n = 0;
    if (JS_GetOwnPropertyNames(ctx, &props, &n, v, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) < 0) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        n = 0;
    }
    if (cname)
        buf_printf(b, "%s ", cname);
    buf_append_str(b, n ? "{ " : "{}");
    for (uint32_t i = 0; i < n; i++) {
        if (i == INSPECT_MAX_ITEMS) {
            buf_printf(b, ", ... %u more", n - i);
            break;
        }
        const char *key = JS_AtomToCString(ctx, props[i].atom);
        if (i)
            buf_append_str(b, ", ");
        if (key && is_identifier(key)) {
            buf_append_str(b, key);
        } else {
            JSValue k = JS_AtomToString(ctx, props[i].atom);
            quote(ctx, k, b);
            JS_FreeValue(ctx, k);
        }
        JS_FreeCString(ctx, key);
        buf_append_str(b, ": ");
        JSValue e = JS_GetProperty(ctx, v, props[i].atom);
        if (JS_IsException(e))
            JS_FreeValue(ctx, JS_GetException(ctx));
        inspect(ctx, e, b, depth + 1, false);
        JS_FreeValue(ctx, e);
    }
    if (n)
        buf_append_str(b, " }");
    for (uint32_t i = 0; i < n; i++)
        JS_FreeAtom(ctx, props[i].atom);
    js_free(ctx, props);
    js_free(ctx, cname);
}

static void inspect(JSContext *ctx, JSValueConst v, buf *b, int depth, bool top)
{
    if (JS_IsString(v)) {
        if (top)
            append_cstr_of(ctx, v, b);
        else
            quote(ctx, v, b);
    } else if (JS_IsObject(v)) {
        inspect_object(ctx, v, b, depth);
    } else {
        append_cstr_of(ctx, v, b); /* numbers, booleans, null, undefined, symbols, bigints */
        if (JS_VALUE_GET_TAG(v) == JS_TAG_BIG_INT)
            buf_append_str(b, "n");
    }
}

void jsapi_inspect(JSContext *ctx, JSValueConst v, buf *b) { inspect(ctx, v, b, 0, true); }

/* True when the C formatter prints these arguments exactly as inspect.js
 * would: strings (no format specifiers), numbers other than -0, booleans,
 * null, undefined. The common console.log("text") then never loads the
 * bundle (about 50 us the first time in an isolate). */
static bool plain_args(JSContext *ctx, int argc, JSValueConst *argv)
{
    for (int i = 0; i < argc; i++) {
        JSValueConst v = argv[i];
        if (JS_IsString(v)) {
            if (i == 0 && argc > 1) {
                const char *s = JS_ToCString(ctx, v);
                bool pct = !s || strchr(s, '%');
                JS_FreeCString(ctx, s);
                if (pct)
                    return false;
            }
        } else if (JS_IsNumber(v)) {
            double d;
            if (JS_ToFloat64(ctx, &d, v) < 0 || (d == 0 && signbit(d)))
                return false;
        } else if (!JS_IsBool(v) && !JS_IsNull(v) && !JS_IsUndefined(v)) {
            return false;
        }
    }
    return true;
}

/* Whether the isolate's log budget has room for len bytes now (taken if
 * so); a line that has none is counted as dropped. */
static bool log_budget(jsapi_state *st, size_t len)
{
    uint64_t now = st->host.loop ? uv_now(st->host.loop) : 0;
    if (!st->log_started) {
        st->log_started = true;
        st->log_tokens = CONSOLE_BURST_BYTES;
    } else if (now > st->log_refilled) {
        st->log_tokens += (now - st->log_refilled) * CONSOLE_RATE_BYTES / 1000;
        if (st->log_tokens > CONSOLE_BURST_BYTES)
            st->log_tokens = CONSOLE_BURST_BYTES;
    }
    st->log_refilled = now;
    if (len > st->log_tokens) {
        /* Said at once too: the isolate may be gone before a next line. */
        if (!st->log_dropped_lines)
            log_tenant(LOG_WARN, st->host.name,
                       "console output over the log budget (%d KiB, then %d KiB a second): lines are dropped",
                       CONSOLE_BURST_BYTES / 1024, CONSOLE_RATE_BYTES / 1024);
        st->log_dropped_lines++;
        st->log_dropped_bytes += len;
        return false;
    }
    st->log_tokens -= len;
    if (st->log_dropped_lines) {
        log_tenant(LOG_WARN, st->host.name,
                   "%llu console line(s) (%llu bytes) dropped: over the log budget of %d KiB a second",
                   (unsigned long long)st->log_dropped_lines, (unsigned long long)st->log_dropped_bytes,
                   CONSOLE_RATE_BYTES / 1024);
        st->log_dropped_lines = st->log_dropped_bytes = 0;
    }
    return true;
}

/* Logs text, each line indented by the console.group() depth, within the
 * isolate's log budget. */
static void emit(JSContext *ctx, log_level level, const char *text)
{
    jsapi_state *st = jsapi_state_of(ctx);
    const char *tenant = st ? st->host.name : "?";
    unsigned depth = st ? st->console_group : 0;
    if (st && !log_budget(st, strlen(text) + 2 * depth))
        return;
    if (!depth) {
        log_tenant(level, tenant, "%s", text);
        return;
    }
    buf b;
    buf_init(&b, CONSOLE_MAX_BYTES + 64);
    for (const char *p = text;;) {
        const char *nl = strchr(p, '\n');
        for (unsigned i = 0; i < depth && i < 32; i++)
            buf_append_str(&b, "  ");
        buf_append(&b, p, nl ? (size_t)(nl - p + 1) : strlen(p));
        if (!nl)
            break;
        p = nl + 1;
    }
    log_tenant(level, tenant, "%s", b.data ? b.data : "");
    buf_free(&b);
}

static JSValue console_print(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                             int magic)
{
    buf b;
    buf_init(&b, CONSOLE_MAX_BYTES);
    JSValue args = plain_args(ctx, argc, argv) ? JS_EXCEPTION : JS_NewArray(ctx);
    for (int i = 0; i < argc && !JS_IsException(args); i++)
        JS_SetPropertyUint32(ctx, args, (uint32_t)i, JS_DupValue(ctx, argv[i]));
    JSValue text = JS_IsException(args) ? JS_EXCEPTION
                                        : jsapi_bundle_call(ctx, JSAPI_BUNDLE_INSPECT, "format", 1, (JSValueConst *)&args);
    JS_FreeValue(ctx, args);
    if (JS_IsString(text)) { /* else the plain arguments or a failed bundle: C formats them */
        append_cstr_of(ctx, text, &b);
        argc = 0;
    } else if (JS_HasException(ctx)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
    }
    JS_FreeValue(ctx, text);
    for (int i = 0; i < argc; i++) {
        if (i)
            buf_append_str(&b, " ");
        inspect(ctx, argv[i], &b, 0, true);
    }
    if (jsapi_charge_work(ctx, b.len + CUT_NOTE_BYTES) < 0) {
        buf_free(&b);
        return JS_EXCEPTION;
    }
    emit(ctx, (log_level)magic, b.data ? b.data : "");
    buf_free(&b);
    return JS_UNDEFINED;
}

enum { EXTRA_ASSERT, EXTRA_COUNT, EXTRA_COUNT_RESET, EXTRA_TIME, EXTRA_TIME_LOG, EXTRA_TIME_END,
       EXTRA_TRACE, EXTRA_DIR, EXTRA_TABLE };
static const char *const extra_names[] = {"assert", "count", "countReset", "time", "timeLog",
                                          "timeEnd", "trace", "dir", "table"};

/* console.assert, count, time … (inspect.js's extra() decides what to print).
 * Code written for Workers calls them; a missing one would be a TypeError
 * in the middle of a handler. */
static JSValue console_extra(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                             int magic)
{
    if (magic == EXTRA_ASSERT && argc > 0 && JS_ToBool(ctx, argv[0]) > 0)
        return JS_UNDEFINED; /* the common case loads nothing */
    JSValue args[2] = {JS_NewString(ctx, extra_names[magic]), JS_NewArray(ctx)};
    for (int i = 0; i < argc && !JS_IsException(args[1]); i++)
        JS_SetPropertyUint32(ctx, args[1], (uint32_t)i, JS_DupValue(ctx, argv[i]));
    JSValue r = JS_IsException(args[0]) || JS_IsException(args[1])
                    ? JS_EXCEPTION
                    : jsapi_bundle_call(ctx, JSAPI_BUNDLE_INSPECT, "extra", 2, (JSValueConst *)args);
    JS_FreeValue(ctx, args[0]);
    JS_FreeValue(ctx, args[1]);
    if (JS_IsException(r))
        return r;
    if (JS_IsObject(r)) {
        JSValue lv = JS_GetPropertyUint32(ctx, r, 0), tv = JS_GetPropertyUint32(ctx, r, 1);
        const char *level = JS_ToCString(ctx, lv), *text = JS_ToCString(ctx, tv);
        if (level && text)
            emit(ctx, !strcmp(level, "error") ? LOG_ERROR : !strcmp(level, "warn") ? LOG_WARN : LOG_INFO,
                 text);
        JS_FreeCString(ctx, level);
        JS_FreeCString(ctx, text);
        JS_FreeValue(ctx, lv);
        JS_FreeValue(ctx, tv);
        if (!level || !text) {
            JS_FreeValue(ctx, r);
            return JS_EXCEPTION;
        }
    }
    JS_FreeValue(ctx, r);
    return JS_UNDEFINED;
}

/* group(...label) / groupCollapsed: the label as log prints it, then what
 * follows is indented; groupEnd() undoes one level. */
static JSValue console_group(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                             int magic)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (magic) {
        if (st && st->console_group)
            st->console_group--;
        return JS_UNDEFINED;
    }
    if (argc > 0) {
        JSValue r = console_print(ctx, this_val, argc, argv, LOG_INFO);
        if (JS_IsException(r))
            return r;
    }
    if (st && st->console_group < 1000)
        st->console_group++;
    return JS_UNDEFINED;
}

static const JSCFunctionListEntry console_funcs[] = {
    JS_CFUNC_MAGIC_DEF("log", 0, console_print, LOG_INFO),
    JS_CFUNC_MAGIC_DEF("info", 0, console_print, LOG_INFO),
    JS_CFUNC_MAGIC_DEF("warn", 0, console_print, LOG_WARN),
    JS_CFUNC_MAGIC_DEF("error", 0, console_print, LOG_ERROR),
    JS_CFUNC_MAGIC_DEF("debug", 0, console_print, LOG_DEBUG),
    JS_CFUNC_MAGIC_DEF("assert", 0, console_extra, EXTRA_ASSERT),
    JS_CFUNC_MAGIC_DEF("count", 0, console_extra, EXTRA_COUNT),
    JS_CFUNC_MAGIC_DEF("countReset", 0, console_extra, EXTRA_COUNT_RESET),
    JS_CFUNC_MAGIC_DEF("time", 0, console_extra, EXTRA_TIME),
    JS_CFUNC_MAGIC_DEF("timeLog", 0, console_extra, EXTRA_TIME_LOG),
    JS_CFUNC_MAGIC_DEF("timeEnd", 0, console_extra, EXTRA_TIME_END),
    JS_CFUNC_MAGIC_DEF("trace", 0, console_extra, EXTRA_TRACE),
    JS_CFUNC_MAGIC_DEF("dir", 0, console_extra, EXTRA_DIR),
    JS_CFUNC_MAGIC_DEF("table", 0, console_extra, EXTRA_TABLE),
    JS_CFUNC_MAGIC_DEF("group", 0, console_group, 0),
    JS_CFUNC_MAGIC_DEF("groupCollapsed", 0, console_group, 0),
    JS_CFUNC_MAGIC_DEF("groupEnd", 0, console_group, 1),
};

JSValue jsapi_console_create(JSContext *ctx)
{
    JSValue c = JS_NewObject(ctx);
    if (!JS_IsException(c))
        JS_SetPropertyFunctionList(ctx, c, console_funcs, sizeof console_funcs / sizeof console_funcs[0]);
    return c;
}
