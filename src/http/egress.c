/* This file implements the egress policy (see egress.h): matching a URL's
 * host against an allow-list, and classifying resolved addresses so that
 * only public ones are reachable through an allowed name. */
#include "http/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const default_allow[] = { "localhost", NULL };

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* host as an IP address (brackets stripped for IPv6); false for names. */
static bool parse_ip(const char *host, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        return true;
    }
    char tmp[64];
    size_t n = strlen(host);
    if (host[0] == '[' && n >= 2 && n - 2 < sizeof tmp && host[n - 1] == ']') {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* Why an IPv4 address (host order) is not public, or NULL. */
static const char *v4_special(uint32_t a, bool *loopback)
{
    *loopback = (a >> 24) == 127;
    if (*loopback)
        return "a loopback address";
    if ((a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168))
        return "a private address";
    if ((a >> 16) == (169u << 8 | 254))
        return "a link-local address";
    if ((a >> 22) == (100u << 2 | 1)) /* 100.64.0.0/10 */
        return "a shared (carrier-grade NAT) address";
    if ((a >> 24) == 0 || (a >> 28) >= 14 || (a >> 8) == (192u << 16 | 0 << 8 | 0) ||
        (a >> 17) == (198u << 7 | 18 >> 1))
        return "a reserved address";
    return NULL;
}

/* Why an address is not public, or NULL; *loopback for loopback ones. */
static const char *special(const struct sockaddr *sa, bool *loopback)
{
    *loopback = false;
    if (sa->sa_family == AF_INET)
        return v4_special(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr), loopback);
    if (sa->sa_family != AF_INET6)
        return "not an IP address";
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(b, mapped, 12) == 0)
        return v4_special((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15],
                          loopback);
    static const uint8_t one[16] = { [15] = 1 };
    if (memcmp(b, one, 16) == 0) {
        *loopback = true;
        return "a loopback address";
    }
    if ((b[0] & 0xfe) == 0xfc)
        return "a private address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "a link-local address";
    /* ::/96 (unspecified, IPv4-compatible), multicast, NAT64 64:ff9b::/96
     * (it could embed any IPv4 address), documentation 2001:db8::/32. */
    static const uint8_t zero[12];
    static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
    if (memcmp(b, zero, 12) == 0 || b[0] == 0xff || memcmp(b, nat64, 12) == 0 ||
        (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8))
        return "a reserved address";
    return NULL;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                  16) == 0;
}

static bool is_loopback_host(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || ends_with(host, ".localhost"))
        return true;
    struct sockaddr_storage ss;
    bool lo = false;
    return parse_ip(host, &ss) && (special((struct sockaddr *)&ss, &lo), lo);
}

/* Wildcards match names only: an IP address is allowed by listing it. */
static bool matches(const char *pattern, const char *host)
{
    struct sockaddr_storage a, b;
    bool host_ip = parse_ip(host, &b);
    if (parse_ip(pattern, &a))
        return host_ip && same_addr((struct sockaddr *)&a, (struct sockaddr *)&b);
    if (host_ip)
        return false;
    if (strcmp(pattern, "*") == 0)
        return true;
    if (strncmp(pattern, "*.", 2) == 0)
        return ends_with(host, pattern + 1) && strlen(host) > strlen(pattern + 1);
    return strcasecmp(pattern, host) == 0;
}

egress_kind egress_check_host(const char *const *allow, const char *host)
{
    if (!allow)
        allow = default_allow;
    bool loopback = is_loopback_host(host);
    for (const char *const *p = allow; loopback && *p; p++)
        if (strcasecmp(*p, "localhost") == 0)
            return EGRESS_LOOPBACK;
    for (const char *const *p = allow; *p; p++) {
        if (strcasecmp(*p, "localhost") != 0 && matches(*p, host)) {
            struct sockaddr_storage ss;
            return parse_ip(host, &ss) ? EGRESS_LITERAL : EGRESS_NAME;
        }
    }
    return EGRESS_DENIED;
}

bool egress_check_addr(const char *const *allow, egress_kind kind, const struct sockaddr *sa,
                       const char **why)
{
    if (!allow)
        allow = default_allow;
    bool loopback;
    const char *w = special(sa, &loopback);
    *why = w;
    switch (kind) {
    case EGRESS_LOOPBACK:
        if (!loopback)
            *why = "not a loopback address";
        return loopback;
    case EGRESS_LITERAL:
        /* curl connects to the literal itself; the host check allowed it. */
        *why = NULL;
        return true;
    case EGRESS_NAME:
        if (!w)
            return true;
        for (const char *const *p = allow; *p; p++) {
            struct sockaddr_storage ss;
            if (parse_ip(*p, &ss) && same_addr((struct sockaddr *)&ss, sa)) {
                *why = NULL;
                return true;
            }
        }
        return false;
    default:
        *why = "not allowed";
        return false;
    }
}

void egress_addr_str(const struct sockaddr *sa, char *out, size_t len)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)len))
        snprintf(out, len, "?");
}
