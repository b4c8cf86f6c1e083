/* Error reports that carry context up the layers, as crun does: each layer
 * prefixes what it was doing, so the user reads
 * "load worker.js: import ./lib.js: file not found". Functions return 0 or
 * a negative errno-style code and fill an `err` when the caller must report. */
#ifndef ATOLL_CORE_ERR_H
#define ATOLL_CORE_ERR_H

typedef struct err {
    int code;       /* negative errno-style code, 0 when no error */
    char msg[512];  /* truncated, never overflowed */
} err;

/* Sets e (when non-NULL) and returns code, for `return err_set(e, -EINVAL, ...)`. */
int err_set(err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes "CONTEXT: " to the message; returns e->code. */
int err_prefix(err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(err *e);

#endif
