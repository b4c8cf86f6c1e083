/* Whole-file reads with a size cap, and atomic, durable whole-file writes
 * (write a temporary file, fsync it, rename it over the target, fsync the
 * directory): after a crash the target holds either the old or the new
 * content, never a mix. */
#ifndef ATOLL_CORE_FILE_H
#define ATOLL_CORE_FILE_H
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Appends the file's content to b; fails with -E2BIG past `max` bytes. */
int file_read_all(const char *path, size_t max, buf *b, err *e);
int file_write_atomic(const char *path, const void *data, size_t len, err *e);
/* The same without fsync: readers never see a partial file, but a crash
 * may lose it (for data that is rewritten often, such as live counters). */
int file_replace(const char *path, const void *data, size_t len, err *e);
/* mkdir -p with `mode` for the directories it creates. */
int file_mkdirs(const char *path, unsigned mode, err *e);

#endif
