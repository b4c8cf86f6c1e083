/* JSON with comments and trailing commas (JSONC, as wrangler.jsonc and VS
 * Code use it) turned into plain JSON for jansson. Comments and trailing
 * commas become spaces and newlines are kept, so the line and column of a
 * JSON error still point into the original file. */
#ifndef ATOLL_CORE_JSONC_H
#define ATOLL_CORE_JSONC_H
#include <stddef.h>

#include "core/err.h"

/* Rewrites text[0..len) in place. Fails (-EINVAL) on an unterminated block
 * comment or string, naming the line. */
int jsonc_to_json(char *text, size_t len, err *e);

#endif
