/* Error reports with context (see err.h). */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

int err_prefix(err *e, const char *fmt, ...)
{
    if (!e)
        return 0;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    /* Truncation keeps the outer context, which reads first. */
    size_t plen = strlen(prefix);
    if (plen > sizeof e->msg - 3)
        plen = sizeof e->msg - 3;
    memcpy(e->msg, prefix, plen);
    memcpy(e->msg + plen, ": ", 2);
    size_t room = sizeof e->msg - plen - 3, olen = strnlen(old, sizeof old);
    if (olen > room)
        olen = room;
    memcpy(e->msg + plen + 2, old, olen);
    e->msg[plen + 2 + olen] = '\0';
    return e->code;
}

void err_clear(err *e)
{
    if (!e)
        return;
    e->code = 0;
    e->msg[0] = '\0';
}
