/* The URL Standard's URL record, basic URL parser (section 4.4, state by
 * state, with state overrides for the setters), URL serializer, origin, and
 * the URL API's getters and setters (section 6). Host parsing is in
 * url_host.c, application/x-www-form-urlencoded in urlencoded.c. */
#include "web/url_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

struct url {
    char *scheme;            /* owned, lowercase, without ':' */
    char *username, *password; /* owned, never NULL */
    char *host;              /* owned serialized host; NULL when null */
    enum url_host_kind host_kind;
    int port;                /* -1 when null */
    char *opaque_path;       /* owned; non-NULL when the path is opaque */
    char **segs;             /* owned list of owned segments otherwise */
    size_t nsegs, segcap;
    char *query, *fragment;  /* owned; NULL when null */
    /* The getters' strings, rebuilt after every change. */
    buf cache;
    size_t off[URL_PART_COUNT], len[URL_PART_COUNT];
};

enum state {
    ST_SCHEME_START, ST_SCHEME, ST_NO_SCHEME, ST_SPECIAL_RELATIVE_OR_AUTHORITY,
    ST_PATH_OR_AUTHORITY, ST_RELATIVE, ST_RELATIVE_SLASH,
    ST_SPECIAL_AUTHORITY_SLASHES, ST_SPECIAL_AUTHORITY_IGNORE_SLASHES,
    ST_AUTHORITY, ST_HOST, ST_HOSTNAME, ST_PORT, ST_FILE, ST_FILE_SLASH,
    ST_FILE_HOST, ST_PATH_START, ST_PATH, ST_OPAQUE_PATH, ST_QUERY,
    ST_FRAGMENT, ST_NONE
};

/* --- small helpers --- */

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static char *dup_n(const char *s, size_t n) { return xstrndup(s ? s : "", s ? n : 0); }

static void set_str(char **field, const char *s, size_t n)
{
    free(*field);
    *field = s ? dup_n(s, n) : NULL;
}

static void set_cstr(char **field, const char *s)
{
    set_str(field, s, s ? strlen(s) : 0);
}

static int default_port(const char *scheme)
{
    if (!strcmp(scheme, "http") || !strcmp(scheme, "ws"))
        return 80;
    if (!strcmp(scheme, "https") || !strcmp(scheme, "wss"))
        return 443;
    if (!strcmp(scheme, "ftp"))
        return 21;
    return -1;
}

static bool is_special_scheme(const char *s, size_t n)
{
    static const char *const special[] = {"ftp", "file", "http", "https", "ws", "wss"};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (strlen(special[i]) == n && !memcmp(special[i], s, n))
            return true;
    return false;
}

static bool special(const url *u) { return is_special_scheme(u->scheme, strlen(u->scheme)); }

static bool includes_credentials(const url *u)
{
    return u->username[0] || u->password[0];
}

static bool cannot_have_credentials_or_port(const url *u)
{
    return !u->host || !u->host[0] || !strcmp(u->scheme, "file");
}

bool url__in_set(unsigned char c, url_encode_set set)
{
    if (c < 0x20 || c > 0x7e)
        return true;
    switch (set) {
    case URL_SET_C0_CONTROL:
        return false;
    case URL_SET_FRAGMENT:
        return strchr(" \"<>`", c) != NULL;
    case URL_SET_QUERY:
        return strchr(" \"#<>", c) != NULL;
    case URL_SET_SPECIAL_QUERY:
        return strchr(" \"#<>'", c) != NULL;
    case URL_SET_PATH:
        return strchr(" \"#<>?^`{}", c) != NULL;
    case URL_SET_USERINFO:
        return strchr(" \"#<>?^`{}/:;=@[\\]|", c) != NULL;
    case URL_SET_COMPONENT:
        return strchr(" \"#<>?^`{}/:;=@[\\]|$%&+,", c) != NULL;
    case URL_SET_FORM:
        return strchr(" \"#<>?^`{}/:;=@[\\]|$%&+,!'()~", c) != NULL;
    }
    return true;
}

int url_percent_encode(buf *out, const char *s, size_t len, url_encode_set set,
                       bool space_as_plus)
{
    int rc = buf_append(out, "", 0);
    for (size_t i = 0; i < len && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (space_as_plus && c == ' ')
            rc = buf_append(out, "+", 1);
        else if (url__in_set(c, set))
            rc = buf_printf(out, "%%%02X", c);
        else
            rc = buf_append(out, &s[i], 1);
    }
    return rc;
}

/* Windows drive letter: an ASCII alpha then ':' or '|' (normalized: ':'). */
static bool drive_letter(const char *s, size_t n, bool normalized)
{
    return n == 2 && is_alpha(s[0]) && (s[1] == ':' || (!normalized && s[1] == '|'));
}

/* "Starts with a Windows drive letter". */
static bool starts_with_drive_letter(const char *s, size_t n)
{
    return n >= 2 && drive_letter(s, 2, false) &&
           (n == 2 || s[2] == '/' || s[2] == '\\' || s[2] == '?' || s[2] == '#');
}

static bool single_dot(const char *s, size_t n)
{
    return (n == 1 && s[0] == '.') || (n == 3 && !strncasecmp(s, "%2e", 3));
}

static bool double_dot(const char *s, size_t n)
{
    return (n == 2 && !memcmp(s, "..", 2)) ||
           (n == 4 && (!strncasecmp(s, ".%2e", 4) || !strncasecmp(s, "%2e.", 4))) ||
           (n == 6 && !strncasecmp(s, "%2e%2e", 6));
}

/* --- path list --- */

static void path_clear(url *u)
{
    for (size_t i = 0; i < u->nsegs; i++)
        free(u->segs[i]);
    u->nsegs = 0;
    free(u->opaque_path);
    u->opaque_path = NULL;
}

static void path_push(url *u, const char *s, size_t n)
{
    if (u->nsegs == u->segcap) {
        u->segcap = u->segcap ? u->segcap * 2 : 4;
        u->segs = xrealloc(u->segs, u->segcap * sizeof *u->segs);
    }
    u->segs[u->nsegs++] = dup_n(s, n);
}

static void path_copy(url *u, const url *from)
{
    path_clear(u);
    if (from->opaque_path)
        u->opaque_path = xstrdup(from->opaque_path);
    for (size_t i = 0; i < from->nsegs; i++)
        path_push(u, from->segs[i], strlen(from->segs[i]));
}

/* "Shorten a URL's path": keeps a lone normalized drive letter of file:. */
static void path_shorten(url *u)
{
    if (!strcmp(u->scheme, "file") && u->nsegs == 1 &&
        drive_letter(u->segs[0], strlen(u->segs[0]), true))
        return;
    if (u->nsegs)
        free(u->segs[--u->nsegs]);
}

static url *url_new(void)
{
    url *u = xcalloc(1, sizeof *u);
    u->scheme = xstrdup("");
    u->username = xstrdup("");
    u->password = xstrdup("");
    u->port = -1;
    buf_init(&u->cache, BUF_UNLIMITED);
    return u;
}

void url_free(url *u)
{
    if (!u)
        return;
    path_clear(u);
    free(u->segs);
    free(u->scheme);
    free(u->username);
    free(u->password);
    free(u->host);
    free(u->query);
    free(u->fragment);
    buf_free(&u->cache);
    free(u);
}

/* --- the basic URL parser --- */

struct parser {
    const char *s; /* input after the preprocessing steps */
    size_t len;
    const url *base;
    url *u;
    enum state override; /* ST_NONE when not given */
    buf b;               /* the standard's buffer */
    buf tmp;
};

/* The parse result: failure, success, or (for state overrides) an early
 * "return" that keeps the changes made so far. */
enum { PARSE_FAIL = -1, PARSE_OK = 0 };

/* Percent-encodes one code point's bytes starting at s[*i] onto out. */
static int encode_cp(buf *out, const char *s, size_t len, size_t *i, url_encode_set set)
{
    size_t n = 1;
    unsigned char c = (unsigned char)s[*i];
    if (c >= 0x80)
        while (*i + n < len && ((unsigned char)s[*i + n] & 0xc0) == 0x80)
            n++;
    int rc = url_percent_encode(out, s + *i, n, set, false);
    *i += n - 1;
    return rc;
}

/* Runs the state machine on p->s. Returns 0, PARSE_FAIL, or -E2BIG. */
static int run(struct parser *p, enum state state)
{
    const char *s = p->s;
    size_t len = p->len;
    url *u = p->u;
    const url *base = p->base;
    enum state ov = p->override;
    bool has_ov = ov != ST_NONE;
    bool at_seen = false, in_brackets = false, pw_seen = false;
    int rc = 0;
    buf *b = &p->b;

    for (size_t i = 0;; i++) {
        /* c is the code point at i (its first byte), -1 at the end (EOF). */
        int c = i < len ? (unsigned char)s[i] : -1;
        const char *rest = i < len ? s + i + 1 : s + len; /* "remaining" */
        size_t rest_len = i < len ? len - i - 1 : 0;
        switch (state) {
        case ST_SCHEME_START:
            if (c != -1 && is_alpha(c)) {
                char l = (char)lower(c);
                if ((rc = buf_append(b, &l, 1)))
                    return rc;
                state = ST_SCHEME;
            } else if (!has_ov) {
                state = ST_NO_SCHEME;
                i--;
            } else {
                return PARSE_FAIL;
            }
            break;

        case ST_SCHEME:
            if (c != -1 && (is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.')) {
                char l = (char)lower(c);
                if ((rc = buf_append(b, &l, 1)))
                    return rc;
            } else if (c == ':') {
                bool bspecial = is_special_scheme(b->data, b->len);
                if (has_ov) {
                    if (special(u) != bspecial)
                        return PARSE_OK;
                    if ((includes_credentials(u) || u->port >= 0) && !strcmp(b->data, "file"))
                        return PARSE_OK;
                    if (!strcmp(u->scheme, "file") && u->host && !u->host[0])
                        return PARSE_OK;
                }
                set_str(&u->scheme, b->data, b->len);
                if (has_ov) {
                    if (u->port >= 0 && u->port == default_port(u->scheme))
                        u->port = -1;
                    return PARSE_OK;
                }
                buf_reset(b);
                if (!strcmp(u->scheme, "file")) {
                    state = ST_FILE;
                } else if (bspecial && base && !strcmp(base->scheme, u->scheme)) {
                    state = ST_SPECIAL_RELATIVE_OR_AUTHORITY;
                } else if (bspecial) {
                    state = ST_SPECIAL_AUTHORITY_SLASHES;
                } else if (rest_len && rest[0] == '/') {
                    state = ST_PATH_OR_AUTHORITY;
                    i++;
                } else {
                    path_clear(u);
                    u->opaque_path = xstrdup("");
                    state = ST_OPAQUE_PATH;
                }
            } else if (!has_ov) {
                buf_reset(b);
                state = ST_NO_SCHEME;
                i = (size_t)-1; /* start over from the first code point */
            } else {
                return PARSE_FAIL;
            }
            break;

        case ST_NO_SCHEME:
            if (!base || (base->opaque_path && c != '#'))
                return PARSE_FAIL;
            if (base->opaque_path && c == '#') {
                set_cstr(&u->scheme, base->scheme);
                path_copy(u, base);
                set_cstr(&u->query, base->query);
                set_cstr(&u->fragment, "");
                state = ST_FRAGMENT;
            } else {
                state = strcmp(base->scheme, "file") ? ST_RELATIVE : ST_FILE;
                i--;
            }
            break;

        case ST_SPECIAL_RELATIVE_OR_AUTHORITY:
            if (c == '/' && rest_len && rest[0] == '/') {
                state = ST_SPECIAL_AUTHORITY_IGNORE_SLASHES;
                i++;
            } else {
                state = ST_RELATIVE;
                i--;
            }
            break;

        case ST_PATH_OR_AUTHORITY:
            if (c == '/') {
                state = ST_AUTHORITY;
            } else {
                state = ST_PATH;
                i--;
            }
            break;

        case ST_RELATIVE:
            set_cstr(&u->scheme, base->scheme);
            if (c == '/' || (special(u) && c == '\\')) {
                state = ST_RELATIVE_SLASH;
            } else {
                set_cstr(&u->username, base->username);
                set_cstr(&u->password, base->password);
                set_cstr(&u->host, base->host);
                u->host_kind = base->host_kind;
                u->port = base->port;
                path_copy(u, base);
                set_cstr(&u->query, base->query);
                if (c == '?') {
                    set_cstr(&u->query, "");
                    state = ST_QUERY;
                } else if (c == '#') {
                    set_cstr(&u->fragment, "");
                    state = ST_FRAGMENT;
                } else if (c != -1) {
                    set_cstr(&u->query, NULL);
                    path_shorten(u);
                    state = ST_PATH;
                    i--;
                }
            }
            break;

        case ST_RELATIVE_SLASH:
            if (special(u) && (c == '/' || c == '\\')) {
                state = ST_SPECIAL_AUTHORITY_IGNORE_SLASHES;
            } else if (c == '/') {
                state = ST_AUTHORITY;
            } else {
                set_cstr(&u->username, base->username);
                set_cstr(&u->password, base->password);
                set_cstr(&u->host, base->host);
                u->host_kind = base->host_kind;
                u->port = base->port;
                state = ST_PATH;
                i--;
            }
            break;

        case ST_SPECIAL_AUTHORITY_SLASHES:
            if (c == '/' && rest_len && rest[0] == '/') {
                i++;
            } else {
                i--;
            }
            state = ST_SPECIAL_AUTHORITY_IGNORE_SLASHES;
            break;

        case ST_SPECIAL_AUTHORITY_IGNORE_SLASHES:
            if (c != '/' && c != '\\') {
                state = ST_AUTHORITY;
                i--;
            }
            break;

        case ST_AUTHORITY:
            if (c == '@') {
                if (at_seen) {
                    buf_reset(&p->tmp);
                    if ((rc = buf_append(&p->tmp, "%40", 3)) ||
                        (rc = buf_append(&p->tmp, b->data, b->len)))
                        return rc;
                    buf_reset(b);
                    if ((rc = buf_append(b, p->tmp.data, p->tmp.len)))
                        return rc;
                }
                at_seen = true;
                /* Split the buffer at its first ':' into username and password. */
                buf user, pass;
                buf_init(&user, URL_MAX_INPUT * 3);
                buf_init(&pass, URL_MAX_INPUT * 3);
                rc = buf_append(&user, u->username, strlen(u->username));
                if (!rc)
                    rc = buf_append(&pass, u->password, strlen(u->password));
                for (size_t k = 0; k < b->len && !rc; k++) {
                    if (b->data[k] == ':' && !pw_seen) {
                        pw_seen = true;
                        continue;
                    }
                    rc = encode_cp(pw_seen ? &pass : &user, b->data, b->len, &k,
                                   URL_SET_USERINFO);
                }
                if (!rc) {
                    set_str(&u->username, user.data, user.len);
                    set_str(&u->password, pass.data, pass.len);
                }
                buf_free(&user);
                buf_free(&pass);
                if (rc)
                    return rc;
                buf_reset(b);
            } else if (c == -1 || c == '/' || c == '?' || c == '#' ||
                       (special(u) && c == '\\')) {
                if (at_seen && b->len == 0)
                    return PARSE_FAIL;
                i -= b->len + 1;
                buf_reset(b);
                state = ST_HOST;
            } else if ((rc = buf_append(b, &s[i], 1))) {
                return rc;
            }
            break;

        case ST_HOST:
        case ST_HOSTNAME:
            if (has_ov && !strcmp(u->scheme, "file")) {
                i--;
                state = ST_FILE_HOST;
            } else if (c == ':' && !in_brackets) {
                if (b->len == 0)
                    return PARSE_FAIL;
                if (ov == ST_HOSTNAME)
                    return PARSE_FAIL;
                enum url_host_kind kind;
                if (url__host_parse(b->data, b->len, !special(u), &p->tmp, &kind))
                    return PARSE_FAIL;
                set_str(&u->host, p->tmp.data, p->tmp.len);
                u->host_kind = kind;
                buf_reset(b);
                state = ST_PORT;
            } else if (c == -1 || c == '/' || c == '?' || c == '#' ||
                       (special(u) && c == '\\')) {
                i--;
                if (special(u) && b->len == 0)
                    return PARSE_FAIL;
                if (has_ov && b->len == 0 && (includes_credentials(u) || u->port >= 0))
                    return PARSE_FAIL;
                enum url_host_kind kind;
                if (url__host_parse(b->data, b->len, !special(u), &p->tmp, &kind))
                    return PARSE_FAIL;
                set_str(&u->host, p->tmp.data, p->tmp.len);
                u->host_kind = kind;
                buf_reset(b);
                state = ST_PATH_START;
                if (has_ov)
                    return PARSE_OK;
            } else {
                if (c == '[')
                    in_brackets = true;
                if (c == ']')
                    in_brackets = false;
                if ((rc = buf_append(b, &s[i], 1)))
                    return rc;
            }
            break;

        case ST_PORT:
            if (c != -1 && is_digit(c)) {
                if ((rc = buf_append(b, &s[i], 1)))
                    return rc;
            } else if (c == -1 || c == '/' || c == '?' || c == '#' ||
                       (special(u) && c == '\\') || has_ov) {
                if (b->len) {
                    long port = 0;
                    for (size_t k = 0; k < b->len; k++) {
                        port = port * 10 + (b->data[k] - '0');
                        if (port > 65535)
                            return PARSE_FAIL;
                    }
                    u->port = port == default_port(u->scheme) ? -1 : (int)port;
                    buf_reset(b);
                }
                if (has_ov)
                    return PARSE_OK;
                state = ST_PATH_START;
                i--;
            } else {
                return PARSE_FAIL;
            }
            break;

        case ST_FILE:
            set_cstr(&u->scheme, "file");
            set_cstr(&u->host, "");
            u->host_kind = HOST_DOMAIN;
            if (c == '/' || c == '\\') {
                state = ST_FILE_SLASH;
            } else if (base && !strcmp(base->scheme, "file")) {
                set_cstr(&u->host, base->host);
                u->host_kind = base->host_kind;
                path_copy(u, base);
                set_cstr(&u->query, base->query);
                if (c == '?') {
                    set_cstr(&u->query, "");
                    state = ST_QUERY;
                } else if (c == '#') {
                    set_cstr(&u->fragment, "");
                    state = ST_FRAGMENT;
                } else if (c != -1) {
                    set_cstr(&u->query, NULL);
                    if (!starts_with_drive_letter(s + i, len - i))
                        path_shorten(u);
                    else
                        path_clear(u);
                    state = ST_PATH;
                    i--;
                }
            } else {
                state = ST_PATH;
                i--;
            }
            break;

        case ST_FILE_SLASH:
            if (c == '/' || c == '\\') {
                state = ST_FILE_HOST;
            } else {
                if (base && !strcmp(base->scheme, "file")) {
                    set_cstr(&u->host, base->host);
                    u->host_kind = base->host_kind;
                    if (!starts_with_drive_letter(s + i, len - i) && base->nsegs &&
                        drive_letter(base->segs[0], strlen(base->segs[0]), true))
                        path_push(u, base->segs[0], strlen(base->segs[0]));
                }
                state = ST_PATH;
                i--;
            }
            break;

        case ST_FILE_HOST:
            if (c == -1 || c == '/' || c == '\\' || c == '?' || c == '#') {
                i--;
                if (!has_ov && drive_letter(b->data, b->len, false)) {
                    /* the buffer is kept: the path state uses it */
                    state = ST_PATH;
                } else if (b->len == 0) {
                    set_cstr(&u->host, "");
                    u->host_kind = HOST_DOMAIN;
                    if (has_ov)
                        return PARSE_OK;
                    state = ST_PATH_START;
                } else {
                    enum url_host_kind kind;
                    if (url__host_parse(b->data, b->len, !special(u), &p->tmp, &kind))
                        return PARSE_FAIL;
                    if (!strcmp(p->tmp.data, "localhost"))
                        buf_reset(&p->tmp);
                    set_str(&u->host, p->tmp.data ? p->tmp.data : "", p->tmp.len);
                    u->host_kind = kind;
                    if (has_ov)
                        return PARSE_OK;
                    buf_reset(b);
                    state = ST_PATH_START;
                }
            } else if ((rc = buf_append(b, &s[i], 1))) {
                return rc;
            }
            break;

        case ST_PATH_START:
            if (special(u)) {
                state = ST_PATH;
                if (c != '/' && c != '\\')
                    i--;
            } else if (!has_ov && c == '?') {
                set_cstr(&u->query, "");
                state = ST_QUERY;
            } else if (!has_ov && c == '#') {
                set_cstr(&u->fragment, "");
                state = ST_FRAGMENT;
            } else if (c != -1) {
                state = ST_PATH;
                if (c != '/')
                    i--;
            } else if (has_ov && !u->host) {
                path_push(u, "", 0);
            }
            break;

        case ST_PATH:
            if (c == -1 || c == '/' || (special(u) && c == '\\') ||
                (!has_ov && (c == '?' || c == '#'))) {
                bool slash = c == '/' || (special(u) && c == '\\');
                if (double_dot(b->data, b->len)) {
                    path_shorten(u);
                    if (!slash)
                        path_push(u, "", 0);
                } else if (single_dot(b->data, b->len) && !slash) {
                    path_push(u, "", 0);
                } else if (!single_dot(b->data, b->len)) {
                    if (!strcmp(u->scheme, "file") && u->nsegs == 0 &&
                        drive_letter(b->data, b->len, false))
                        b->data[1] = ':';
                    path_push(u, b->data, b->len);
                }
                buf_reset(b);
                if (c == '?') {
                    set_cstr(&u->query, "");
                    state = ST_QUERY;
                }
                if (c == '#') {
                    set_cstr(&u->fragment, "");
                    state = ST_FRAGMENT;
                }
            } else if ((rc = encode_cp(b, s, len, &i, URL_SET_PATH))) {
                return rc;
            }
            break;

        case ST_OPAQUE_PATH: {
            buf_reset(&p->tmp);
            if ((rc = buf_append_str(&p->tmp, u->opaque_path)))
                return rc;
            /* Collect the run up to '?', '#' or the end in one go. */
            size_t k = i;
            for (; k < len && s[k] != '?' && s[k] != '#'; k++) {
                if (s[k] == ' ') {
                    bool before = k + 1 < len && (s[k + 1] == '?' || s[k + 1] == '#');
                    rc = buf_append(&p->tmp, before ? "%20" : " ", before ? 3 : 1);
                } else {
                    rc = encode_cp(&p->tmp, s, len, &k, URL_SET_C0_CONTROL);
                }
                if (rc)
                    return rc;
            }
            set_str(&u->opaque_path, p->tmp.data, p->tmp.len);
            i = k;
            c = i < len ? (unsigned char)s[i] : -1;
            if (c == '?') {
                set_cstr(&u->query, "");
                state = ST_QUERY;
            } else if (c == '#') {
                set_cstr(&u->fragment, "");
                state = ST_FRAGMENT;
            }
            break;
        }

        case ST_QUERY:
            if ((!has_ov && c == '#') || c == -1) {
                buf_reset(&p->tmp);
                if ((rc = buf_append_str(&p->tmp, u->query)) ||
                    (rc = url_percent_encode(&p->tmp, b->data, b->len,
                                             special(u) ? URL_SET_SPECIAL_QUERY : URL_SET_QUERY,
                                             false)))
                    return rc;
                set_str(&u->query, p->tmp.data, p->tmp.len);
                buf_reset(b);
                if (c == '#') {
                    set_cstr(&u->fragment, "");
                    state = ST_FRAGMENT;
                }
            } else if ((rc = buf_append(b, &s[i], 1))) {
                return rc;
            }
            break;

        case ST_FRAGMENT:
            if (c != -1) {
                /* The rest of the input is all fragment. */
                buf_reset(&p->tmp);
                if ((rc = buf_append_str(&p->tmp, u->fragment)) ||
                    (rc = url_percent_encode(&p->tmp, s + i, len - i, URL_SET_FRAGMENT, false)))
                    return rc;
                set_str(&u->fragment, p->tmp.data, p->tmp.len);
                i = len;
            }
            break;

        case ST_NONE:
            return PARSE_FAIL;
        }
        /* "If after a run pointer points to the EOF code point", stop. */
        if (i == len)
            return PARSE_OK;
    }
}

static bool c0_or_space(unsigned char c) { return c <= 0x20; }

/* Preprocessing and running the basic URL parser on `u` (a fresh one, or
 * the URL that a setter changes with `override`). */
static int basic_parse(const char *input, size_t len, const url *base, url *u,
                       enum state override)
{
    if (len > URL_MAX_INPUT)
        return -E2BIG;
    struct parser p = {.base = base, .u = u, .override = override};
    buf clean;
    buf_init(&clean, URL_MAX_INPUT * 3);
    buf_init(&p.b, URL_MAX_INPUT * 3);
    buf_init(&p.tmp, URL_MAX_INPUT * 9);
    int rc = buf_append(&p.b, "", 0);
    if (!rc)
        rc = buf_append(&p.tmp, "", 0);
    if (!rc && override == ST_NONE) {
        /* Strip leading and trailing C0 control or space. */
        while (len && c0_or_space((unsigned char)input[0]))
            input++, len--;
        while (len && c0_or_space((unsigned char)input[len - 1]))
            len--;
    }
    /* Remove all ASCII tab or newline; read invalid UTF-8 as U+FFFD. */
    buf nl;
    buf_init(&nl, URL_MAX_INPUT);
    for (size_t i = 0; i < len && !rc; i++)
        if (input[i] != '\t' && input[i] != '\n' && input[i] != '\r')
            rc = buf_append(&nl, &input[i], 1);
    if (!rc)
        rc = url__utf8_sanitize(&clean, nl.data ? nl.data : "", nl.len);
    buf_free(&nl);
    if (rc)
        goto done;
    p.s = clean.data;
    p.len = clean.len;
    rc = run(&p, override == ST_NONE ? ST_SCHEME_START : override);
    if (rc == PARSE_FAIL)
        rc = -EINVAL;
done:
    buf_free(&clean);
    buf_free(&p.b);
    buf_free(&p.tmp);
    return rc;
}

/* --- serializing: href, origin and the getters' strings --- */

static int serialize_path(const url *u, buf *out)
{
    if (u->opaque_path)
        return buf_append_str(out, u->opaque_path);
    int rc = 0;
    for (size_t i = 0; i < u->nsegs && !rc; i++) {
        rc = buf_append(out, "/", 1);
        if (!rc)
            rc = buf_append_str(out, u->segs[i]);
    }
    return rc;
}

static int serialize_host_port(const url *u, buf *out, bool with_port)
{
    int rc = buf_append_str(out, u->host ? u->host : "");
    if (!rc && with_port && u->port >= 0)
        rc = buf_printf(out, ":%d", u->port);
    return rc;
}

static int serialize_origin(const url *u, buf *out)
{
    if (!strcmp(u->scheme, "blob")) {
        /* The origin of the URL that the path holds, if http(s). */
        buf path;
        buf_init(&path, BUF_UNLIMITED);
        url *inner = NULL;
        int rc = serialize_path(u, &path);
        if (!rc && url_parse(path.data ? path.data : "", path.len, NULL, &inner) == 0 &&
            (!strcmp(inner->scheme, "http") || !strcmp(inner->scheme, "https")))
            rc = serialize_origin(inner, out);
        else if (!rc)
            rc = buf_append_str(out, "null");
        url_free(inner);
        buf_free(&path);
        return rc;
    }
    if (special(u) && strcmp(u->scheme, "file")) {
        int rc = buf_printf(out, "%s://", u->scheme);
        return rc ? rc : serialize_host_port(u, out, true);
    }
    return buf_append_str(out, "null");
}

/* Rebuilds every getter's string into u->cache. */
static int refresh(url *u)
{
    buf *c = &u->cache;
    buf_reset(c);
    int rc = 0;
#define PART(p, body)                     \
    do {                                  \
        size_t start_ = c->len;           \
        if (!rc)                          \
            rc = (body);                  \
        if (!rc)                          \
            rc = buf_append(c, "", 1);    \
        u->off[p] = start_;               \
        u->len[p] = c->len - start_ - 1;  \
    } while (0)

    PART(URL_HREF, ({
        int r = buf_printf(c, "%s:", u->scheme);
        if (!r && u->host) {
            r = buf_append(c, "//", 2);
            if (!r && includes_credentials(u)) {
                r = buf_append_str(c, u->username);
                if (!r && u->password[0])
                    r = buf_printf(c, ":%s", u->password);
                if (!r)
                    r = buf_append(c, "@", 1);
            }
            if (!r)
                r = serialize_host_port(u, c, true);
        } else if (!r && !u->opaque_path && u->nsegs > 1 && !u->segs[0][0]) {
            r = buf_append(c, "/.", 2);
        }
        if (!r)
            r = serialize_path(u, c);
        if (!r && u->query)
            r = buf_printf(c, "?%s", u->query);
        if (!r && u->fragment)
            r = buf_printf(c, "#%s", u->fragment);
        r;
    }));
    PART(URL_ORIGIN, serialize_origin(u, c));
    PART(URL_PROTOCOL, buf_printf(c, "%s:", u->scheme));
    PART(URL_USERNAME, buf_append_str(c, u->username));
    PART(URL_PASSWORD, buf_append_str(c, u->password));
    PART(URL_HOST, serialize_host_port(u, c, true));
    PART(URL_HOSTNAME, serialize_host_port(u, c, false));
    PART(URL_PORT, u->port >= 0 ? buf_printf(c, "%d", u->port) : 0);
    PART(URL_PATHNAME, serialize_path(u, c));
    PART(URL_SEARCH, u->query && u->query[0] ? buf_printf(c, "?%s", u->query) : 0);
    PART(URL_HASH, u->fragment && u->fragment[0] ? buf_printf(c, "#%s", u->fragment) : 0);
#undef PART
    return rc;
}

/* --- public interface --- */

int url_parse(const char *input, size_t len, const url *base, url **out)
{
    url *u = url_new();
    int rc = basic_parse(input, len, base, u, ST_NONE);
    if (!rc)
        rc = refresh(u);
    if (rc) {
        url_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

int url_parse_str(const char *input, size_t len, const char *base,
                  size_t base_len, url **out)
{
    url *b = NULL;
    if (base) {
        int rc = url_parse(base, base_len, NULL, &b);
        if (rc)
            return rc;
    }
    int rc = url_parse(input, len, b, out);
    url_free(b);
    return rc;
}

bool url_can_parse(const char *input, size_t len, const char *base,
                   size_t base_len)
{
    url *u = NULL;
    int rc = url_parse_str(input, len, base, base_len, &u);
    url_free(u);
    return rc == 0;
}

url *url_clone(const url *from)
{
    url *u = url_new();
    set_cstr(&u->scheme, from->scheme);
    set_cstr(&u->username, from->username);
    set_cstr(&u->password, from->password);
    set_cstr(&u->host, from->host);
    u->host_kind = from->host_kind;
    u->port = from->port;
    path_copy(u, from);
    set_cstr(&u->query, from->query);
    set_cstr(&u->fragment, from->fragment);
    if (refresh(u)) {
        url_free(u);
        return NULL;
    }
    return u;
}

const char *url_get(const url *u, url_part part, size_t *len)
{
    if (part >= URL_PART_COUNT || !u->cache.data) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = u->len[part];
    return u->cache.data + u->off[part];
}

/* Swaps the contents of two records (for the href setter). */
static void swap_urls(url *a, url *b)
{
    url t = *a;
    *a = *b;
    *b = t;
}

/* A setter's basic URL parse runs on the URL itself: where the standard
 * returns failure part-way, the changes made before stay (a host setter
 * with an out-of-range port still sets the host). */
static void set_with_override(url *u, const char *v, size_t n, enum state st,
                              void (*prepare)(url *))
{
    if (prepare)
        prepare(u);
    basic_parse(v, n, NULL, u, st);
}

static void empty_path(url *u) { path_clear(u); }
static void empty_query(url *u) { set_cstr(&u->query, ""); }
static void empty_fragment(url *u) { set_cstr(&u->fragment, ""); }

static void set_userinfo(url *u, char **field, const char *v, size_t n)
{
    buf enc;
    buf_init(&enc, URL_MAX_INPUT * 9);
    buf clean;
    buf_init(&clean, URL_MAX_INPUT * 3);
    if (n <= URL_MAX_INPUT && !url__utf8_sanitize(&clean, v, n) &&
        !url_percent_encode(&enc, clean.data, clean.len, URL_SET_USERINFO, false))
        set_str(field, enc.data, enc.len);
    buf_free(&clean);
    buf_free(&enc);
}

int url_set(url *u, url_part part, const char *v, size_t n)
{
    int rc = 0;
    switch (part) {
    case URL_HREF: {
        url *nu;
        rc = url_parse(v, n, NULL, &nu);
        if (rc)
            return rc;
        swap_urls(u, nu);
        url_free(nu);
        return 0;
    }
    case URL_ORIGIN:
    case URL_PART_COUNT:
        return -EINVAL;
    case URL_PROTOCOL: {
        char *s = xmalloc(n + 2);
        memcpy(s, v, n);
        s[n] = ':';
        set_with_override(u, s, n + 1, ST_SCHEME_START, NULL);
        free(s);
        break;
    }
    case URL_USERNAME:
        if (!cannot_have_credentials_or_port(u))
            set_userinfo(u, &u->username, v, n);
        break;
    case URL_PASSWORD:
        if (!cannot_have_credentials_or_port(u))
            set_userinfo(u, &u->password, v, n);
        break;
    case URL_HOST:
        if (!u->opaque_path)
            set_with_override(u, v, n, ST_HOST, NULL);
        break;
    case URL_HOSTNAME:
        if (!u->opaque_path)
            set_with_override(u, v, n, ST_HOSTNAME, NULL);
        break;
    case URL_PORT:
        if (cannot_have_credentials_or_port(u))
            break;
        if (n == 0)
            u->port = -1;
        else
            set_with_override(u, v, n, ST_PORT, NULL);
        break;
    case URL_PATHNAME:
        if (!u->opaque_path)
            set_with_override(u, v, n, ST_PATH_START, empty_path);
        break;
    case URL_SEARCH:
        if (n == 0) {
            set_cstr(&u->query, NULL);
            break;
        }
        if (v[0] == '?')
            v++, n--;
        set_with_override(u, v, n, ST_QUERY, empty_query);
        break;
    case URL_HASH:
        if (n == 0) {
            set_cstr(&u->fragment, NULL);
            break;
        }
        if (v[0] == '#')
            v++, n--;
        set_with_override(u, v, n, ST_FRAGMENT, empty_fragment);
        break;
    }
    return refresh(u) ? -E2BIG : 0;
}

void url_set_query_raw(url *u, const char *query, size_t len)
{
    set_str(&u->query, len ? query : NULL, len);
    refresh(u);
}
