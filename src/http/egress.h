/* The egress policy of outbound requests (a tenant's fetch()): which hosts
 * a URL may name, and which resolved addresses a connection may then go
 * to, so that a DNS name cannot smuggle a request to a loopback or private
 * address. Pure functions; no sockets, no JavaScript.
 *
 * An allow-list is a NULL-terminated array of patterns, as the hosts of
 * wrangler routes: "example.com" (that host), "*.example.com" (any
 * subdomain of it), "*" (any host), an IP address ("10.0.0.5",
 * "[fd00::1]" or "fd00::1"), and "localhost", which stands for every
 * loopback host (localhost, *.localhost, 127.0.0.0/8, [::1]). A NULL list
 * is the default: { "localhost" }. */
#ifndef ATOLL_HTTP_EGRESS_H
#define ATOLL_HTTP_EGRESS_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef enum egress_kind {
    EGRESS_DENIED,   /* no pattern allows the host */
    EGRESS_LOOPBACK, /* a loopback host: only loopback addresses */
    EGRESS_LITERAL,  /* an allowed IP address: that address */
    EGRESS_NAME,     /* an allowed name: only public addresses, or IPs listed */
} egress_kind;

/* How `host` (a URL's host as the WHATWG URL parser serializes it: lower
 * case, IPv6 in brackets) may be reached under `allow`. */
egress_kind egress_check_host(const char *const *allow, const char *host);

/* Whether a connection to `sa` is allowed for a host checked as `kind`.
 * On refusal *why (static) says what the address is ("a private address"). */
bool egress_check_addr(const char *const *allow, egress_kind kind, const struct sockaddr *sa,
                       const char **why);

/* `sa` as text ("10.0.0.1", "::1") into out (at least 64 bytes). */
void egress_addr_str(const struct sockaddr *sa, char *out, size_t len);

#endif
