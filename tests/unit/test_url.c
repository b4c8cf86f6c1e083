/* Unit tests for src/web/url: every case of the web-platform-tests URL data
 * (urltestdata, setters_tests, toascii, percent-encoding, IdnaTestV2) run
 * through the C API, plus hand-written edge cases and the
 * application/x-www-form-urlencoded parser and serializer.
 *
 * The data is found at $ATOLL_CONFORMANCE/wpt-url, or at
 * <repo>/../shared/conformance/wpt-url; a missing file fails the test.
 * Each file is one cmocka test that prints "<file>: passed/total" and one
 * line per failing case with its input, what was expected and what we got. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "web/url.h"
#include "web/url_internal.h"

/* --- loading the data --- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b, len);
}

/* The JSON holds lone surrogates (\uD800) that jansson rejects; a JS
 * binding turns them into U+FFFD on the way to UTF-8, so the test does too. */
static void replace_lone_surrogates(char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] != 'u' || i + 6 > len) {
            i++; /* skip the escaped character, e.g. "\\\\" */
            continue;
        }
        unsigned v = (unsigned)strtoul((char[5]){s[i + 2], s[i + 3], s[i + 4], s[i + 5], 0}, NULL, 16);
        bool lead = v >= 0xd800 && v <= 0xdbff, trail = v >= 0xdc00 && v <= 0xdfff;
        if (lead && i + 12 <= len && s[i + 6] == '\\' && s[i + 7] == 'u') {
            unsigned w = (unsigned)strtoul((char[5]){s[i + 8], s[i + 9], s[i + 10], s[i + 11], 0}, NULL, 16);
            if (w >= 0xdc00 && w <= 0xdfff) {
                i += 11; /* a proper pair */
                continue;
            }
        }
        if (lead || trail)
            memcpy(s + i + 2, "FFFD", 4);
        i += 5;
    }
}

/* Reads DIR/wpt-url/NAME. */
static char *read_data(const char *dir, const char *name, size_t *len)
{
    char *path = xasprintf("%s/wpt-url/%s", dir, name);
    char *text = read_file(path, len);
    free(path);
    return text;
}

static json_t *load(const char *name)
{
    const char *env = getenv("ATOLL_CONFORMANCE");
    char *text = NULL;
    size_t len = 0;
    if (env)
        text = read_data(env, name, &len);
    if (!text) /* run.sh starts tests from the repository's root */
        text = read_data("../shared/conformance", name, &len);
    if (!text) {
        /* or from the binary's place: <repo>/build/asan/tests/test_url */
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = '\0';
            char *dir = xasprintf("%s/../../../../shared/conformance", exe);
            text = read_data(dir, name, &len);
            free(dir);
        }
    }
    if (!text) {
        print_error("conformance data %s not found: set ATOLL_CONFORMANCE or put "
                    "shared/conformance beside the repository\n", name);
        return NULL;
    }
    replace_lone_surrogates(text, len);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    free(text);
    if (!root)
        print_error("%s: %s at line %d\n", name, jerr.text, jerr.line);
    return root;
}

/* A JSON string as pointer + length (the data holds NULs). */
static const char *jstr(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Prints a string with C escapes so that failures are readable. */
static void put_escaped(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void report(const char *file, const char *what, const char *in, size_t in_len,
                   const char *detail, const char *want, size_t want_len,
                   const char *got, size_t got_len)
{
    printf("  %s FAIL %s ", file, what);
    put_escaped(stdout, in, in_len);
    printf(" %s: want ", detail);
    if (want)
        put_escaped(stdout, want, want_len);
    else
        printf("(failure)");
    printf(" got ");
    if (got)
        put_escaped(stdout, got, got_len);
    else
        printf("(failure)");
    printf("\n");
}

static const char *const part_names[URL_PART_COUNT] = {
    "href", "origin", "protocol", "username", "password", "host",
    "hostname", "port", "pathname", "search", "hash",
};

static int part_by_name(const char *name)
{
    for (int i = 0; i < URL_PART_COUNT; i++)
        if (!strcmp(part_names[i], name))
            return i;
    return -1;
}

/* Compares every expected attribute of `exp` with `u`; prints mismatches. */
static bool check_parts(const char *file, const char *what, const char *in, size_t in_len,
                        json_t *exp, const url *u)
{
    bool ok = true;
    for (int p = 0; p < URL_PART_COUNT; p++) {
        size_t wl, gl;
        const char *want = jstr(exp, part_names[p], &wl);
        if (!want)
            continue;
        const char *got = url_get(u, p, &gl);
        if (wl != gl || memcmp(want, got, wl)) {
            report(file, what, in, in_len, part_names[p], want, wl, got, gl);
            ok = false;
        }
    }
    return ok;
}

/* --- urltestdata.json --- */

static void wpt_urltestdata(void **state)
{
    json_t *root = load("urltestdata.json");
    assert_non_null(root);
    size_t total = 0, passed = 0, i;
    json_t *c;
    json_array_foreach(root, i, c) {
        if (!json_is_object(c))
            continue;
        total++;
        size_t in_len, base_len = 0;
        const char *in = jstr(c, "input", &in_len);
        const char *base = jstr(c, "base", &base_len);
        bool failure = json_is_true(json_object_get(c, "failure"));
        url *u = NULL;
        int rc = url_parse_str(in, in_len, base, base_len, &u);
        bool ok;
        if (failure) {
            ok = rc != 0;
            if (!ok)
                report("urltestdata", "input", in, in_len, "parse", NULL, 0,
                       url_get(u, URL_HREF, NULL), strlen(url_get(u, URL_HREF, NULL)));
        } else if (rc) {
            ok = false;
            size_t hl;
            const char *href = jstr(c, "href", &hl);
            report("urltestdata", "input", in, in_len, "parse", href, hl, NULL, 0);
        } else {
            ok = check_parts("urltestdata", "input", in, in_len, c, u);
            size_t sl;
            const char *sp = jstr(c, "searchParams", &sl);
            if (sp) {
                /* URLSearchParams(url.search) serialized again */
                size_t ql;
                const char *q = url_get(u, URL_SEARCH, &ql);
                url_params params;
                url_params_init(&params);
                buf out;
                buf_init(&out, BUF_UNLIMITED);
                assert_int_equal(url_params_parse(&params, q + (ql > 0), ql - (ql > 0)), 0);
                assert_int_equal(url_params_serialize(&params, &out), 0);
                if (out.len != sl || memcmp(out.data, sp, sl)) {
                    report("urltestdata", "input", in, in_len, "searchParams", sp, sl,
                           out.data, out.len);
                    ok = false;
                }
                url_params_free(&params);
                buf_free(&out);
            }
        }
        passed += ok;
        url_free(u);
    }
    json_decref(root);
    printf("urltestdata: %zu/%zu\n", passed, total);
    assert_int_equal(total, 891);
    assert_int_equal(passed, total);
}

/* --- setters_tests.json --- */

static void wpt_setters(void **state)
{
    json_t *root = load("setters_tests.json");
    assert_non_null(root);
    size_t total = 0, passed = 0;
    const char *attr;
    json_t *cases;
    json_object_foreach(root, attr, cases) {
        int part = part_by_name(attr);
        if (part < 0)
            continue; /* "comment" */
        size_t i;
        json_t *c;
        json_array_foreach(cases, i, c) {
            total++;
            size_t hl, vl;
            const char *href = jstr(c, "href", &hl);
            const char *val = jstr(c, "new_value", &vl);
            url *u = NULL;
            bool ok = false;
            if (url_parse(href, hl, NULL, &u) == 0) {
                url_set(u, part, val, vl);
                char what[64];
                snprintf(what, sizeof what, "%s=", attr);
                buf label;
                buf_init(&label, BUF_UNLIMITED);
                buf_append(&label, val, vl);
                buf_append_str(&label, " on ");
                buf_append(&label, href, hl);
                ok = check_parts("setters", what, label.data, label.len,
                                 json_object_get(c, "expected"), u);
                buf_free(&label);
            } else {
                report("setters", "href", href, hl, "parse", href, hl, NULL, 0);
            }
            passed += ok;
            url_free(u);
        }
    }
    json_decref(root);
    printf("setters_tests: %zu/%zu\n", passed, total);
    assert_true(total > 0);
    assert_int_equal(passed, total);
}

/* --- toascii.json and IdnaTestV2.json: hosts through the URL parser --- */

/* As WPT's toascii.window.js: new URL("https://" + input + "/x"), and the
 * host and hostname setters on "https://x/x". */
static bool host_case(const char *file, const char *in, size_t in_len,
                      const char *want, size_t want_len)
{
    bool ok = true;
    buf s;
    buf_init(&s, BUF_UNLIMITED);
    buf_append_str(&s, "https://");
    buf_append(&s, in, in_len);
    buf_append_str(&s, "/x");
    url *u = NULL;
    int rc = url_parse(s.data, s.len, NULL, &u);
    size_t gl = 0;
    const char *got = rc ? NULL : url_get(u, URL_HOST, &gl);
    if (want ? (rc || gl != want_len || memcmp(got, want, gl)) : rc == 0) {
        report(file, "host", in, in_len, "new URL", want, want_len, got, gl);
        ok = false;
    }
    if (!rc && want && strcmp(url_get(u, URL_PATHNAME, NULL), "/x")) {
        report(file, "host", in, in_len, "pathname", "/x", 2, url_get(u, URL_PATHNAME, NULL),
               strlen(url_get(u, URL_PATHNAME, NULL)));
        ok = false;
    }
    url_free(u);
    buf_free(&s);
    for (int part = URL_HOST; part <= URL_HOSTNAME; part++) {
        assert_int_equal(url_parse("https://x/x", 11, NULL, &u), 0);
        url_set(u, part, in, in_len);
        got = url_get(u, part, &gl);
        const char *w = want ? want : "x";
        size_t wl = want ? want_len : 1;
        if (gl != wl || memcmp(got, w, gl)) {
            report(file, "host", in, in_len, part_names[part], w, wl, got, gl);
            ok = false;
        }
        url_free(u);
    }
    return ok;
}

static void run_host_file(const char *name, const char *label, size_t expect_total)
{
    json_t *root = load(name);
    assert_non_null(root);
    size_t total = 0, passed = 0, i;
    json_t *c;
    json_array_foreach(root, i, c) {
        if (!json_is_object(c))
            continue;
        total++;
        size_t in_len, wl = 0;
        const char *in = jstr(c, "input", &in_len);
        const char *want = jstr(c, "output", &wl);
        if (in_len == 0) {
            /* "https:///x" cannot carry an empty host (WPT skips this case):
             * check the UTS #46 layer itself, which maps "" to "". */
            buf out;
            buf_init(&out, BUF_UNLIMITED);
            bool ok = url__idna_to_ascii("", 0, &out) == 0 && out.len == 0 && want && wl == 0;
            if (!ok)
                report(label, "host", in, in_len, "ToASCII", want, wl, out.data, out.len);
            passed += ok;
            buf_free(&out);
            continue;
        }
        passed += host_case(label, in, in_len, want, wl);
    }
    json_decref(root);
    printf("%s: %zu/%zu\n", label, passed, total);
    if (expect_total)
        assert_int_equal(total, expect_total);
    assert_int_equal(passed, total);
}

static void wpt_toascii(void **state) { run_host_file("toascii.json", "toascii", 0); }
static void wpt_idnatest(void **state) { run_host_file("IdnaTestV2.json", "IdnaTestV2", 0); }

/* --- percent-encoding.json: the utf-8 outputs --- */

/* As WPT's percent-encoding.window.js: <a href="https://doesnotmatter.invalid/?V#V">
 * has search "?" + output and hash "#" + output (UTF-8). */
static void wpt_percent_encoding(void **state)
{
    json_t *root = load("percent-encoding.json");
    assert_non_null(root);
    size_t total = 0, passed = 0, i;
    json_t *c;
    json_array_foreach(root, i, c) {
        if (!json_is_object(c))
            continue;
        total++;
        size_t in_len, wl;
        const char *in = jstr(c, "input", &in_len);
        const char *want = jstr(json_object_get(c, "output"), "utf-8", &wl);
        buf s, w;
        buf_init(&s, BUF_UNLIMITED);
        buf_init(&w, BUF_UNLIMITED);
        buf_append_str(&s, "https://doesnotmatter.invalid/?");
        buf_append(&s, in, in_len);
        buf_append_str(&s, "#");
        buf_append(&s, in, in_len);
        url *u = NULL;
        bool ok = url_parse(s.data, s.len, NULL, &u) == 0;
        if (!ok)
            report("percent-encoding", "input", in, in_len, "parse", s.data, s.len, NULL, 0);
        for (int part = URL_SEARCH; ok && part <= URL_HASH; part++) {
            buf_reset(&w);
            buf_append_str(&w, part == URL_SEARCH ? "?" : "#");
            buf_append(&w, want, wl);
            size_t gl;
            const char *got = url_get(u, part, &gl);
            if (gl != w.len || memcmp(got, w.data, gl)) {
                report("percent-encoding", "input", in, in_len, part_names[part], w.data,
                       w.len, got, gl);
                ok = false;
            }
        }
        passed += ok;
        url_free(u);
        buf_free(&s);
        buf_free(&w);
    }
    json_decref(root);
    printf("percent-encoding: %zu/%zu\n", passed, total);
    assert_true(total > 0);
    assert_int_equal(passed, total);
}

/* --- hand-written cases --- */

static url *parse_ok(const char *in, const char *base)
{
    url *u = NULL;
    assert_int_equal(url_parse_str(in, strlen(in), base, base ? strlen(base) : 0, &u), 0);
    return u;
}

static void input_with_nul_is_encoded_not_truncated(void **state)
{
    url *u = NULL;
    assert_int_equal(url_parse("http://h/a\0b?c\0#d\0e", 19, NULL, &u), 0);
    assert_string_equal(url_get(u, URL_HREF, NULL), "http://h/a%00b?c%00#d%00e");
    url_free(u);
    /* a trailing NUL is a C0 control and is stripped like a space */
    assert_int_equal(url_parse("http://h/\0", 10, NULL, &u), 0);
    assert_string_equal(url_get(u, URL_HREF, NULL), "http://h/");
    url_free(u);
    /* NUL is a forbidden host code point */
    assert_int_equal(url_parse("http://a\0b/", 11, NULL, &u), -EINVAL);
}

static void invalid_utf8_reads_as_replacement_character(void **state)
{
    url *u = parse_ok("http://h/\xff\xc3", NULL);
    assert_string_equal(url_get(u, URL_PATHNAME, NULL), "/%EF%BF%BD%EF%BF%BD");
    url_free(u);
}

static void ipv4_forms(void **state)
{
    url *u = parse_ok("http://0x7f.1/", NULL);
    assert_string_equal(url_get(u, URL_HOST, NULL), "127.0.0.1");
    url_free(u);
    u = parse_ok("http://4294967295/", NULL);
    assert_string_equal(url_get(u, URL_HOST, NULL), "255.255.255.255");
    url_free(u);
    assert_false(url_can_parse("http://4294967296/", 18, NULL, 0));
    assert_false(url_can_parse("http://1.2.3.4.5/", 17, NULL, 0));
    /* "ends in a number" only looks at the last label */
    assert_false(url_can_parse("http://foo.09/", 14, NULL, 0));
    u = parse_ok("http://09.foo/", NULL);
    assert_string_equal(url_get(u, URL_HOST, NULL), "09.foo");
    url_free(u);
    /* an enormous number does not overflow */
    assert_false(url_can_parse("http://999999999999999999999999999/", 35, NULL, 0));
}

static void ipv6_forms(void **state)
{
    url *u = parse_ok("http://[0:0:0:0:0:ffff:1.2.3.4]:8080/", NULL);
    assert_string_equal(url_get(u, URL_HOST, NULL), "[::ffff:102:304]:8080");
    url_free(u);
    u = parse_ok("http://[1:0:0:2:0:0:0:3]/", NULL);
    assert_string_equal(url_get(u, URL_HOSTNAME, NULL), "[1:0:0:2::3]");
    url_free(u);
    assert_false(url_can_parse("http://[::1::]/", 15, NULL, 0));
    assert_false(url_can_parse("http://[1:2:3:4:5:6:7:8:9]/", 27, NULL, 0));
    assert_false(url_can_parse("http://[::1.2.3.]/", 18, NULL, 0));
}

static void file_urls_and_drive_letters(void **state)
{
    url *u = parse_ok("file:///C|/a/../../..", NULL);
    assert_string_equal(url_get(u, URL_HREF, NULL), "file:///C:/");
    url_free(u);
    u = parse_ok("..", "file:///C:/");
    assert_string_equal(url_get(u, URL_HREF, NULL), "file:///C:/");
    url_free(u);
    u = parse_ok("file://localhost/x", NULL);
    assert_string_equal(url_get(u, URL_HREF, NULL), "file:///x");
    url_free(u);
}

static void blob_origin_comes_from_its_path(void **state)
{
    url *u = parse_ok("blob:https://example.com:443/uuid", NULL);
    assert_string_equal(url_get(u, URL_ORIGIN, NULL), "https://example.com");
    url_free(u);
    u = parse_ok("blob:ftp://example.com/uuid", NULL);
    assert_string_equal(url_get(u, URL_ORIGIN, NULL), "null");
    url_free(u);
}

static void setters_follow_the_standard(void **state)
{
    url *u = parse_ok("https://example.com/", NULL);
    assert_int_equal(url_set(u, URL_PORT, "443", 3), 0);
    assert_string_equal(url_get(u, URL_PORT, NULL), "");
    assert_int_equal(url_set(u, URL_PROTOCOL, "http", 4), 0);
    assert_string_equal(url_get(u, URL_HREF, NULL), "http://example.com/");
    /* special to non-special is ignored */
    assert_int_equal(url_set(u, URL_PROTOCOL, "foo", 3), 0);
    assert_string_equal(url_get(u, URL_PROTOCOL, NULL), "http:");
    /* the href setter reports failure and leaves the URL alone */
    assert_int_equal(url_set(u, URL_HREF, "not a url", 9), -EINVAL);
    assert_string_equal(url_get(u, URL_HREF, NULL), "http://example.com/");
    assert_int_equal(url_set(u, URL_SEARCH, "?a b", 4), 0);
    assert_int_equal(url_set(u, URL_HASH, "#x y", 4), 0);
    assert_string_equal(url_get(u, URL_HREF, NULL), "http://example.com/?a%20b#x%20y");
    url_set_query_raw(u, "", 0);
    assert_string_equal(url_get(u, URL_HREF, NULL), "http://example.com/#x%20y");
    url_free(u);
}

static void oversized_input_fails_cleanly(void **state)
{
    size_t n = URL_MAX_INPUT + 1;
    char *s = xmalloc(n);
    memset(s, 'a', n);
    memcpy(s, "http://", 7);
    url *u = NULL;
    assert_int_equal(url_parse(s, n, NULL, &u), -E2BIG);
    free(s);
}

static void domain_to_ascii_directly(void **state)
{
    char *out;
    size_t n;
    assert_int_equal(url_domain_to_ascii("EXAMPLE.com", 11, &out, &n), 0);
    assert_string_equal(out, "example.com");
    free(out);
    assert_int_equal(url_domain_to_ascii("b\xc3\xbc" "cher.de", 10, &out, &n), 0);
    assert_string_equal(out, "xn--bcher-kva.de");
    free(out);
    assert_int_equal(url_domain_to_ascii("a%b", 3, &out, &n), -EINVAL);
    assert_int_equal(url_domain_to_ascii("", 0, &out, &n), -EINVAL);
    /* U+00AD is ignored by the mapping: nothing is left */
    assert_int_equal(url_domain_to_ascii("\xc2\xad", 2, &out, &n), -EINVAL);
    /* UTS #46 keeps what IDNA2008 forbids: symbols, hyphens in 3-4 */
    assert_int_equal(url_domain_to_ascii("\xe2\x99\xa5.net", 7, &out, &n), 0);
    assert_string_equal(out, "xn--g6h.net");
    free(out);
    assert_int_equal(url_domain_to_ascii("a\xe2\x80\xa0--", 6, &out, &n), 0);
    assert_string_equal(out, "xn--a---kp0a");
    free(out);
    /* a Punycode label must decode to a valid label (CheckJoiners here) */
    assert_int_equal(url_domain_to_ascii("xn--1ug.\xc3\x9f", 10, &out, &n), -EINVAL);
}

static void form_parse_and_serialize(void **state)
{
    url_params p;
    url_params_init(&p);
    const char in[] = "a=1&&b=%zz+x&=&c&d=%E2%82%AC&e=%FF";
    assert_int_equal(url_params_parse(&p, in, sizeof in - 1), 0);
    assert_int_equal(p.len, 6);
    assert_string_equal(p.items[1].value, "%zz x");
    assert_string_equal(p.items[2].name, "");
    assert_string_equal(p.items[3].name, "c");
    assert_string_equal(p.items[3].value, "");
    assert_string_equal(p.items[4].value, "\xe2\x82\xac");
    assert_string_equal(p.items[5].value, "\xef\xbf\xbd");
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(url_params_serialize(&p, &out), 0);
    assert_string_equal(out.data, "a=1&b=%25zz+x&=&c=&d=%E2%82%AC&e=%EF%BF%BD");
    buf_reset(&out);
    url_params_clear(&p);
    url_params_append(&p, "a b", 3, "*-._~!'()", 9);
    url_params_append(&p, "n\0ul", 4, "&=+", 3);
    assert_int_equal(url_params_serialize(&p, &out), 0);
    assert_string_equal(out.data, "a+b=*-._%7E%21%27%28%29&n%00ul=%26%3D%2B");
    buf_free(&out);
    url_params_free(&p);
}

static void form_sort_is_stable_by_utf16(void **state)
{
    url_params p;
    url_params_init(&p);
    /* U+FFFD sorts after U+1F600 in UTF-16 (a lead surrogate is 0xD83D) */
    const char in[] = "z=1&%EF%BF%BD=2&%F0%9F%98%80=3&a=4&z=5&a=6";
    assert_int_equal(url_params_parse(&p, in, sizeof in - 1), 0);
    url_params_sort(&p);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(url_params_serialize(&p, &out), 0);
    assert_string_equal(out.data, "a=4&a=6&z=1&z=5&%F0%9F%98%80=3&%EF%BF%BD=2");
    buf_free(&out);
    url_params_free(&p);
}

static void form_set_and_delete(void **state)
{
    url_params p;
    url_params_init(&p);
    const char in[] = "a=1&b=2&a=3&a=4";
    assert_int_equal(url_params_parse(&p, in, sizeof in - 1), 0);
    url_params_set(&p, "a", 1, "x", 1);
    assert_int_equal(p.len, 2);
    assert_string_equal(p.items[0].value, "x");
    url_params_append(&p, "b", 1, "3", 1);
    url_params_delete(&p, "b", 1, "2", 1);
    assert_int_equal(p.len, 2);
    assert_int_equal(url_params_find(&p, "b", 1), 1);
    url_params_delete(&p, "b", 1, NULL, 0);
    assert_int_equal(url_params_find(&p, "b", 1), -1);
    url_params_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wpt_urltestdata),
        cmocka_unit_test(wpt_setters),
        cmocka_unit_test(wpt_toascii),
        cmocka_unit_test(wpt_percent_encoding),
        cmocka_unit_test(wpt_idnatest),
        cmocka_unit_test(input_with_nul_is_encoded_not_truncated),
        cmocka_unit_test(invalid_utf8_reads_as_replacement_character),
        cmocka_unit_test(ipv4_forms),
        cmocka_unit_test(ipv6_forms),
        cmocka_unit_test(file_urls_and_drive_letters),
        cmocka_unit_test(blob_origin_comes_from_its_path),
        cmocka_unit_test(setters_follow_the_standard),
        cmocka_unit_test(oversized_input_fails_cleanly),
        cmocka_unit_test(domain_to_ascii_directly),
        cmocka_unit_test(form_parse_and_serialize),
        cmocka_unit_test(form_sort_is_stable_by_utf16),
        cmocka_unit_test(form_set_and_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
