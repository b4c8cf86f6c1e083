/* Compile-only checks of a worker's script, for deploys: the script is
 * parsed and compiled in a throwaway runtime with a memory cap, never run,
 * so a deploy with a syntax error is refused before any worker sees it. */
#include <errno.h>
#include <quickjs.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "js/isolate.h"

#define CHECK_MEMORY_LIMIT (256u << 20)
#define MAX_SCRIPT_BYTES (64u << 20)

/* Compiles src as `flags` says; on failure returns the message as file:line: text. */
static int compile(JSContext *ctx, const buf *src, const char *path, int flags, char **msg)
{
    JSValue v = JS_Eval(ctx, src->data, src->len, path, flags | JS_EVAL_FLAG_COMPILE_ONLY);
    if (!JS_IsException(v)) {
        JS_FreeValue(ctx, v);
        return 0;
    }
    JSValue exc = JS_GetException(ctx);
    const char *text = JS_ToCString(ctx, exc);
    JSValue stack = JS_GetPropertyStr(ctx, exc, "stack");
    const char *where = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
    /* QuickJS puts "at file:line:col" for syntax errors in the stack. */
    const char *at = where ? strstr(where, path) : NULL;
    size_t at_len = at ? strcspn(at, ")\n") : 0;
    buf m;
    buf_init(&m, 4096);
    if (at)
        buf_printf(&m, "%.*s: ", (int)at_len, at);
    buf_append_str(&m, text ? text : "syntax error");
    *msg = buf_steal(&m, NULL);
    JS_FreeCString(ctx, text);
    if (where)
        JS_FreeCString(ctx, where);
    JS_FreeValue(ctx, stack);
    JS_FreeValue(ctx, exc);
    return -EINVAL;
}

int iso_check_script(const char *path, err *e)
{
    buf src;
    buf_init(&src, MAX_SCRIPT_BYTES);
    int rc = file_read_all(path, MAX_SCRIPT_BYTES, &src, e);
    if (rc != 0) {
        buf_free(&src);
        return rc;
    }
    if (!src.data)
        buf_append_str(&src, "");
    JSRuntime *rt = JS_NewRuntime();
    JSContext *ctx = rt ? JS_NewContextRaw(rt) : NULL;
    if (!ctx) {
        if (rt)
            JS_FreeRuntime(rt);
        buf_free(&src);
        return err_set(e, -ENOMEM, "cannot create a runtime to check %s", path);
    }
    JS_SetMemoryLimit(rt, CHECK_MEMORY_LIMIT);
    JS_AddIntrinsicBaseObjects(ctx);
    JS_AddIntrinsicEval(ctx); /* the compiler itself */
    /* A module first (import/export anywhere); a classic service-worker
     * script if that fails; the module's error if both do. */
    char *module_msg = NULL, *script_msg = NULL;
    rc = compile(ctx, &src, path, JS_EVAL_TYPE_MODULE, &module_msg);
    if (rc != 0 && compile(ctx, &src, path, JS_EVAL_TYPE_GLOBAL, &script_msg) == 0)
        rc = 0;
    if (rc != 0)
        err_set(e, rc, "%s", module_msg);
    free(module_msg);
    free(script_msg);
    JS_FreeContext(ctx);
    JS_FreeRuntime(rt);
    buf_free(&src);
    return rc;
}
