/* The WHATWG URL Standard in plain C: the basic URL parser, the URL
 * serializer, the URL API's getters and setters, and the
 * application/x-www-form-urlencoded list behind URLSearchParams.
 * No sockets, no JavaScript: the JS `URL`/`URLSearchParams` classes wrap it.
 *
 * Strings are UTF-8 in and UTF-8 out with explicit lengths; input may
 * contain NUL. Invalid UTF-8 in input is read as U+FFFD, as a JS string
 * with lone surrogates becomes one when converted to a USVString.
 * Returned strings are NUL-terminated for convenience and never contain NUL.
 *
 * Ownership: url_parse() gives the caller a `url` it frees with url_free().
 * Strings returned by url_get() belong to the url and stay valid until the
 * next url_set*() on it or url_free(). A url_params owns its entries. */
#ifndef ATOLL_WEB_URL_H
#define ATOLL_WEB_URL_H
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Longest input accepted (bytes); longer input fails with -E2BIG. */
#define URL_MAX_INPUT ((size_t)1 << 22)

typedef struct url url;

/* The URL API's attributes, in the order the standard lists them. */
typedef enum url_part {
    URL_HREF,
    URL_ORIGIN,
    URL_PROTOCOL,
    URL_USERNAME,
    URL_PASSWORD,
    URL_HOST,
    URL_HOSTNAME,
    URL_PORT,
    URL_PATHNAME,
    URL_SEARCH,
    URL_HASH,
    URL_PART_COUNT
} url_part;

/* Parses `input` against `base` (NULL: no base), as `new URL(input, base)`.
 * 0 and *out set, or -EINVAL when the standard says failure (the binding
 * throws a TypeError), or -E2BIG for oversized input. */
int url_parse(const char *input, size_t len, const url *base, url **out);
/* As url_parse(), with the base given as a string (NULL: no base); a base
 * that fails to parse is a failure, as in the URL constructor. */
int url_parse_str(const char *input, size_t len, const char *base,
                  size_t base_len, url **out);
/* `URL.canParse()`. */
bool url_can_parse(const char *input, size_t len, const char *base,
                   size_t base_len);
url *url_clone(const url *u);
void url_free(url *u);

/* The getter for `part`; *len (when non-NULL) gets its length. */
const char *url_get(const url *u, url_part part, size_t *len);

/* The setter for `part` (not URL_ORIGIN, which is read-only). Setters other
 * than href ignore values the standard ignores and return 0; the href
 * setter returns -EINVAL when the value does not parse (TypeError), and
 * leaves `u` unchanged. A URL object's URLSearchParams list is the
 * binding's: after href or search changes it re-parses url_get(URL_SEARCH). */
int url_set(url *u, url_part part, const char *value, size_t len);

/* URLSearchParams' "update steps": sets the query to an already serialized
 * application/x-www-form-urlencoded string; an empty one makes it null. */
void url_set_query_raw(url *u, const char *query, size_t len);

/* The URL Standard's "domain to ASCII" with beStrict false (UTS #46
 * nontransitional processing), including the forbidden domain
 * code point check. 0 and *out (caller frees) set, or -EINVAL. */
int url_domain_to_ascii(const char *domain, size_t len, char **out,
                        size_t *out_len);

/* Percent-encode sets of the standard, for url_percent_encode(). */
typedef enum url_encode_set {
    URL_SET_C0_CONTROL,
    URL_SET_FRAGMENT,
    URL_SET_QUERY,
    URL_SET_SPECIAL_QUERY,
    URL_SET_PATH,
    URL_SET_USERINFO,
    URL_SET_COMPONENT,
    URL_SET_FORM, /* application/x-www-form-urlencoded, without space-as-plus */
} url_encode_set;

/* UTF-8 percent-encodes `s` with `set` onto `out` (0 or -E2BIG). With
 * `space_as_plus`, U+0020 becomes "+" (the form serializer's rule). */
int url_percent_encode(buf *out, const char *s, size_t len, url_encode_set set,
                       bool space_as_plus);
/* Percent-decodes bytes onto `out` ("%zz" stays as it is); 0 or -E2BIG. */
int url_percent_decode(buf *out, const char *s, size_t len);

/* --- application/x-www-form-urlencoded (URLSearchParams) --- */

/* Names and values are UTF-8 (the binding converts USVStrings). */
typedef struct url_param {
    char *name;   /* owned, NUL-terminated UTF-8, may contain NUL */
    size_t name_len;
    char *value;  /* owned, as name */
    size_t value_len;
} url_param;

typedef struct url_params {
    url_param *items; /* owned */
    size_t len, cap;
} url_params;

void url_params_init(url_params *p);
void url_params_free(url_params *p);
void url_params_clear(url_params *p);
/* Appends the pairs parsed from `in` (a leading "?" is not stripped here:
 * the URLSearchParams constructor does that). 0 or -E2BIG. */
int url_params_parse(url_params *p, const char *in, size_t len);
/* Appends the serialization to `out` (0 or -E2BIG). */
int url_params_serialize(const url_params *p, buf *out);
void url_params_append(url_params *p, const char *name, size_t name_len,
                       const char *value, size_t value_len);
/* `delete(name)` when value is NULL, else `delete(name, value)`. */
void url_params_delete(url_params *p, const char *name, size_t name_len,
                       const char *value, size_t value_len);
/* Index of the first pair named `name`, or -1. */
long url_params_find(const url_params *p, const char *name, size_t name_len);
/* `set(name, value)`: the first such pair gets value, the others go. */
void url_params_set(url_params *p, const char *name, size_t name_len,
                    const char *value, size_t value_len);
/* `sort()`: stable, by the names' UTF-16 code units. */
void url_params_sort(url_params *p);

#endif
