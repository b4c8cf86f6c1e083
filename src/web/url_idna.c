/* UTS #46 ToASCII as the URL Standard's "domain to ASCII" calls it:
 * CheckHyphens=false, CheckBidi=true, CheckJoiners=true,
 * UseSTD3ASCIIRules=false, Transitional_Processing=false,
 * VerifyDnsLength=false, IgnoreInvalidPunycode=false.
 *
 * Why not libidn2: its lookup functions add IDNA2008's rules on top of
 * UTS #46 (symbols such as U+2665 are DISALLOWED, hyphen rules, label and
 * domain length limits) and Debian 12's version carries old Unicode
 * tables, so about one in ten of the WPT IDNA cases fail through it. Here
 * the mapping table is generated at build time from Unicode's UTS #46 data
 * (scripts/gen_idna_table.py), normalization and character properties come
 * from libunistring, and Punycode (RFC 3492) is implemented below. */
#include "web/url_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unictype.h>
#include <uninorm.h>

#include "core/alloc.h"

enum { ST_VALID, ST_MAPPED, ST_IGNORED, ST_DISALLOWED };

struct idna_range {
    uint32_t start;
    uint8_t status;
    uint32_t map_off;
    uint16_t map_len;
};

#include "idna_table.h"

static const struct idna_range *lookup(uint32_t cp)
{
    size_t lo = 0, hi = sizeof idna_ranges / sizeof idna_ranges[0];
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (idna_ranges[mid].start <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return &idna_ranges[lo];
}

/* A growable array of code points. */
struct cps {
    uint32_t *v;
    size_t len, cap;
};

static void cps_push(struct cps *c, uint32_t cp)
{
    if (c->len == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->len++] = cp;
}

/* Decodes valid UTF-8 (the caller sanitized it) onto c. */
static void utf8_decode(struct cps *c, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        uint32_t cp = s[i];
        size_t n = cp < 0x80 ? 1 : cp < 0xe0 ? 2 : cp < 0xf0 ? 3 : 4;
        if (n > 1)
            cp &= 0x3f >> (n - 1);
        for (size_t k = 1; k < n && i + k < len; k++)
            cp = (cp << 6) | (s[i + k] & 0x3f);
        cps_push(c, cp);
        i += n;
    }
}

static int utf8_put(buf *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    return buf_append(out, b, n);
}

/* --- Punycode (RFC 3492) --- */

enum { BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700, INITIAL_BIAS = 72,
       INITIAL_N = 128 };

static uint32_t adapt(uint32_t delta, uint32_t points, bool first)
{
    delta = first ? delta / DAMP : delta / 2;
    delta += delta / points;
    uint32_t k = 0;
    while (delta > ((BASE - TMIN) * TMAX) / 2) {
        delta /= BASE - TMIN;
        k += BASE;
    }
    return k + (BASE - TMIN + 1) * delta / (delta + SKEW);
}

static char digit_char(uint32_t d) { return (char)(d < 26 ? 'a' + d : '0' + d - 26); }

static int digit_value(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '0' && c <= '9')
        return c - '0' + 26;
    return -1;
}

static uint32_t threshold(uint32_t k, uint32_t bias)
{
    return k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
}

static int punycode_encode(const uint32_t *in, size_t len, buf *out)
{
    int rc = 0;
    size_t basic = 0;
    for (size_t i = 0; i < len && !rc; i++)
        if (in[i] < 0x80) {
            char c = (char)in[i];
            rc = buf_append(out, &c, 1);
            basic++;
        }
    if (!rc && basic)
        rc = buf_append(out, "-", 1);
    uint32_t n = INITIAL_N, bias = INITIAL_BIAS;
    uint64_t delta = 0;
    size_t h = basic;
    while (!rc && h < len) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < len; i++)
            if (in[i] >= n && in[i] < m)
                m = in[i];
        delta += (uint64_t)(m - n) * (h + 1);
        if (delta > UINT32_MAX)
            return -EINVAL;
        n = m;
        for (size_t i = 0; i < len && !rc; i++) {
            if (in[i] < n && ++delta > UINT32_MAX)
                return -EINVAL;
            if (in[i] != n)
                continue;
            uint32_t q = (uint32_t)delta;
            for (uint32_t k = BASE;; k += BASE) {
                uint32_t t = threshold(k, bias);
                if (q < t)
                    break;
                char d = digit_char(t + (q - t) % (BASE - t));
                if ((rc = buf_append(out, &d, 1)))
                    return rc;
                q = (q - t) / (BASE - t);
            }
            char d = digit_char(q);
            rc = buf_append(out, &d, 1);
            bias = adapt((uint32_t)delta, (uint32_t)h + 1, h == basic);
            delta = 0;
            h++;
        }
        delta++;
        n++;
    }
    return rc;
}

/* Decodes the part after "xn--"; -EINVAL when it is not valid Punycode. */
static int punycode_decode(const uint32_t *in, size_t len, struct cps *out)
{
    size_t b = 0;
    for (size_t i = 0; i < len; i++)
        if (in[i] == '-')
            b = i;
    for (size_t i = 0; i < b; i++) {
        if (in[i] >= 0x80)
            return -EINVAL;
        cps_push(out, in[i]);
    }
    uint32_t n = INITIAL_N, bias = INITIAL_BIAS;
    uint64_t i = 0;
    for (size_t p = b > 0 ? b + 1 : 0; p < len;) {
        uint64_t old = i, w = 1;
        for (uint32_t k = BASE;; k += BASE) {
            if (p >= len || in[p] >= 0x80)
                return -EINVAL;
            int d = digit_value((char)in[p++]);
            if (d < 0)
                return -EINVAL;
            i += (uint64_t)d * w;
            if (i > UINT32_MAX)
                return -EINVAL;
            uint32_t t = threshold(k, bias);
            if ((uint32_t)d < t)
                break;
            w *= BASE - t;
            if (w > UINT32_MAX)
                return -EINVAL;
        }
        uint32_t count = (uint32_t)out->len + 1;
        bias = adapt((uint32_t)(i - old), count, old == 0);
        if (n + i / count > 0x10ffff)
            return -EINVAL;
        n += (uint32_t)(i / count);
        i %= count;
        if (n < 0x80 || (n >= 0xd800 && n <= 0xdfff))
            return -EINVAL;
        cps_push(out, 0); /* make room, then insert at i */
        memmove(out->v + i + 1, out->v + i, (out->len - 1 - i) * sizeof *out->v);
        out->v[i] = n;
        i++;
    }
    return 0;
}

/* --- validity criteria (UTS #46 section 4.1) --- */

static bool is_virama(uint32_t cp) { return uc_combining_class(cp) == UC_CCC_VR; }

/* CheckJoiners: RFC 5892 appendix A.1 (ZWNJ) and A.2 (ZWJ). */
static bool joiners_ok(const uint32_t *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (l[i] != 0x200c && l[i] != 0x200d)
            continue;
        if (i > 0 && is_virama(l[i - 1]))
            continue;
        if (l[i] == 0x200d)
            return false;
        /* (L|D) T* ZWNJ T* (R|D) */
        size_t k = i;
        while (k > 0 && uc_joining_type(l[k - 1]) == UC_JOINING_TYPE_T)
            k--;
        if (k == 0)
            return false;
        int jt = uc_joining_type(l[k - 1]);
        if (jt != UC_JOINING_TYPE_L && jt != UC_JOINING_TYPE_D)
            return false;
        k = i + 1;
        while (k < n && uc_joining_type(l[k]) == UC_JOINING_TYPE_T)
            k++;
        if (k == n)
            return false;
        jt = uc_joining_type(l[k]);
        if (jt != UC_JOINING_TYPE_R && jt != UC_JOINING_TYPE_D)
            return false;
    }
    return true;
}

/* CheckBidi: the Bidi Rule of RFC 5893 section 2. */
static bool bidi_ok(const uint32_t *l, size_t n)
{
    if (n == 0)
        return true;
    int first = uc_bidi_category(l[0]);
    bool rtl = first == UC_BIDI_R || first == UC_BIDI_AL;
    if (!rtl && first != UC_BIDI_L)
        return false; /* rule 1 */
    bool en = false, an = false;
    size_t last = n; /* index of the last character that is not NSM */
    for (size_t i = 0; i < n; i++) {
        int c = uc_bidi_category(l[i]);
        if (c != UC_BIDI_NSM)
            last = i;
        if (rtl) {
            if (c != UC_BIDI_R && c != UC_BIDI_AL && c != UC_BIDI_AN && c != UC_BIDI_EN &&
                c != UC_BIDI_ES && c != UC_BIDI_CS && c != UC_BIDI_ET && c != UC_BIDI_ON &&
                c != UC_BIDI_BN && c != UC_BIDI_NSM)
                return false; /* rule 2 */
            en = en || c == UC_BIDI_EN;
            an = an || c == UC_BIDI_AN;
        } else if (c != UC_BIDI_L && c != UC_BIDI_EN && c != UC_BIDI_ES && c != UC_BIDI_CS &&
                   c != UC_BIDI_ET && c != UC_BIDI_ON && c != UC_BIDI_BN && c != UC_BIDI_NSM) {
            return false; /* rule 5 */
        }
    }
    int end = uc_bidi_category(l[last]);
    if (rtl)
        return (end == UC_BIDI_R || end == UC_BIDI_AL || end == UC_BIDI_EN ||
                end == UC_BIDI_AN) && !(en && an); /* rules 3, 4 */
    return end == UC_BIDI_L || end == UC_BIDI_EN; /* rule 6 */
}

static bool is_rtl_label(const uint32_t *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = uc_bidi_category(l[i]);
        if (c == UC_BIDI_R || c == UC_BIDI_AL || c == UC_BIDI_AN)
            return true;
    }
    return false;
}

static bool is_nfc(const uint32_t *l, size_t n)
{
    if (n == 0)
        return true;
    size_t m = 0;
    uint32_t *norm = u32_normalize(UNINORM_NFC, l, n, NULL, &m);
    bool same = norm && m == n && !memcmp(norm, l, n * sizeof *l);
    free(norm);
    return same;
}

/* V1, V2 (no CheckHyphens: no "xn--" start), V4, V5, V6 and V7. */
static bool label_valid(const uint32_t *l, size_t n)
{
    if (!is_nfc(l, n))
        return false;
    if (n >= 4 && l[0] == 'x' && l[1] == 'n' && l[2] == '-' && l[3] == '-')
        return false;
    if (n > 0 && uc_is_general_category(l[0], UC_CATEGORY_M))
        return false;
    for (size_t i = 0; i < n; i++)
        if (l[i] == '.' || lookup(l[i])->status != ST_VALID)
            return false;
    return joiners_ok(l, n);
}

/* --- ToASCII --- */

int url__idna_to_ascii(const char *s, size_t len, buf *out)
{
    struct cps in = {0}, mapped = {0}, labels = {0};
    uint32_t *norm = NULL;
    size_t *bounds = NULL; /* start, end of each label in `labels` */
    size_t nlabels = 0;
    int rc = -EINVAL;

    /* Processing step 1: map. Disallowed code points stay and fail V6. */
    utf8_decode(&in, s, len);
    for (size_t i = 0; i < in.len; i++) {
        const struct idna_range *r = lookup(in.v[i]);
        if (r->status == ST_MAPPED)
            utf8_decode(&mapped, idna_map_utf8 + r->map_off, r->map_len);
        else if (r->status != ST_IGNORED)
            cps_push(&mapped, in.v[i]);
    }
    /* Step 2: normalize to NFC. */
    size_t n = 0;
    if (mapped.len)
        norm = u32_normalize(UNINORM_NFC, mapped.v, mapped.len, NULL, &n);
    else
        norm = xcalloc(1, sizeof *norm); /* an empty domain: no NULL + 0 below */
    if (!norm)
        goto done;
    /* Steps 3-4: break into labels; decode Punycode labels; validate. */
    bounds = xmalloc((n + 1) * 2 * sizeof *bounds);
    labels.cap = n + 1;
    labels.v = xmalloc(labels.cap * sizeof *labels.v);
    bool bidi_domain = false;
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && norm[i] != '.')
            continue;
        const uint32_t *l = norm + start;
        size_t ln = i - start;
        size_t from = labels.len;
        if (ln >= 4 && l[0] == 'x' && l[1] == 'n' && l[2] == '-' && l[3] == '-') {
            struct cps dec = {0};
            bool ok = punycode_decode(l + 4, ln - 4, &dec) == 0 && dec.len > 0;
            bool ascii = true;
            for (size_t k = 0; ok && k < dec.len; k++)
                ascii = ascii && dec.v[k] < 0x80;
            ok = ok && !ascii && label_valid(dec.v, dec.len);
            for (size_t k = 0; ok && k < dec.len; k++)
                cps_push(&labels, dec.v[k]);
            free(dec.v);
            if (!ok)
                goto done;
        } else {
            if (!label_valid(l, ln))
                goto done;
            for (size_t k = 0; k < ln; k++)
                cps_push(&labels, l[k]);
        }
        bounds[2 * nlabels] = from;
        bounds[2 * nlabels + 1] = labels.len;
        bidi_domain = bidi_domain || is_rtl_label(labels.v + from, labels.len - from);
        nlabels++;
        start = i + 1;
    }
    if (bidi_domain)
        for (size_t k = 0; k < nlabels; k++)
            if (!bidi_ok(labels.v + bounds[2 * k], bounds[2 * k + 1] - bounds[2 * k]))
                goto done;
    /* ToASCII: Punycode-encode the labels that are not ASCII. */
    rc = 0;
    for (size_t k = 0; k < nlabels && !rc; k++) {
        const uint32_t *l = labels.v + bounds[2 * k];
        size_t ln = bounds[2 * k + 1] - bounds[2 * k];
        bool ascii = true;
        for (size_t j = 0; j < ln; j++)
            ascii = ascii && l[j] < 0x80;
        if (k > 0)
            rc = buf_append(out, ".", 1);
        if (!rc && !ascii) {
            rc = buf_append(out, "xn--", 4);
            if (!rc)
                rc = punycode_encode(l, ln, out);
        } else {
            for (size_t j = 0; j < ln && !rc; j++)
                rc = utf8_put(out, l[j]);
        }
    }
done:
    free(in.v);
    free(mapped.v);
    free(labels.v);
    free(norm);
    free(bounds);
    return rc;
}
