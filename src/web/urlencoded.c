/* application/x-www-form-urlencoded (URL Standard section 5): the parser,
 * the serializer, and the list operations behind URLSearchParams. */
#include "web/url_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void url_params_init(url_params *p)
{
    p->items = NULL;
    p->len = p->cap = 0;
}

void url_params_clear(url_params *p)
{
    for (size_t i = 0; i < p->len; i++) {
        free(p->items[i].name);
        free(p->items[i].value);
    }
    p->len = 0;
}

void url_params_free(url_params *p)
{
    url_params_clear(p);
    free(p->items);
    url_params_init(p);
}

static char *copy(const char *s, size_t n)
{
    char *r = xmalloc(n + 1);
    if (n)
        memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/* Takes ownership of name and value. */
static void push(url_params *p, char *name, size_t nlen, char *value, size_t vlen)
{
    if (p->len == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->items = xrealloc(p->items, p->cap * sizeof *p->items);
    }
    p->items[p->len++] = (url_param){name, nlen, value, vlen};
}

void url_params_append(url_params *p, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    push(p, copy(name, name_len), name_len, copy(value, value_len), value_len);
}

/* '+' becomes space, then percent-decoding, then UTF-8 decoding. */
static int decode(const char *s, size_t n, char **out, size_t *out_len)
{
    buf plus, dec, utf;
    buf_init(&plus, URL_MAX_INPUT);
    buf_init(&dec, URL_MAX_INPUT);
    buf_init(&utf, URL_MAX_INPUT * 3);
    int rc = buf_append(&plus, "", 0);
    for (size_t i = 0; i < n && !rc; i++)
        rc = buf_append(&plus, s[i] == '+' ? " " : &s[i], 1);
    if (!rc)
        rc = url_percent_decode(&dec, plus.data, plus.len);
    if (!rc)
        rc = url__utf8_sanitize(&utf, dec.data, dec.len);
    buf_free(&plus);
    buf_free(&dec);
    if (rc) {
        buf_free(&utf);
        return rc;
    }
    *out = buf_steal(&utf, out_len);
    return 0;
}

int url_params_parse(url_params *p, const char *in, size_t len)
{
    if (len > URL_MAX_INPUT)
        return -E2BIG;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && in[i] != '&')
            continue;
        const char *seq = in + start;
        size_t n = i - start;
        start = i + 1;
        if (n == 0)
            continue;
        const char *eq = memchr(seq, '=', n);
        size_t nlen = eq ? (size_t)(eq - seq) : n;
        const char *val = eq ? eq + 1 : seq + n;
        size_t vlen = eq ? n - nlen - 1 : 0;
        char *name, *value;
        size_t name_len, value_len;
        int rc = decode(seq, nlen, &name, &name_len);
        if (rc)
            return rc;
        rc = decode(val, vlen, &value, &value_len);
        if (rc) {
            free(name);
            return rc;
        }
        push(p, name, name_len, value, value_len);
    }
    return 0;
}

int url_params_serialize(const url_params *p, buf *out)
{
    int rc = buf_append(out, "", 0);
    for (size_t i = 0; i < p->len && !rc; i++) {
        const url_param *e = &p->items[i];
        if (i)
            rc = buf_append(out, "&", 1);
        if (!rc)
            rc = url_percent_encode(out, e->name, e->name_len, URL_SET_FORM, true);
        if (!rc)
            rc = buf_append(out, "=", 1);
        if (!rc)
            rc = url_percent_encode(out, e->value, e->value_len, URL_SET_FORM, true);
    }
    return rc;
}

static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || !memcmp(a, b, alen));
}

long url_params_find(const url_params *p, const char *name, size_t name_len)
{
    for (size_t i = 0; i < p->len; i++)
        if (same(p->items[i].name, p->items[i].name_len, name, name_len))
            return (long)i;
    return -1;
}

void url_params_delete(url_params *p, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    size_t k = 0;
    for (size_t i = 0; i < p->len; i++) {
        url_param *e = &p->items[i];
        if (same(e->name, e->name_len, name, name_len) &&
            (!value || same(e->value, e->value_len, value, value_len))) {
            free(e->name);
            free(e->value);
        } else {
            p->items[k++] = *e;
        }
    }
    p->len = k;
}

void url_params_set(url_params *p, const char *name, size_t name_len,
                    const char *value, size_t value_len)
{
    long first = url_params_find(p, name, name_len);
    if (first < 0) {
        url_params_append(p, name, name_len, value, value_len);
        return;
    }
    url_param *e = &p->items[first];
    free(e->value);
    e->value = copy(value, value_len);
    e->value_len = value_len;
    /* Remove the later pairs with this name. */
    size_t k = (size_t)first + 1;
    for (size_t i = k; i < p->len; i++) {
        url_param *x = &p->items[i];
        if (same(x->name, x->name_len, name, name_len)) {
            free(x->name);
            free(x->value);
        } else {
            p->items[k++] = *x;
        }
    }
    p->len = k;
}

/* Next UTF-16 code unit of a UTF-8 string: sort() compares code units, so
 * a supplementary code point sorts by its lead surrogate (below U+E000). */
struct u16_iter {
    const unsigned char *s;
    size_t len, i;
    int trail; /* pending trail surrogate, or -1 */
};

static int next_unit(struct u16_iter *it)
{
    if (it->trail >= 0) {
        int t = it->trail;
        it->trail = -1;
        return t;
    }
    if (it->i >= it->len)
        return -1;
    unsigned char c = it->s[it->i];
    uint32_t cp;
    size_t n;
    if (c < 0x80)
        cp = c, n = 1;
    else if (c < 0xe0)
        cp = c & 0x1f, n = 2;
    else if (c < 0xf0)
        cp = c & 0x0f, n = 3;
    else
        cp = c & 0x07, n = 4;
    for (size_t k = 1; k < n && it->i + k < it->len; k++)
        cp = (cp << 6) | (it->s[it->i + k] & 0x3f);
    it->i += n;
    if (cp >= 0x10000) {
        cp -= 0x10000;
        it->trail = (int)(0xdc00 + (cp & 0x3ff));
        return (int)(0xd800 + (cp >> 10));
    }
    return (int)cp;
}

static int compare_names(const url_param *a, const url_param *b)
{
    struct u16_iter x = {(const unsigned char *)a->name, a->name_len, 0, -1};
    struct u16_iter y = {(const unsigned char *)b->name, b->name_len, 0, -1};
    for (;;) {
        int u = next_unit(&x), v = next_unit(&y);
        if (u != v)
            return u < v ? -1 : 1;
        if (u < 0)
            return 0;
    }
}

/* A merge sort, because sort() must keep equal names in their order. */
static void merge_sort(url_param *v, url_param *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(v, tmp, h);
    merge_sort(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = compare_names(&v[j], &v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

void url_params_sort(url_params *p)
{
    if (p->len < 2)
        return;
    url_param *tmp = xmalloc(p->len * sizeof *tmp);
    merge_sort(p->items, tmp, p->len);
    free(tmp);
}
