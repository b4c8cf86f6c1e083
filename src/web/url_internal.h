/* Declarations shared by the URL parser's files (url.c, url_host.c,
 * urlencoded.c); not part of the public interface in url.h. */
#ifndef ATOLL_WEB_URL_INTERNAL_H
#define ATOLL_WEB_URL_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "web/url.h"

/* Kinds of a URL's host; HOST_NULL is the standard's null host. An empty
 * host is HOST_DOMAIN with an empty string, as the standard has it. */
enum url_host_kind { HOST_NULL, HOST_DOMAIN, HOST_IPV4, HOST_IPV6, HOST_OPAQUE };

/* Parses a host (the standard's "host parser"): 0 and out (its serialized
 * form, IPv6 in brackets) filled, *kind set; -EINVAL on failure. */
int url__host_parse(const char *in, size_t len, bool is_opaque, buf *out,
                    enum url_host_kind *kind);

/* UTS #46 ToASCII with the URL Standard's options, for a domain that is
 * valid UTF-8 and not all ASCII; appends to out. 0 or -EINVAL. */
int url__idna_to_ascii(const char *s, size_t len, buf *out);

/* UTF-8 with invalid sequences replaced by U+FFFD onto out (0 or -E2BIG). */
int url__utf8_sanitize(buf *out, const char *s, size_t len);

/* Whether byte c is in percent-encode `set` (bytes >= 0x80 always are). */
bool url__in_set(unsigned char c, url_encode_set set);

#endif
