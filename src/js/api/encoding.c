/* The Encoding Standard's TextEncoder and TextDecoder (utf-8, utf-16le and
 * windows-1252, which the standard also names latin1/ascii/iso-8859-1),
 * the HTML Standard's atob/btoa (forgiving base64), and the conversions
 * between JS strings, USVStrings and BufferSources that the API files
 * share. Decoders follow the standard's byte-at-a-time state machines, so
 * the number of U+FFFD for broken input is the standard's, and streaming
 * (decode(chunk, {stream: true})) keeps that state between calls. */
#include "js/api/api_internal.h"

#include <string.h>
#include <strings.h>

#include "core/buf.h"

/* QuickJS's class id for Uint8Array (not exported by quickjs.h; 2025-04-26).
 * test_webapi checks it through TextEncoder.encodeInto. */
#define QJS_CLASS_UINT8_ARRAY 23
#define QJS_CLASS_DATAVIEW 32
/* Uint8ClampedArray … Float64Array: every typed array. */
#define QJS_CLASS_FIRST_TYPED_ARRAY 21
#define QJS_CLASS_LAST_TYPED_ARRAY 31

const char *jsapi_to_usv(JSContext *ctx, JSValueConst v, size_t *len)
{
    const char *s = JS_ToCStringLen(ctx, len, v);
    if (!s)
        return NULL;
    /* QuickJS writes a lone surrogate as its 3-byte form ED A0..BF xx. Such
     * bytes only occur when the string had wide characters, and then the
     * buffer is a fresh copy of our own, so it is patched in place with
     * U+FFFD (also 3 bytes). */
    for (size_t i = 0; i + 2 < *len; i++) {
        if ((unsigned char)s[i] == 0xED && ((unsigned char)s[i + 1] & 0xE0) == 0xA0) {
            char *w = (char *)s;
            w[i] = (char)0xEF, w[i + 1] = (char)0xBF, w[i + 2] = (char)0xBD;
            i += 2;
        }
    }
    return s;
}

int jsapi_buffer_source(JSContext *ctx, JSValueConst v, const uint8_t **data, size_t *len)
{
    if (!JS_IsObject(v))
        return 0;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSClassID id = JS_GetClassID(v);
    size_t off = 0, n = 0, per;
    JSValue ab;
    if (id == QJS_CLASS_DATAVIEW) {
        int64_t o = 0, l = 0;
        JSValue vo = JS_GetPropertyStr(ctx, v, "byteOffset");
        JSValue vl = JS_GetPropertyStr(ctx, v, "byteLength");
        ab = JS_GetPropertyStr(ctx, v, "buffer");
        int rc = JS_ToInt64(ctx, &o, vo) | JS_ToInt64(ctx, &l, vl);
        JS_FreeValue(ctx, vo);
        JS_FreeValue(ctx, vl);
        if (rc < 0 || JS_IsException(ab)) {
            JS_FreeValue(ctx, ab);
            return -1;
        }
        off = (size_t)o, n = (size_t)l;
    } else {
        ab = JS_GetTypedArrayBuffer(ctx, v, &off, &n, &per);
        if (JS_IsException(ab)) {
            JS_FreeValue(ctx, JS_GetException(ctx));
            if (id >= QJS_CLASS_FIRST_TYPED_ARRAY && id <= QJS_CLASS_LAST_TYPED_ARRAY) {
                /* A view of a detached buffer: no bytes. (Taken for "not
                 * a buffer", it left a caller's earlier pointer in place:
                 * encodeInto wrote through it after a toString detached
                 * the destination.) */
                *data = (const uint8_t *)"", *len = 0;
                return 1;
            }
            size_t size;
            uint8_t *p = JS_GetArrayBuffer(ctx, &size, v);
            if (!p) {
                if (!JS_HasException(ctx))
                    return 0; /* not a buffer at all */
                JS_FreeValue(ctx, JS_GetException(ctx));
                return 0;
            }
            *data = p, *len = size;
            return 1;
        }
    }
    size_t size;
    uint8_t *p = JS_GetArrayBuffer(ctx, &size, ab);
    JS_FreeValue(ctx, ab); /* the view keeps its buffer alive */
    if (!p) {
        if (JS_HasException(ctx))
            JS_FreeValue(ctx, JS_GetException(ctx));
        *data = (const uint8_t *)"", *len = 0; /* detached: no bytes */
        return 1;
    }
    if (off > size || n > size - off)
        n = 0, off = 0;
    *data = p + off, *len = n;
    return 1;
}

JSValue jsapi_new_uint8array(JSContext *ctx, const uint8_t *data, size_t len)
{
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValue ab = JS_NewArrayBufferCopy(ctx, data, len);
    if (JS_IsException(ab))
        return ab;
    /* QuickJS reads three arguments whatever argc says. */
    JSValueConst args[3] = { ab, JS_NewInt32(ctx, 0), JS_UNDEFINED };
    JSValue ta = JS_NewTypedArray(ctx, 3, args, JS_TYPED_ARRAY_UINT8);
    JS_FreeValue(ctx, ab);
    return ta;
}

static int put_cp(buf *b, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c, n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    } else {
        u[0] = (char)(0xF0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F)), u[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    }
    return buf_append(b, u, n);
}

/* --- TextEncoder --- */

const JSClassDef jsapi_encoder_class = { "TextEncoder", .finalizer = NULL };

static JSValue encoder_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    return jsapi_new_instance(ctx, new_target, jsapi_encoder_class_id);
}

static bool is_encoder(JSContext *ctx, JSValueConst v)
{
    if (JS_GetClassID(v) == jsapi_encoder_class_id)
        return true;
    JS_ThrowTypeError(ctx, "not a TextEncoder");
    return false;
}

static JSValue encoder_encoding(JSContext *ctx, JSValueConst this_val)
{
    return is_encoder(ctx, this_val) ? JS_NewString(ctx, "utf-8") : JS_EXCEPTION;
}

static JSValue encoder_encode(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (!is_encoder(ctx, this_val))
        return JS_EXCEPTION;
    if (argc < 1 || JS_IsUndefined(argv[0]))
        return jsapi_new_uint8array(ctx, NULL, 0);
    size_t n;
    const char *s = jsapi_to_usv(ctx, argv[0], &n);
    if (!s)
        return JS_EXCEPTION;
    if (jsapi_charge_work(ctx, n) < 0) {
        JS_FreeCString(ctx, s);
        return JS_EXCEPTION;
    }
    JSValue r = jsapi_new_uint8array(ctx, (const uint8_t *)s, n);
    JS_FreeCString(ctx, s);
    return r;
}

/* encodeInto(source, destination): whole code points only; `read` counts
 * UTF-16 code units of the source. */
static JSValue encoder_encode_into(JSContext *ctx, JSValueConst this_val, int argc,
                                   JSValueConst *argv)
{
    if (!is_encoder(ctx, this_val))
        return JS_EXCEPTION;
    if (argc < 2 || JS_GetClassID(argv[1]) != QJS_CLASS_UINT8_ARRAY)
        return JS_ThrowTypeError(ctx, "encodeInto: the destination must be a Uint8Array");
    const uint8_t *dst;
    size_t cap;
    if (jsapi_buffer_source(ctx, argv[1], &dst, &cap) < 0)
        return JS_EXCEPTION;
    size_t n;
    const char *s = jsapi_to_usv(ctx, argv[0], &n);
    if (!s)
        return JS_EXCEPTION;
    /* jsapi_to_usv may have run user code (toString); read the view again
     * (detached by then: no room). */
    int rc = jsapi_buffer_source(ctx, argv[1], &dst, &cap);
    if (rc < 0) {
        JS_FreeCString(ctx, s);
        return JS_EXCEPTION;
    }
    if (rc == 0) /* never so for a Uint8Array; but never the stale pointer either */
        cap = 0;
    size_t written = 0, read = 0;
    while (written < n) {
        unsigned char c = (unsigned char)s[written];
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (written + len > cap)
            break;
        written += len;
        read += len == 4 ? 2 : 1;
    }
    if (written)
        memcpy((uint8_t *)dst, s, written);
    JS_FreeCString(ctx, s);
    JSValue r = JS_NewObject(ctx);
    if (JS_IsException(r))
        return r;
    JS_SetPropertyStr(ctx, r, "read", JS_NewInt64(ctx, (int64_t)read));
    JS_SetPropertyStr(ctx, r, "written", JS_NewInt64(ctx, (int64_t)written));
    return r;
}

static const JSCFunctionListEntry encoder_funcs[] = {
    JS_CGETSET_DEF("encoding", encoder_encoding, NULL),
    JS_CFUNC_DEF("encode", 0, encoder_encode),
    JS_CFUNC_DEF("encodeInto", 2, encoder_encode_into),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "TextEncoder", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_encoder_create(JSContext *ctx)
{
    return jsapi_make_class(ctx, jsapi_encoder_class_id, "TextEncoder", encoder_ctor, 0,
                            encoder_funcs, sizeof encoder_funcs / sizeof encoder_funcs[0], NULL, 0);
}

/* --- TextDecoder --- */

enum { ENC_UTF8, ENC_UTF16LE, ENC_1252 };
static const char *const enc_name[] = { "utf-8", "utf-16le", "windows-1252" };

static const struct {
    const char *label;
    int enc;
} labels[] = {
    { "unicode-1-1-utf-8", ENC_UTF8 }, { "unicode11utf8", ENC_UTF8 }, { "unicode20utf8", ENC_UTF8 },
    { "utf-8", ENC_UTF8 }, { "utf8", ENC_UTF8 }, { "x-unicode20utf8", ENC_UTF8 },
    { "csunicode", ENC_UTF16LE }, { "iso-10646-ucs-2", ENC_UTF16LE }, { "ucs-2", ENC_UTF16LE },
    { "unicode", ENC_UTF16LE }, { "unicodefeff", ENC_UTF16LE }, { "utf-16", ENC_UTF16LE },
    { "utf-16le", ENC_UTF16LE },
    { "ansi_x3.4-1968", ENC_1252 }, { "ascii", ENC_1252 }, { "cp1252", ENC_1252 },
    { "cp819", ENC_1252 }, { "csisolatin1", ENC_1252 }, { "ibm819", ENC_1252 },
    { "iso-8859-1", ENC_1252 }, { "iso-ir-100", ENC_1252 }, { "iso8859-1", ENC_1252 },
    { "iso88591", ENC_1252 }, { "iso_8859-1", ENC_1252 }, { "iso_8859-1:1987", ENC_1252 },
    { "l1", ENC_1252 }, { "latin1", ENC_1252 }, { "us-ascii", ENC_1252 },
    { "windows-1252", ENC_1252 }, { "x-cp1252", ENC_1252 },
};

/* windows-1252's bytes 0x80..0x9F; the rest map to the same code point. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

typedef struct decoder {
    int enc;
    bool fatal, ignore_bom, bom_seen, do_not_flush;
    /* utf-8 */
    uint32_t cp;
    int needed, seen;
    uint8_t lower, upper;
    /* utf-16le: -1 when none */
    int lead_byte, lead_surrogate;
} decoder;

static void decoder_finalizer(JSRuntime *rt, JSValue val)
{
    js_free_rt(rt, JS_GetOpaque(val, jsapi_decoder_class_id));
}

const JSClassDef jsapi_decoder_class = { "TextDecoder", .finalizer = decoder_finalizer };

static void decoder_reset(decoder *d)
{
    d->bom_seen = false;
    d->cp = 0, d->needed = d->seen = 0, d->lower = 0x80, d->upper = 0xBF;
    d->lead_byte = d->lead_surrogate = -1;
}

static int get_bool_opt(JSContext *ctx, JSValueConst opts, const char *name, bool *out)
{
    *out = false;
    if (JS_IsUndefined(opts) || JS_IsNull(opts))
        return 0;
    if (!JS_IsObject(opts)) {
        JS_ThrowTypeError(ctx, "options must be an object");
        return -1;
    }
    JSValue v = JS_GetPropertyStr(ctx, opts, name);
    if (JS_IsException(v))
        return -1;
    *out = JS_ToBool(ctx, v);
    JS_FreeValue(ctx, v);
    return 0;
}

static JSValue decoder_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    int enc = ENC_UTF8;
    if (argc > 0 && !JS_IsUndefined(argv[0])) {
        size_t n;
        const char *s = JS_ToCStringLen(ctx, &n, argv[0]);
        if (!s)
            return JS_EXCEPTION;
        const char *p = s;
        while (n && strchr("\t\n\f\r ", *p))
            p++, n--;
        while (n && strchr("\t\n\f\r ", p[n - 1]))
            n--;
        enc = -1;
        for (size_t k = 0; k < sizeof labels / sizeof labels[0] && enc < 0; k++)
            if (strlen(labels[k].label) == n && !strncasecmp(labels[k].label, p, n))
                enc = labels[k].enc;
        if (enc < 0) {
            JS_ThrowRangeError(ctx, "TextDecoder: unsupported encoding '%.100s'", s);
            JS_FreeCString(ctx, s);
            return JS_EXCEPTION;
        }
        JS_FreeCString(ctx, s);
    }
    decoder d = { .enc = enc };
    JSValueConst opts = argc > 1 ? argv[1] : JS_UNDEFINED;
    if (get_bool_opt(ctx, opts, "fatal", &d.fatal) < 0 ||
        get_bool_opt(ctx, opts, "ignoreBOM", &d.ignore_bom) < 0)
        return JS_EXCEPTION;
    decoder_reset(&d);
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_decoder_class_id);
    decoder *p = JS_IsException(obj) ? NULL : js_malloc(ctx, sizeof *p);
    if (!p) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    *p = d;
    JS_SetOpaque(obj, p);
    return obj;
}

/* An error of the decoder: U+FFFD, or -2 when fatal. */
static int decode_error(decoder *d, buf *out)
{
    return d->fatal ? -2 : put_cp(out, 0xFFFD);
}

/* Emits a decoded code point, dropping a leading BOM unless told not to. */
static int emit(decoder *d, buf *out, uint32_t c)
{
    if (!d->bom_seen && d->enc != ENC_1252 && !d->ignore_bom) {
        d->bom_seen = true;
        if (c == 0xFEFF)
            return 0;
    }
    d->bom_seen = true;
    return put_cp(out, c);
}

static int utf8_byte(decoder *d, buf *out, uint8_t b)
{
    for (;;) {
        if (d->needed == 0) {
            if (b <= 0x7F)
                return emit(d, out, b);
            if (b >= 0xC2 && b <= 0xDF) {
                d->needed = 1, d->cp = b & 0x1F;
            } else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0)
                    d->lower = 0xA0;
                if (b == 0xED)
                    d->upper = 0x9F;
                d->needed = 2, d->cp = b & 0xF;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0)
                    d->lower = 0x90;
                if (b == 0xF4)
                    d->upper = 0x8F;
                d->needed = 3, d->cp = b & 0x7;
            } else {
                return decode_error(d, out);
            }
            return 0;
        }
        if (b < d->lower || b > d->upper) {
            /* The byte starts over after the error ("prepend to stream"). */
            d->cp = 0, d->needed = d->seen = 0, d->lower = 0x80, d->upper = 0xBF;
            int rc = decode_error(d, out);
            if (rc < 0)
                return rc;
            continue;
        }
        d->lower = 0x80, d->upper = 0xBF;
        d->cp = d->cp << 6 | (b & 0x3F);
        if (++d->seen < d->needed)
            return 0;
        uint32_t c = d->cp;
        d->cp = 0, d->needed = d->seen = 0;
        return emit(d, out, c);
    }
}

static int utf16_byte(decoder *d, buf *out, uint8_t b)
{
    if (d->lead_byte < 0) {
        d->lead_byte = b;
        return 0;
    }
    uint32_t cu = (uint32_t)b << 8 | (uint32_t)d->lead_byte;
    d->lead_byte = -1;
    if (d->lead_surrogate >= 0) {
        uint32_t lead = (uint32_t)d->lead_surrogate;
        d->lead_surrogate = -1;
        if (cu >= 0xDC00 && cu <= 0xDFFF)
            return emit(d, out, 0x10000 + ((lead - 0xD800) << 10) + (cu - 0xDC00));
        int rc = decode_error(d, out);
        if (rc < 0)
            return rc;
        /* cu itself is processed afresh below */
    }
    if (cu >= 0xD800 && cu <= 0xDBFF) {
        d->lead_surrogate = (int)cu;
        return 0;
    }
    if (cu >= 0xDC00 && cu <= 0xDFFF)
        return decode_error(d, out);
    return emit(d, out, cu);
}

static int decode_bytes(decoder *d, buf *out, const uint8_t *p, size_t n, bool flush)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (d->enc == ENC_UTF8)
            rc = utf8_byte(d, out, p[i]);
        else if (d->enc == ENC_UTF16LE)
            rc = utf16_byte(d, out, p[i]);
        else
            rc = put_cp(out, p[i] >= 0x80 && p[i] < 0xA0 ? cp1252_high[p[i] - 0x80] : p[i]);
    }
    if (rc == 0 && flush) {
        bool pending = d->enc == ENC_UTF8 ? d->needed != 0
                                           : d->lead_byte >= 0 || d->lead_surrogate >= 0;
        if (pending) {
            decoder_reset(d);
            rc = decode_error(d, out);
        }
    }
    return rc;
}

static JSValue decoder_decode(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    decoder *d = JS_GetOpaque2(ctx, this_val, jsapi_decoder_class_id);
    if (!d)
        return JS_EXCEPTION;
    bool stream;
    if (get_bool_opt(ctx, argc > 1 ? argv[1] : JS_UNDEFINED, "stream", &stream) < 0)
        return JS_EXCEPTION;
    const uint8_t *p = (const uint8_t *)"";
    size_t n = 0;
    if (argc > 0 && !JS_IsUndefined(argv[0])) {
        int r = jsapi_buffer_source(ctx, argv[0], &p, &n);
        if (r < 0)
            return JS_EXCEPTION;
        if (r == 0)
            return JS_ThrowTypeError(ctx, "TextDecoder.decode: input must be an ArrayBuffer or a view");
    }
    if (jsapi_charge_work(ctx, n) < 0)
        return JS_EXCEPTION;
    if (!d->do_not_flush)
        decoder_reset(d);
    d->do_not_flush = stream;
    buf out;
    buf_init(&out, (n + 4) * 3);
    int rc = buf_append(&out, "", 0);
    if (rc == 0)
        rc = decode_bytes(d, &out, p, n, !stream);
    JSValue r;
    if (rc == -2) {
        decoder_reset(d);
        d->do_not_flush = false;
        r = JS_ThrowTypeError(ctx, "The encoded data was not valid %s", enc_name[d->enc]);
    } else if (rc < 0) {
        r = JS_ThrowOutOfMemory(ctx);
    } else {
        r = JS_NewStringLen(ctx, out.data, out.len);
    }
    buf_free(&out);
    return r;
}

enum { D_ENCODING, D_FATAL, D_IGNORE_BOM };

static JSValue decoder_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    decoder *d = JS_GetOpaque2(ctx, this_val, jsapi_decoder_class_id);
    if (!d)
        return JS_EXCEPTION;
    switch (magic) {
    case D_ENCODING: return JS_NewString(ctx, enc_name[d->enc]);
    case D_FATAL: return JS_NewBool(ctx, d->fatal);
    default: return JS_NewBool(ctx, d->ignore_bom);
    }
}

static const JSCFunctionListEntry decoder_funcs[] = {
    JS_CGETSET_MAGIC_DEF("encoding", decoder_get, NULL, D_ENCODING),
    JS_CGETSET_MAGIC_DEF("fatal", decoder_get, NULL, D_FATAL),
    JS_CGETSET_MAGIC_DEF("ignoreBOM", decoder_get, NULL, D_IGNORE_BOM),
    JS_CFUNC_DEF("decode", 0, decoder_decode),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "TextDecoder", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_decoder_create(JSContext *ctx)
{
    return jsapi_make_class(ctx, jsapi_decoder_class_id, "TextDecoder", decoder_ctor, 0,
                            decoder_funcs, sizeof decoder_funcs / sizeof decoder_funcs[0], NULL, 0);
}

/* --- atob / btoa --- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

JSValue jsapi_atob(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "atob: 1 argument required");
    size_t n;
    const char *s = JS_ToCStringLen(ctx, &n, argv[0]);
    if (!s)
        return JS_EXCEPTION;
    if (jsapi_charge_work(ctx, n) < 0) {
        JS_FreeCString(ctx, s);
        return JS_EXCEPTION;
    }
    /* Forgiving-base64 decode: drop ASCII whitespace, then up to two '='
     * when the length is a multiple of 4. */
    char *in = js_malloc(ctx, n + 1);
    buf out;
    /* At most 3 bytes per 4 characters, each byte up to 2 UTF-8 bytes: a
     * bound of n alone failed as "out of memory" for any binary string
     * past ~100 bytes (an RS256 signature, say). */
    buf_init(&out, n / 2 * 3 + 16);
    JSValue r = JS_EXCEPTION;
    if (!in)
        goto done;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("\t\n\f\r ", s[i]) || !s[i])
            in[m++] = s[i];
    if (m % 4 == 0 && m && in[m - 1] == '=') {
        m--;
        if (in[m - 1] == '=')
            m--;
    }
    bool ok = m % 4 != 1;
    for (size_t i = 0; ok && i < m; i++)
        ok = b64_value((unsigned char)in[i]) >= 0;
    if (!ok) {
        r = jsapi_throw_dom(ctx, "InvalidCharacterError", "atob: the string is not correctly encoded");
        goto done;
    }
    /* The result is a "binary string": one code point per byte, which is
     * two UTF-8 bytes at and above 0x80. */
    uint32_t acc = 0;
    int bits = 0;
    int rc = buf_append(&out, "", 0);
    for (size_t i = 0; i < m && rc == 0; i++) {
        acc = acc << 6 | (uint32_t)b64_value((unsigned char)in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            rc = put_cp(&out, (acc >> bits) & 0xFF);
        }
    }
    r = rc < 0 ? JS_ThrowOutOfMemory(ctx) : JS_NewStringLen(ctx, out.data, out.len);
done:
    js_free(ctx, in);
    buf_free(&out);
    JS_FreeCString(ctx, s);
    return r;
}

JSValue jsapi_btoa(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "btoa: 1 argument required");
    size_t n;
    const char *s = JS_ToCStringLen(ctx, &n, argv[0]);
    if (!s)
        return JS_EXCEPTION;
    if (jsapi_charge_work(ctx, n) < 0) {
        JS_FreeCString(ctx, s);
        return JS_EXCEPTION;
    }
    /* Code units above U+00FF are refused; the rest are the bytes. */
    uint8_t *bytes = js_malloc(ctx, n + 1);
    size_t m = 0;
    bool ok = bytes != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            bytes[m++] = c;
        } else if ((c == 0xC2 || c == 0xC3) && i + 1 < n) {
            bytes[m++] = (uint8_t)((c & 0x3) << 6 | ((unsigned char)s[++i] & 0x3F));
        } else {
            ok = false;
        }
    }
    JS_FreeCString(ctx, s);
    if (!bytes)
        return JS_EXCEPTION;
    if (!ok) {
        js_free(ctx, bytes);
        return jsapi_throw_dom(ctx, "InvalidCharacterError",
                               "btoa: the string contains characters outside of the Latin1 range");
    }
    char *out = js_malloc(ctx, (m + 2) / 3 * 4 + 1);
    if (!out) {
        js_free(ctx, bytes);
        return JS_EXCEPTION;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16 | (i + 1 < m ? (uint32_t)bytes[i + 1] << 8 : 0) |
                     (i + 2 < m ? bytes[i + 2] : 0);
        out[k++] = b64[v >> 18 & 63];
        out[k++] = b64[v >> 12 & 63];
        out[k++] = i + 1 < m ? b64[v >> 6 & 63] : '=';
        out[k++] = i + 2 < m ? b64[v & 63] : '=';
    }
    JSValue r = JS_NewStringLen(ctx, out, k);
    js_free(ctx, out);
    js_free(ctx, bytes);
    return r;
}
