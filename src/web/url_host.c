/* Host parsing of the URL Standard (section 3): IPv6 and IPv4 addresses
 * with their serializers, opaque hosts, and domains through "domain to
 * ASCII" (its UTS #46 part is in url_idna.c). */
#include "web/url_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int hex_val(unsigned char c)
{
    return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* U+0000, tab, LF, CR, space, # / : < > ? @ [ \ ] ^ | */
static bool forbidden_host(unsigned char c)
{
    return c == 0 || c == '\t' || c == '\n' || c == '\r' || c == ' ' ||
           c == '#' || c == '/' || c == ':' || c == '<' || c == '>' ||
           c == '?' || c == '@' || c == '[' || c == '\\' || c == ']' ||
           c == '^' || c == '|';
}

static bool forbidden_domain(unsigned char c)
{
    return forbidden_host(c) || c <= 0x1f || c == '%' || c == 0x7f;
}

int url__utf8_sanitize(buf *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = 0;
        uint32_t min = 0, cp = 0;
        if (c < 0x80)
            n = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            n = 2, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4, min = 0x10000, cp = c & 0x07;
        bool ok = n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                ok = false;
            else
                cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (ok && n > 1 && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
            ok = false;
        int rc;
        if (ok) {
            rc = buf_append(out, s + i, n);
            i += n;
        } else {
            /* Skip the maximal subpart, as the WHATWG decoder does. */
            size_t k = 1;
            if (n > 1)
                while (k < n && i + k < len && (s[i + k] & 0xc0) == 0x80) {
                    /* second-byte range limits decide how much is a subpart */
                    if (k == 1 && ((c == 0xe0 && s[i + 1] < 0xa0) ||
                                   (c == 0xed && s[i + 1] > 0x9f) ||
                                   (c == 0xf0 && s[i + 1] < 0x90) ||
                                   (c == 0xf4 && s[i + 1] > 0x8f)))
                        break;
                    k++;
                }
            rc = buf_append(out, "\xef\xbf\xbd", 3);
            i += k;
        }
        if (rc)
            return rc;
    }
    if (!out->data)
        return buf_append(out, "", 0);
    return 0;
}

int url_percent_decode(buf *out, const char *s, size_t len)
{
    int rc = buf_append(out, "", 0);
    for (size_t i = 0; i < len && !rc; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            c = (char)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]));
            i += 2;
        }
        rc = buf_append(out, &c, 1);
    }
    return rc;
}

/* --- IPv6 --- */

static int ipv6_parse(const unsigned char *s, size_t len, uint16_t addr[8])
{
    size_t p = 0;
    int piece = 0, compress = -1;
#define C (p < len ? s[p] : -1)
    memset(addr, 0, 8 * sizeof addr[0]);
    if (C == ':') {
        if (p + 1 >= len || s[p + 1] != ':')
            return -EINVAL;
        p += 2;
        compress = ++piece;
    }
    while (C != -1) {
        if (piece == 8)
            return -EINVAL;
        if (C == ':') {
            if (compress >= 0)
                return -EINVAL;
            p++;
            compress = ++piece;
            continue;
        }
        unsigned value = 0, length = 0;
        while (length < 4 && C != -1 && is_hex((unsigned char)C)) {
            value = value * 16 + (unsigned)hex_val((unsigned char)C);
            p++, length++;
        }
        if (C == '.') {
            /* An embedded IPv4 address fills the last two pieces. */
            if (length == 0)
                return -EINVAL;
            p -= length;
            if (piece > 6)
                return -EINVAL;
            int seen = 0;
            while (C != -1) {
                int v4 = -1;
                if (seen > 0) {
                    if (C == '.' && seen < 4)
                        p++;
                    else
                        return -EINVAL;
                }
                if (C == -1 || !is_digit((unsigned char)C))
                    return -EINVAL;
                while (C != -1 && is_digit((unsigned char)C)) {
                    int n = C - '0';
                    if (v4 < 0)
                        v4 = n;
                    else if (v4 == 0)
                        return -EINVAL;
                    else
                        v4 = v4 * 10 + n;
                    if (v4 > 255)
                        return -EINVAL;
                    p++;
                }
                addr[piece] = (uint16_t)(addr[piece] * 0x100 + v4);
                seen++;
                if (seen == 2 || seen == 4)
                    piece++;
            }
            if (seen != 4)
                return -EINVAL;
            break;
        } else if (C == ':') {
            p++;
            if (C == -1)
                return -EINVAL;
        } else if (C != -1) {
            return -EINVAL;
        }
        addr[piece++] = (uint16_t)value;
    }
#undef C
    if (compress >= 0) {
        int swaps = piece - compress;
        piece = 7;
        while (piece != 0 && swaps > 0) {
            uint16_t t = addr[piece];
            addr[piece] = addr[compress + swaps - 1];
            addr[compress + swaps - 1] = t;
            piece--, swaps--;
        }
    } else if (piece != 8) {
        return -EINVAL;
    }
    return 0;
}

static int ipv6_serialize(const uint16_t addr[8], buf *out)
{
    /* Compress the first longest run of two or more zero pieces. */
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && addr[j] == 0)
            j++;
        if (j - i > best_len)
            best = i, best_len = j - i;
        i = j > i ? j : i + 1;
    }
    int rc = buf_append(out, "[", 1);
    bool ignore0 = false;
    for (int i = 0; i < 8 && !rc; i++) {
        if (ignore0 && addr[i] == 0)
            continue;
        ignore0 = false;
        if (i == best) {
            rc = buf_append(out, i == 0 ? "::" : ":", i == 0 ? 2 : 1);
            ignore0 = true;
            continue;
        }
        rc = buf_printf(out, "%x%s", addr[i], i == 7 ? "" : ":");
    }
    return rc ? rc : buf_append(out, "]", 1);
}

/* --- IPv4 --- */

/* The IPv4 number parser: 0 and *v set (saturated above 2^32), or -EINVAL. */
static int ipv4_number(const char *s, size_t len, uint64_t *v)
{
    if (len == 0)
        return -EINVAL;
    unsigned radix = 10;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2, len -= 2, radix = 16;
    else if (len >= 2 && s[0] == '0')
        s += 1, len -= 1, radix = 8;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned d;
        if (radix == 16 && is_hex(c))
            d = (unsigned)hex_val(c);
        else if (radix == 10 && is_digit(c))
            d = c - '0';
        else if (radix == 8 && c >= '0' && c <= '7')
            d = c - '0';
        else
            return -EINVAL;
        n = n * radix + d;
        if (n > ((uint64_t)1 << 40))
            n = (uint64_t)1 << 40;
    }
    *v = n;
    return 0;
}

/* "Ends in a number": whether the last label is digits or an IPv4 number. */
static bool ends_in_number(const char *s, size_t len)
{
    if (len && s[len - 1] == '.') {
        if (len == 1)
            return false;
        len--;
    }
    size_t start = len;
    while (start > 0 && s[start - 1] != '.')
        start--;
    const char *last = s + start;
    size_t n = len - start;
    if (n == 0)
        return false;
    bool digits = true;
    for (size_t i = 0; i < n; i++)
        digits = digits && is_digit((unsigned char)last[i]);
    uint64_t v;
    return digits || ipv4_number(last, n, &v) == 0;
}

static int ipv4_parse(const char *s, size_t len, buf *out)
{
    uint64_t nums[4];
    size_t count = 0;
    if (len && s[len - 1] == '.')
        len--; /* a trailing dot is a validation error only */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (count == 4)
            return -EINVAL;
        if (ipv4_number(s + start, i - start, &nums[count]))
            return -EINVAL;
        count++;
        start = i + 1;
    }
    for (size_t i = 0; i + 1 < count; i++)
        if (nums[i] > 255)
            return -EINVAL;
    if (nums[count - 1] >= ((uint64_t)1 << (8 * (5 - count))))
        return -EINVAL;
    uint64_t v4 = nums[count - 1];
    for (size_t i = 0; i + 1 < count; i++)
        v4 += nums[i] << (8 * (3 - i));
    return buf_printf(out, "%u.%u.%u.%u", (unsigned)(v4 >> 24) & 255,
                      (unsigned)(v4 >> 16) & 255, (unsigned)(v4 >> 8) & 255,
                      (unsigned)v4 & 255);
}

/* --- domain to ASCII --- */

static bool is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static int domain_to_ascii(const char *s, size_t len, buf *out)
{
    int rc = 0;
    if (is_ascii(s, len)) {
        /* The standard's fast path: an ASCII domain is only lowercased. */
        for (size_t i = 0; i < len && !rc; i++) {
            char c = s[i];
            if (c >= 'A' && c <= 'Z')
                c += 32;
            rc = buf_append(out, &c, 1);
        }
    } else {
        rc = url__idna_to_ascii(s, len, out);
    }
    if (rc)
        return rc;
    if (out->len == 0)
        return -EINVAL;
    for (size_t i = 0; i < out->len; i++)
        if (forbidden_domain((unsigned char)out->data[i]))
            return -EINVAL;
    return 0;
}

int url_domain_to_ascii(const char *domain, size_t len, char **out,
                        size_t *out_len)
{
    buf in, res;
    buf_init(&in, URL_MAX_INPUT * 3);
    buf_init(&res, URL_MAX_INPUT * 4);
    int rc = url__utf8_sanitize(&in, domain, len);
    if (!rc)
        rc = domain_to_ascii(in.data, in.len, &res);
    buf_free(&in);
    if (rc) {
        buf_free(&res);
        return rc;
    }
    *out = buf_steal(&res, out_len);
    return 0;
}

/* --- the host parser --- */

int url__host_parse(const char *in, size_t len, bool is_opaque, buf *out,
                    enum url_host_kind *kind)
{
    int rc;
    buf_reset(out);
    if (len && in[0] == '[') {
        uint16_t addr[8];
        if (in[len - 1] != ']' || len < 2)
            return -EINVAL;
        rc = ipv6_parse((const unsigned char *)in + 1, len - 2, addr);
        if (rc)
            return rc;
        *kind = HOST_IPV6;
        return ipv6_serialize(addr, out);
    }
    if (is_opaque) {
        for (size_t i = 0; i < len; i++)
            if (forbidden_host((unsigned char)in[i]))
                return -EINVAL;
        *kind = HOST_OPAQUE;
        return url_percent_encode(out, in, len, URL_SET_C0_CONTROL, false);
    }
    buf dec, utf;
    buf_init(&dec, URL_MAX_INPUT * 3);
    buf_init(&utf, URL_MAX_INPUT * 3);
    rc = url_percent_decode(&dec, in, len);
    if (!rc)
        rc = url__utf8_sanitize(&utf, dec.data, dec.len);
    if (!rc)
        rc = domain_to_ascii(utf.data, utf.len, out);
    if (rc)
        goto fail;
    if (ends_in_number(out->data, out->len)) {
        buf v4;
        buf_init(&v4, 16);
        rc = ipv4_parse(out->data, out->len, &v4);
        if (!rc) {
            buf_reset(out);
            rc = buf_append(out, v4.data, v4.len);
            *kind = HOST_IPV4;
        }
        buf_free(&v4);
    } else {
        *kind = HOST_DOMAIN;
    }
fail:
    buf_free(&dec);
    buf_free(&utf);
    return rc;
}
