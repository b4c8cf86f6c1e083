/* Growable byte buffers with a maximum size, so that input can never grow
 * them without bound (the idea of curl's dynbuf). The buffer owns `data`;
 * it is always NUL-terminated past `len` for convenience. */
#ifndef ATOLL_CORE_BUF_H
#define ATOLL_CORE_BUF_H
#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data;   /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;   /* appends that would exceed this fail with -E2BIG */
} buf;

#define BUF_UNLIMITED ((size_t)-1)

void buf_init(buf *b, size_t max);
/* 0, or -E2BIG when the result would exceed b->max (b is unchanged). */
int buf_append(buf *b, const void *data, size_t len);
int buf_append_str(buf *b, const char *s);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal (quotes and escapes). */
int buf_append_json_string(buf *b, const char *s);
void buf_reset(buf *b);             /* len = 0, keeps the allocation */
void buf_consume(buf *b, size_t n); /* drops the first n bytes */
char *buf_steal(buf *b, size_t *len); /* caller owns the result (never NULL) */
void buf_free(buf *b);

#endif
