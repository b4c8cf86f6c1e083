/* CryptoKey (W3C Web Cryptography API) and the key formats: the class
 * (type, extractable, algorithm, usages), importKey/exportKey in raw, jwk,
 * spki and pkcs8 as each algorithm allows, and generateKey. Secret keys
 * are bytes in the isolate's heap (zeroed when freed); asymmetric keys
 * are OpenSSL EVP_PKEYs. */
#include "js/api/crypto_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

/* --- the class --- */

void crypto_key_free(JSRuntime *rt, crypto_key *k)
{
    if (!k)
        return;
    crypto_bytes_free(rt, &k->secret);
    EVP_PKEY_free(k->pkey);
    JS_FreeValueRT(rt, k->algorithm);
    JS_FreeValueRT(rt, k->usages_obj);
    js_free_rt(rt, k);
}

static void key_finalizer(JSRuntime *rt, JSValue val)
{
    crypto_key_free(rt, JS_GetOpaque(val, jsapi_cryptokey_class_id));
}

static void key_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    crypto_key *k = JS_GetOpaque(val, jsapi_cryptokey_class_id);
    if (k) {
        JS_MarkValue(rt, k->algorithm, mark);
        JS_MarkValue(rt, k->usages_obj, mark);
    }
}

const JSClassDef jsapi_cryptokey_class = { "CryptoKey", .finalizer = key_finalizer,
                                           .gc_mark = key_mark };

crypto_key *crypto_key_new(JSContext *ctx, crypto_alg alg, crypto_key_type type)
{
    crypto_key *k = js_mallocz(ctx, sizeof *k);
    if (!k)
        return NULL;
    k->alg = alg;
    k->type = type;
    k->algorithm = k->usages_obj = JS_UNDEFINED;
    return k;
}

crypto_key *crypto_key_of(JSContext *ctx, JSValueConst v)
{
    crypto_key *k = JS_GetOpaque(v, jsapi_cryptokey_class_id);
    if (!k)
        JS_ThrowTypeError(ctx, "not a CryptoKey");
    return k;
}

JSValue crypto_key_wrap(JSContext *ctx, crypto_key *k)
{
    JSValueConst ctor = jsapi_lazy(ctx, JSAPI_CRYPTOKEY);
    JSValue obj = JS_IsException(ctor) ? JS_EXCEPTION
                                       : JS_NewObjectClass(ctx, (int)jsapi_cryptokey_class_id);
    if (JS_IsException(obj)) {
        crypto_key_free(JS_GetRuntime(ctx), k);
        return obj;
    }
    JS_SetOpaque(obj, k);
    return obj;
}

static const char *const usage_names[] = { "encrypt", "decrypt", "sign", "verify",
                                           "deriveKey", "deriveBits", "wrapKey", "unwrapKey" };
#define NUSAGES (sizeof usage_names / sizeof usage_names[0])

int crypto_usages(JSContext *ctx, JSValueConst v, unsigned *out)
{
    *out = 0;
    int64_t n;
    if (!JS_IsObject(v) || JS_IsArray(ctx, v) <= 0) {
        JS_ThrowTypeError(ctx, "key usages must be an array");
        return -1;
    }
    if (jsapi_get_length(ctx, v, &n) < 0)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        JSValue u = JS_GetPropertyUint32(ctx, v, (uint32_t)i);
        const char *s = JS_IsException(u) ? NULL : JS_ToCString(ctx, u);
        JS_FreeValue(ctx, u);
        if (!s)
            return -1;
        unsigned bit = 0;
        for (size_t k = 0; k < NUSAGES; k++)
            if (!strcmp(s, usage_names[k]))
                bit = 1u << k;
        if (!bit)
            JS_ThrowTypeError(ctx, "'%.40s' is not a key usage", s);
        JS_FreeCString(ctx, s);
        if (!bit)
            return -1;
        *out |= bit;
    }
    return 0;
}

static JSValue usages_array(JSContext *ctx, unsigned usages)
{
    JSValue arr = JS_NewArray(ctx);
    uint32_t n = 0;
    for (size_t k = 0; k < NUSAGES && !JS_IsException(arr); k++)
        if (usages & (1u << k))
            JS_SetPropertyUint32(ctx, arr, n++, JS_NewString(ctx, usage_names[k]));
    return arr;
}

/* o[name] = v (consumed); -1 when v is an exception. */
static int set_val(JSContext *ctx, JSValueConst o, const char *name, JSValue v)
{
    return JS_IsException(v) ? -1 : JS_SetPropertyStr(ctx, o, name, v);
}

static int set_str(JSContext *ctx, JSValueConst o, const char *name, const char *s)
{
    return set_val(ctx, o, name, JS_NewString(ctx, s));
}

static const char *curve_name(crypto_curve c) { return c == CURVE_P384 ? "P-384" : "P-256"; }
static const char *curve_group(crypto_curve c) { return c == CURVE_P384 ? "secp384r1" : "prime256v1"; }
static size_t curve_len(crypto_curve c) { return c == CURVE_P384 ? 48 : 32; }

static JSValue hash_object(JSContext *ctx, crypto_alg h)
{
    JSValue o = JS_NewObject(ctx);
    if (!JS_IsException(o))
        set_val(ctx, o, "name", JS_NewString(ctx, crypto_alg_name(h)));
    return o;
}

/* The big-endian bytes of an RSA key's public exponent, no leading zeros. */
static JSValue rsa_exponent(JSContext *ctx, EVP_PKEY *pkey)
{
    BIGNUM *e = NULL;
    uint8_t b[16];
    int n = 0;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_num_bytes(e) <= 16)
        n = BN_bn2bin(e, b);
    BN_free(e);
    return crypto_uint8_array(ctx, b, (size_t)n);
}

static JSValue algorithm_object(JSContext *ctx, const crypto_key *k)
{
    JSValue o = JS_NewObject(ctx);
    if (JS_IsException(o))
        return o;
    set_val(ctx, o, "name",
                      JS_NewString(ctx, k->node ? "NODE-ED25519" : crypto_alg_name(k->alg)));
    switch (k->alg) {
    case ALG_HMAC:
        set_val(ctx, o, "length", JS_NewInt64(ctx, (int64_t)k->hmac_bits));
        set_val(ctx, o, "hash", hash_object(ctx, k->hash));
        break;
    case ALG_AES_GCM:
    case ALG_AES_CBC:
    case ALG_AES_CTR:
    case ALG_AES_KW:
        set_val(ctx, o, "length", JS_NewInt64(ctx, (int64_t)k->secret.n * 8));
        break;
    case ALG_ECDSA:
    case ALG_ECDH:
        set_val(ctx, o, "namedCurve", JS_NewString(ctx, curve_name(k->curve)));
        break;
    case ALG_ED25519:
        if (k->node)
            set_val(ctx, o, "namedCurve", JS_NewString(ctx, "NODE-ED25519"));
        break;
    case ALG_RSASSA:
    case ALG_RSA_PSS:
    case ALG_RSA_OAEP:
        set_val(ctx, o, "modulusLength", JS_NewInt32(ctx, EVP_PKEY_get_bits(k->pkey)));
        set_val(ctx, o, "publicExponent", rsa_exponent(ctx, k->pkey));
        set_val(ctx, o, "hash", hash_object(ctx, k->hash));
        break;
    default:
        break;
    }
    return o;
}

enum { KEY_TYPE, KEY_EXTRACTABLE, KEY_ALGORITHM, KEY_USAGES };

static JSValue key_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    crypto_key *k = crypto_key_of(ctx, this_val);
    if (!k)
        return JS_EXCEPTION;
    switch (magic) {
    case KEY_TYPE:
        return JS_NewString(ctx, k->type == KEY_SECRET ? "secret"
                                 : k->type == KEY_PUBLIC ? "public" : "private");
    case KEY_EXTRACTABLE:
        return JS_NewBool(ctx, k->extractable);
    case KEY_ALGORITHM:
        /* The same object every time, as the spec caches it. */
        if (JS_IsUndefined(k->algorithm)) {
            JSValue v = algorithm_object(ctx, k);
            if (JS_IsException(v) || JS_HasException(ctx)) {
                JS_FreeValue(ctx, v);
                return JS_EXCEPTION;
            }
            k->algorithm = v;
        }
        return JS_DupValue(ctx, k->algorithm);
    default:
        if (JS_IsUndefined(k->usages_obj)) {
            JSValue v = usages_array(ctx, k->usages);
            if (JS_IsException(v) || JS_HasException(ctx)) {
                JS_FreeValue(ctx, v);
                return JS_EXCEPTION;
            }
            k->usages_obj = v;
        }
        return JS_DupValue(ctx, k->usages_obj);
    }
}

static JSValue key_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    return JS_ThrowTypeError(ctx, "Illegal constructor: CryptoKeys come from crypto.subtle");
}

static const JSCFunctionListEntry key_funcs[] = {
    JS_CGETSET_MAGIC_DEF("type", key_get, NULL, KEY_TYPE),
    JS_CGETSET_MAGIC_DEF("extractable", key_get, NULL, KEY_EXTRACTABLE),
    JS_CGETSET_MAGIC_DEF("algorithm", key_get, NULL, KEY_ALGORITHM),
    JS_CGETSET_MAGIC_DEF("usages", key_get, NULL, KEY_USAGES),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "CryptoKey", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_cryptokey_create(JSContext *ctx)
{
    /* Registered with the runtime here, not with the other classes: each
     * class costs every runtime memory, and most workers hold no keys. */
    JSRuntime *rt = JS_GetRuntime(ctx);
    if (!JS_IsRegisteredClass(rt, jsapi_cryptokey_class_id) &&
        JS_NewClass(rt, jsapi_cryptokey_class_id, &jsapi_cryptokey_class) < 0)
        return JS_EXCEPTION;
    return jsapi_make_class(ctx, jsapi_cryptokey_class_id, "CryptoKey", key_ctor, 0, key_funcs,
                            sizeof key_funcs / sizeof key_funcs[0], NULL, 0);
}

/* --- base64url (JWK) --- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static JSValue b64url_string(JSContext *ctx, const uint8_t *p, size_t n)
{
    size_t cap = (n + 2) / 3 * 4 + 1;
    char *s = js_malloc(ctx, cap);
    if (!s)
        return JS_EXCEPTION;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        s[o++] = b64url[v >> 18 & 63];
        s[o++] = b64url[v >> 12 & 63];
        if (i + 1 < n)
            s[o++] = b64url[v >> 6 & 63];
        if (i + 2 < n)
            s[o++] = b64url[v & 63];
    }
    JSValue r = JS_NewStringLen(ctx, s, o);
    OPENSSL_cleanse(s, cap);
    js_free(ctx, s);
    return r;
}

/* Decodes base64url (padding tolerated); -1 on a bad character. */
static int b64url_decode(JSContext *ctx, const char *s, size_t len, cbytes *out)
{
    while (len && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    out->p = js_malloc(ctx, len * 3 / 4 + 1);
    out->n = 0;
    if (!out->p)
        return -2;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        const char *c = memchr(b64url, s[i], 64);
        if (!c || !s[i]) {
            crypto_bytes_free(JS_GetRuntime(ctx), out);
            return -1;
        }
        acc = acc << 6 | (uint32_t)(c - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->p[out->n++] = (uint8_t)(acc >> bits);
        }
    }
    return 0;
}

/* --- JWK members --- */

/* A string member of the JWK (js_malloc'd copy in *out, NULL when absent);
 * -1 with an exception (DataError when it is not a string). */
static int jwk_str(JSContext *ctx, JSValueConst jwk, const char *name, char **out, size_t *len)
{
    *out = NULL;
    JSValue v = JS_GetPropertyStr(ctx, jwk, name);
    if (JS_IsException(v))
        return -1;
    if (JS_IsUndefined(v))
        return 0;
    if (!JS_IsString(v)) {
        JS_FreeValue(ctx, v);
        crypto_throw(ctx, CRYPTO_DATA, "JWK member '%s' must be a string", name);
        return -1;
    }
    size_t n;
    const char *s = JS_ToCStringLen(ctx, &n, v);
    JS_FreeValue(ctx, v);
    if (!s)
        return -1;
    *out = jsapi_strdup(ctx, s, n);
    JS_FreeCString(ctx, s);
    if (len)
        *len = n;
    return *out ? 0 : -1;
}

/* A base64url member as bytes; `required` makes absence a DataError;
 * `want` (if non-zero) the exact length. 1 when absent. */
static int jwk_bytes(JSContext *ctx, JSValueConst jwk, const char *name, bool required,
                     size_t want, cbytes *out)
{
    out->p = NULL;
    out->n = 0;
    char *s;
    size_t n;
    if (jwk_str(ctx, jwk, name, &s, &n) < 0)
        return -1;
    if (!s) {
        if (required) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK needs member '%s'", name);
            return -1;
        }
        return 1;
    }
    int rc = b64url_decode(ctx, s, n, out);
    OPENSSL_cleanse(s, n);
    js_free(ctx, s);
    if (rc == -2)
        return -1;
    if (rc < 0 || (want && out->n != want)) {
        crypto_bytes_free(JS_GetRuntime(ctx), out);
        crypto_throw(ctx, CRYPTO_DATA, "JWK member '%s' is not valid", name);
        return -1;
    }
    return 0;
}

/* Checks kty, alg, use, ext and key_ops against the import. */
static int jwk_check(JSContext *ctx, JSValueConst jwk, const char *kty, const char *alg,
                     const char *use, bool extractable, unsigned usages)
{
    char *s = NULL;
    int rc = -1;
    if (jwk_str(ctx, jwk, "kty", &s, NULL) < 0)
        return -1;
    if (!s || strcmp(s, kty)) {
        crypto_throw(ctx, CRYPTO_DATA, "the JWK's kty must be \"%s\"", kty);
        goto out;
    }
    js_free(ctx, s);
    if (jwk_str(ctx, jwk, "alg", &s, NULL) < 0)
        return -1;
    if (s && alg && strcmp(s, alg)) {
        crypto_throw(ctx, CRYPTO_DATA, "the JWK's alg \"%.20s\" does not match \"%s\"", s, alg);
        goto out;
    }
    js_free(ctx, s);
    if (jwk_str(ctx, jwk, "use", &s, NULL) < 0)
        return -1;
    if (s && usages && strcmp(s, use)) {
        crypto_throw(ctx, CRYPTO_DATA, "the JWK's use must be \"%s\"", use);
        goto out;
    }
    js_free(ctx, s);
    s = NULL;
    JSValue v = JS_GetPropertyStr(ctx, jwk, "ext");
    if (JS_IsException(v))
        return -1;
    bool ext_false = JS_IsBool(v) && !JS_ToBool(ctx, v);
    JS_FreeValue(ctx, v);
    if (ext_false && extractable) {
        crypto_throw(ctx, CRYPTO_DATA, "the JWK is not extractable (ext: false)");
        goto out;
    }
    v = JS_GetPropertyStr(ctx, jwk, "key_ops");
    if (JS_IsException(v))
        return -1;
    if (!JS_IsUndefined(v)) {
        unsigned ops;
        int r = crypto_usages(ctx, v, &ops);
        JS_FreeValue(ctx, v);
        if (r < 0)
            return -1;
        if ((usages & ops) != usages) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK's key_ops do not allow these usages");
            goto out;
        }
    }
    rc = 0;
out:
    js_free(ctx, s);
    return rc;
}

static const char *jwk_hash_suffix(crypto_alg h)
{
    switch (h) {
    case ALG_SHA1: return "1";
    case ALG_SHA256: return "256";
    case ALG_SHA384: return "384";
    default: return "512";
    }
}

/* JWK "alg" of an RSA key (RFC 7518): RS256 for RSASSA-PKCS1-v1_5,
 * PS256 for RSA-PSS, RSA-OAEP (SHA-1) or RSA-OAEP-256 for RSA-OAEP. */
static void rsa_jwk_alg(char *buf, size_t n, crypto_alg a, crypto_alg hash)
{
    if (a == ALG_RSA_OAEP && hash == ALG_SHA1)
        snprintf(buf, n, "RSA-OAEP");
    else if (a == ALG_RSA_OAEP)
        snprintf(buf, n, "RSA-OAEP-%s", jwk_hash_suffix(hash));
    else
        snprintf(buf, n, "%s%s", a == ALG_RSA_PSS ? "PS" : "RS", jwk_hash_suffix(hash));
}

/* JWK "alg" of an AES key: A128GCM, A256CBC, A192CTR, A128KW … */
static void aes_jwk_alg(char *buf, size_t n, crypto_alg a, size_t key_len)
{
    snprintf(buf, n, "A%zu%s", key_len * 8,
             a == ALG_AES_GCM ? "GCM" : a == ALG_AES_CBC ? "CBC" : a == ALG_AES_CTR ? "CTR" : "KW");
}

/* --- algorithm parameters for import and generate --- */

typedef struct key_params {
    crypto_alg alg;
    bool node;
    crypto_alg hash;       /* HMAC, RSASSA, RSA-PSS */
    crypto_curve curve;    /* ECDSA */
    uint32_t length;       /* HMAC (0: absent), AES */
} key_params;

static int read_u32(JSContext *ctx, JSValueConst obj, const char *name, uint32_t *out, bool *present)
{
    *present = false;
    JSValue v = JS_IsObject(obj) ? JS_GetPropertyStr(ctx, obj, name) : JS_UNDEFINED;
    if (JS_IsException(v))
        return -1;
    if (JS_IsUndefined(v))
        return 0;
    double d;
    int rc = JS_ToFloat64(ctx, &d, v);
    JS_FreeValue(ctx, v);
    if (rc < 0)
        return -1;
    if (!(d >= 0 && d <= 4294967295.0)) {
        JS_ThrowTypeError(ctx, "'%s' is out of range", name);
        return -1;
    }
    *out = (uint32_t)d;
    *present = true;
    return 0;
}

static int read_params(JSContext *ctx, JSValueConst alg, key_params *p, bool generate)
{
    memset(p, 0, sizeof *p);
    p->alg = crypto_alg_of(ctx, alg, &p->node);
    if (p->alg == ALG_NONE)
        return -1;
    bool present;
    switch (p->alg) {
    case ALG_HMAC:
    case ALG_RSASSA:
    case ALG_RSA_PSS:
    case ALG_RSA_OAEP:
        p->hash = crypto_hash_of(ctx, alg, "hash");
        if (p->hash == ALG_NONE)
            return -1;
        if (p->alg == ALG_HMAC && read_u32(ctx, alg, "length", &p->length, &present) < 0)
            return -1;
        if (p->alg == ALG_HMAC && present && p->length == 0) {
            crypto_throw(ctx, generate ? CRYPTO_OPERATION : CRYPTO_DATA, "HMAC length must not be 0");
            return -1;
        }
        return 0;
    case ALG_AES_GCM:
    case ALG_AES_CBC:
    case ALG_AES_CTR:
    case ALG_AES_KW:
        if (!generate)
            return 0;
        if (read_u32(ctx, alg, "length", &p->length, &present) < 0)
            return -1;
        if (!present) {
            JS_ThrowTypeError(ctx, "the algorithm needs a 'length' member");
            return -1;
        }
        if (p->length != 128 && p->length != 192 && p->length != 256) {
            crypto_throw(ctx, CRYPTO_OPERATION, "AES key length must be 128, 192 or 256 bits");
            return -1;
        }
        return 0;
    case ALG_ECDSA:
    case ALG_ECDH: {
        JSValue v = JS_IsObject(alg) ? JS_GetPropertyStr(ctx, alg, "namedCurve") : JS_UNDEFINED;
        if (JS_IsException(v))
            return -1;
        if (JS_IsUndefined(v)) {
            JS_ThrowTypeError(ctx, "the algorithm needs a 'namedCurve' member");
            return -1;
        }
        const char *s = JS_ToCString(ctx, v);
        JS_FreeValue(ctx, v);
        if (!s)
            return -1;
        p->curve = !strcmp(s, "P-256") ? CURVE_P256 : !strcmp(s, "P-384") ? CURVE_P384 : CURVE_NONE;
        if (!p->curve)
            crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "curve %.20s is not supported", s);
        JS_FreeCString(ctx, s);
        return p->curve ? 0 : -1;
    }
    default:
        return 0;
    }
}

/* The usages an algorithm allows for a key type. */
static unsigned allowed_usages(crypto_alg a, crypto_key_type t)
{
    switch (a) {
    case ALG_HMAC: return USE_SIGN | USE_VERIFY;
    case ALG_AES_GCM:
    case ALG_AES_CBC:
    case ALG_AES_CTR: return USE_ENCRYPT | USE_DECRYPT | USE_WRAP | USE_UNWRAP;
    case ALG_AES_KW: return USE_WRAP | USE_UNWRAP;
    case ALG_RSA_OAEP:
        return t == KEY_PUBLIC ? USE_ENCRYPT | USE_WRAP : t == KEY_PRIVATE ? USE_DECRYPT | USE_UNWRAP : 0;
    /* The public half of a key agreement has no usages (WebCrypto). */
    case ALG_ECDH:
    case ALG_X25519: return t == KEY_PRIVATE ? USE_DERIVE_KEY | USE_DERIVE_BITS : 0;
    case ALG_ECDSA:
    case ALG_ED25519:
    case ALG_RSASSA:
    case ALG_RSA_PSS: return t == KEY_PUBLIC ? USE_VERIFY : t == KEY_PRIVATE ? USE_SIGN : 0;
    case ALG_PBKDF2:
    case ALG_HKDF: return USE_DERIVE_KEY | USE_DERIVE_BITS;
    default: return 0;
    }
}

static int check_usages(JSContext *ctx, crypto_alg a, crypto_key_type t, unsigned usages)
{
    if (usages & ~allowed_usages(a, t)) {
        crypto_throw(ctx, CRYPTO_SYNTAX, "usages not allowed for a %s %s key", crypto_alg_name(a),
                     t == KEY_SECRET ? "secret" : t == KEY_PUBLIC ? "public" : "private");
        return -1;
    }
    if (!usages && t != KEY_PUBLIC) {
        crypto_throw(ctx, CRYPTO_SYNTAX, "a %s key needs at least one usage",
                     t == KEY_SECRET ? "secret" : "private");
        return -1;
    }
    return 0;
}

/* Wraps a finished key: usages checked, fields set. Takes k. */
static JSValue finish_key(JSContext *ctx, crypto_key *k, const key_params *p, bool extractable,
                          unsigned usages)
{
    if (check_usages(ctx, k->alg, k->type, usages) < 0) {
        crypto_key_free(JS_GetRuntime(ctx), k);
        return JS_EXCEPTION;
    }
    k->node = p->node;
    k->hash = p->hash;
    k->curve = p->curve;
    k->extractable = extractable;
    k->usages = usages;
    return crypto_key_wrap(ctx, k);
}

/* --- secret keys --- */

static JSValue secret_key(JSContext *ctx, const key_params *p, cbytes *bytes, bool extractable,
                          unsigned usages)
{
    crypto_key *k = NULL;
    if (crypto_alg_is_aes(p->alg)) {
        if (bytes->n != 16 && bytes->n != 24 && bytes->n != 32) {
            crypto_throw(ctx, CRYPTO_DATA, "an AES key is 16, 24 or 32 bytes, not %zu", bytes->n);
            goto fail;
        }
    } else if (p->alg == ALG_HMAC) {
        if (bytes->n == 0) {
            crypto_throw(ctx, CRYPTO_DATA, "an HMAC key must not be empty");
            goto fail;
        }
        if (p->length && (p->length > bytes->n * 8 || p->length <= bytes->n * 8 - 8)) {
            crypto_throw(ctx, CRYPTO_DATA, "HMAC length %u does not match the key", p->length);
            goto fail;
        }
    } else if (p->alg == ALG_PBKDF2 || p->alg == ALG_HKDF) {
        if (extractable) {
            crypto_throw(ctx, CRYPTO_SYNTAX, "%s keys cannot be extractable", crypto_alg_name(p->alg));
            goto fail;
        }
    }
    if (bytes->n > INT_MAX) {
        crypto_throw(ctx, CRYPTO_DATA, "the key is too large");
        goto fail;
    }
    k = crypto_key_new(ctx, p->alg, KEY_SECRET);
    if (!k)
        goto fail;
    k->secret = *bytes;
    bytes->p = NULL;
    bytes->n = 0;
    k->hmac_bits = p->length ? p->length : k->secret.n * 8;
    return finish_key(ctx, k, p, extractable, usages);
fail:
    crypto_bytes_free(JS_GetRuntime(ctx), bytes);
    return JS_EXCEPTION;
}

JSValue crypto_import_secret(JSContext *ctx, cbytes *bytes, JSValueConst alg, bool extractable,
                             unsigned usages)
{
    key_params p;
    if (read_params(ctx, alg, &p, false) < 0) {
        crypto_bytes_free(JS_GetRuntime(ctx), bytes);
        return JS_EXCEPTION;
    }
    if (p.alg != ALG_HMAC && !crypto_alg_is_aes(p.alg) && p.alg != ALG_PBKDF2 && p.alg != ALG_HKDF) {
        crypto_bytes_free(JS_GetRuntime(ctx), bytes);
        return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s keys cannot be derived",
                            crypto_alg_name(p.alg));
    }
    return secret_key(ctx, &p, bytes, extractable, usages);
}

int64_t crypto_derived_key_bits(JSContext *ctx, JSValueConst alg)
{
    key_params p;
    bool gen = true;
    bool node;
    crypto_alg a = crypto_alg_of(ctx, alg, &node);
    if (a == ALG_NONE)
        return -1;
    if (a == ALG_HMAC)
        gen = false; /* a missing length is allowed */
    if (a != ALG_HMAC && !crypto_alg_is_aes(a)) {
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "cannot derive a %s key", crypto_alg_name(a));
        return -1;
    }
    if (read_params(ctx, alg, &p, gen) < 0)
        return -1;
    if (a == ALG_HMAC && !p.length)
        return EVP_MD_get_block_size(crypto_md(p.hash)) * 8;
    return p.length;
}

/* --- asymmetric keys from their parts --- */

/* An EVP_PKEY from OSSL parameters (EC or RSA), or NULL. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, bool priv)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !pctx || EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    /* Points off the curve, a bad RSA modulus: DataError. OpenSSL's full
     * check of an RSA private key tests its primes (tens of milliseconds
     * of a tenant's CPU budget); the caller checks n = p * q instead. */
    if (pkey && !(priv && !strcmp(type, "RSA"))) {
        EVP_PKEY_CTX *cctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        int ok = cctx && (priv ? EVP_PKEY_check(cctx) : EVP_PKEY_public_check(cctx)) == 1;
        EVP_PKEY_CTX_free(cctx);
        if (!ok) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    return pkey;
}

static EVP_PKEY *ec_from_point(crypto_curve c, const uint8_t *point, size_t n, const cbytes *d)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn = d ? BN_bin2bn(d->p, (int)d->n, NULL) : NULL;
    EVP_PKEY *pkey = NULL;
    if (bld && (!d || bn) &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve_group(c), 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, n) &&
        (!bn || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn)))
        pkey = pkey_fromdata("EC", bld, d != NULL);
    BN_clear_free(bn);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* True when pkey is of the kind the algorithm needs. */
static bool pkey_matches(EVP_PKEY *pkey, const key_params *p)
{
    switch (p->alg) {
    case ALG_ECDSA:
    case ALG_ECDH: {
        char group[32];
        size_t len;
        return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC &&
               EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                              sizeof group, &len) == 1 &&
               !strcmp(group, curve_group(p->curve));
    }
    case ALG_ED25519: return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519;
    case ALG_X25519: return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_X25519;
    case ALG_RSASSA:
    case ALG_RSA_PSS:
    case ALG_RSA_OAEP: return EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
    default: return false;
    }
}

static JSValue pkey_key(JSContext *ctx, const key_params *p, EVP_PKEY *pkey, crypto_key_type t,
                        bool extractable, unsigned usages)
{
    crypto_key *k = crypto_key_new(ctx, p->alg, t);
    if (!k) {
        EVP_PKEY_free(pkey);
        return JS_EXCEPTION;
    }
    k->pkey = pkey;
    return finish_key(ctx, k, p, extractable, usages);
}

/* --- JWK import --- */

static JSValue import_jwk(JSContext *ctx, const key_params *p, JSValueConst jwk, bool extractable,
                          unsigned usages)
{
    JSValue v = JS_EXCEPTION;
    cbytes a = { 0 }, b = { 0 }, d = { 0 };
    cbytes rsa[5] = { { 0 } };
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *bn[8] = { 0 };
    char alg[16];
    if (!JS_IsObject(jwk)) {
        JS_ThrowTypeError(ctx, "a JWK must be an object");
        return JS_EXCEPTION;
    }
    switch (p->alg) {
    case ALG_HMAC:
    case ALG_AES_GCM:
    case ALG_AES_CBC:
    case ALG_AES_CTR:
    case ALG_AES_KW: {
        if (jwk_bytes(ctx, jwk, "k", true, 0, &a) < 0)
            goto done;
        if (p->alg == ALG_HMAC)
            snprintf(alg, sizeof alg, "HS%s", jwk_hash_suffix(p->hash));
        else
            aes_jwk_alg(alg, sizeof alg, p->alg, a.n);
        if (jwk_check(ctx, jwk, "oct", alg, p->alg == ALG_HMAC ? "sig" : "enc", extractable,
                      usages) < 0)
            goto done;
        return secret_key(ctx, p, &a, extractable, usages);
    }
    case ALG_ECDSA:
    case ALG_ECDH: {
        size_t n = curve_len(p->curve);
        char *crv = NULL;
        if (jwk_check(ctx, jwk, "EC", NULL, p->alg == ALG_ECDH ? "enc" : "sig", extractable,
                      usages) < 0 ||
            jwk_str(ctx, jwk, "crv", &crv, NULL) < 0)
            goto done;
        bool crv_ok = crv && !strcmp(crv, curve_name(p->curve));
        js_free(ctx, crv);
        if (!crv_ok) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK's crv must be \"%s\"", curve_name(p->curve));
            goto done;
        }
        int has_d;
        if (jwk_bytes(ctx, jwk, "x", true, n, &a) < 0 || jwk_bytes(ctx, jwk, "y", true, n, &b) < 0 ||
            (has_d = jwk_bytes(ctx, jwk, "d", false, n, &d)) < 0)
            goto done;
        uint8_t point[1 + 2 * 48];
        point[0] = 4;
        memcpy(point + 1, a.p, n);
        memcpy(point + 1 + n, b.p, n);
        pkey = ec_from_point(p->curve, point, 1 + 2 * n, has_d == 0 ? &d : NULL);
        if (!pkey) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK is not a valid %s key", curve_name(p->curve));
            goto done;
        }
        v = pkey_key(ctx, p, pkey, has_d == 0 ? KEY_PRIVATE : KEY_PUBLIC, extractable, usages);
        pkey = NULL;
        goto done;
    }
    case ALG_ED25519:
    case ALG_X25519: {
        /* RFC 8037: both are OKP keys, told apart by crv. */
        bool x = p->alg == ALG_X25519;
        const char *want = x ? "X25519" : "Ed25519";
        int id = x ? EVP_PKEY_X25519 : EVP_PKEY_ED25519;
        char *crv = NULL;
        if (jwk_check(ctx, jwk, "OKP", NULL, x ? "enc" : "sig", extractable, usages) < 0 ||
            jwk_str(ctx, jwk, "crv", &crv, NULL) < 0)
            goto done;
        bool crv_ok = crv && !strcmp(crv, want);
        js_free(ctx, crv);
        if (!crv_ok) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK's crv must be \"%s\"", want);
            goto done;
        }
        int has_d;
        if (jwk_bytes(ctx, jwk, "x", true, 32, &a) < 0 ||
            (has_d = jwk_bytes(ctx, jwk, "d", false, 32, &d)) < 0)
            goto done;
        if (has_d == 0) {
            pkey = EVP_PKEY_new_raw_private_key(id, NULL, d.p, d.n);
            uint8_t pub[32];
            size_t len = sizeof pub;
            if (!pkey || EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 ||
                CRYPTO_memcmp(pub, a.p, 32) != 0) {
                crypto_throw(ctx, CRYPTO_DATA, "the JWK's d does not match its x");
                goto done;
            }
        } else {
            pkey = EVP_PKEY_new_raw_public_key(id, NULL, a.p, a.n);
        }
        if (!pkey) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK is not a valid %s key", want);
            goto done;
        }
        v = pkey_key(ctx, p, pkey, has_d == 0 ? KEY_PRIVATE : KEY_PUBLIC, extractable, usages);
        pkey = NULL;
        goto done;
    }
    case ALG_RSASSA:
    case ALG_RSA_PSS:
    case ALG_RSA_OAEP: {
        rsa_jwk_alg(alg, sizeof alg, p->alg, p->hash);
        if (jwk_check(ctx, jwk, "RSA", alg, p->alg == ALG_RSA_OAEP ? "enc" : "sig", extractable,
                      usages) < 0)
            goto done;
        int has_d;
        if (jwk_bytes(ctx, jwk, "n", true, 0, &a) < 0 || jwk_bytes(ctx, jwk, "e", true, 0, &b) < 0 ||
            (has_d = jwk_bytes(ctx, jwk, "d", false, 0, &d)) < 0)
            goto done;
        static const char *const crt[5] = { "p", "q", "dp", "dq", "qi" };
        for (int i = 0; has_d == 0 && i < 5; i++)
            if (jwk_bytes(ctx, jwk, crt[i], true, 0, &rsa[i]) < 0)
                goto done;
        static const char *const names[8] = {
            OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
            OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
            OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
            OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
        };
        const cbytes *parts[8] = { &a, &b, &d, &rsa[0], &rsa[1], &rsa[2], &rsa[3], &rsa[4] };
        int nparts = has_d == 0 ? 8 : 2;
        bld = OSSL_PARAM_BLD_new();
        bool ok = bld != NULL && a.n <= 2048 && b.n <= 2048;
        for (int i = 0; ok && i < nparts; i++) {
            ok = parts[i]->n <= 2048 && (bn[i] = BN_bin2bn(parts[i]->p, (int)parts[i]->n, NULL)) &&
                 OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]);
        }
        if (ok && has_d == 0) {
            BN_CTX *bctx = BN_CTX_new();
            BIGNUM *pq = BN_new();
            ok = bctx && pq && BN_mul(pq, bn[3], bn[4], bctx) == 1 && BN_cmp(pq, bn[0]) == 0;
            BN_free(pq);
            BN_CTX_free(bctx);
        }
        pkey = ok ? pkey_fromdata("RSA", bld, has_d == 0) : NULL;
        if (!pkey || EVP_PKEY_get_bits(pkey) < 512) {
            crypto_throw(ctx, CRYPTO_DATA, "the JWK is not a valid RSA key");
            goto done;
        }
        v = pkey_key(ctx, p, pkey, has_d == 0 ? KEY_PRIVATE : KEY_PUBLIC, extractable, usages);
        pkey = NULL;
        goto done;
    }
    default:
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s keys cannot be imported as JWK",
                     crypto_alg_name(p->alg));
        goto done;
    }
done:
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    JSRuntime *rt = JS_GetRuntime(ctx);
    crypto_bytes_free(rt, &a);
    crypto_bytes_free(rt, &b);
    crypto_bytes_free(rt, &d);
    for (int i = 0; i < 5; i++)
        crypto_bytes_free(rt, &rsa[i]);
    return v;
}

/* --- import --- */

JSValue crypto_import_key(JSContext *ctx, const char *format, JSValueConst data, JSValueConst alg,
                          bool extractable, unsigned usages)
{
    key_params p;
    bool raw = !strcmp(format, "raw"), jwk = !strcmp(format, "jwk");
    bool spki = !strcmp(format, "spki"), pkcs8 = !strcmp(format, "pkcs8");
    if (!raw && !jwk && !spki && !pkcs8)
        return JS_ThrowTypeError(ctx, "'%.20s' is not a key format", format);
    if (read_params(ctx, alg, &p, false) < 0)
        return JS_EXCEPTION;
    if (crypto_md(p.alg))
        return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s has no keys", crypto_alg_name(p.alg));
    if (jwk)
        return import_jwk(ctx, &p, data, extractable, usages);
    cbytes b;
    if (crypto_bytes(ctx, data, &b, "keyData") < 0)
        return JS_EXCEPTION;
    bool secret = p.alg == ALG_HMAC || crypto_alg_is_aes(p.alg) || p.alg == ALG_PBKDF2 ||
                  p.alg == ALG_HKDF;
    if (secret) {
        if (!raw) {
            crypto_bytes_free(JS_GetRuntime(ctx), &b);
            return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s keys cannot be imported as %s",
                                crypto_alg_name(p.alg), format);
        }
        return secret_key(ctx, &p, &b, extractable, usages);
    }
    EVP_PKEY *pkey = NULL;
    crypto_key_type t = pkcs8 ? KEY_PRIVATE : KEY_PUBLIC;
    if (raw && (p.alg == ALG_ECDSA || p.alg == ALG_ECDH)) {
        pkey = ec_from_point(p.curve, b.p, b.n, NULL);
    } else if (raw && (p.alg == ALG_ED25519 || p.alg == ALG_X25519)) {
        if (b.n == 32)
            pkey = EVP_PKEY_new_raw_public_key(
                p.alg == ALG_X25519 ? EVP_PKEY_X25519 : EVP_PKEY_ED25519, NULL, b.p, b.n);
    } else if (raw) {
        crypto_bytes_free(JS_GetRuntime(ctx), &b);
        return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s keys cannot be imported as raw",
                            crypto_alg_name(p.alg));
    } else if (b.n <= LONG_MAX) {
        const unsigned char *q = b.p;
        if (spki) {
            pkey = d2i_PUBKEY(NULL, &q, (long)b.n);
        } else {
            PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)b.n);
            pkey = p8 ? EVP_PKCS82PKEY(p8) : NULL;
            PKCS8_PRIV_KEY_INFO_free(p8);
        }
        /* Trailing bytes, or a key of another kind, are not this key. */
        if (pkey && (q != b.p + b.n || !pkey_matches(pkey, &p))) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    ERR_clear_error();
    crypto_bytes_free(JS_GetRuntime(ctx), &b);
    if (!pkey)
        return crypto_throw(ctx, CRYPTO_DATA, "the key data is not a valid %s %s key",
                            crypto_alg_name(p.alg), format);
    return pkey_key(ctx, &p, pkey, t, extractable, usages);
}

/* --- export --- */

static JSValue bn_b64(JSContext *ctx, EVP_PKEY *pkey, const char *param, size_t pad)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
        return crypto_throw(ctx, CRYPTO_OPERATION, "cannot read the key");
    size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
    uint8_t *buf = js_malloc(ctx, n ? n : 1);
    JSValue v = JS_EXCEPTION;
    if (buf && BN_bn2binpad(bn, buf, (int)n) == (int)n)
        v = b64url_string(ctx, buf, n);
    else if (buf)
        crypto_throw(ctx, CRYPTO_OPERATION, "cannot read the key");
    if (buf) {
        OPENSSL_cleanse(buf, n);
        js_free(ctx, buf);
    }
    BN_clear_free(bn);
    return v;
}

static JSValue export_jwk(JSContext *ctx, crypto_key *k)
{
    JSValue o = JS_NewObject(ctx);
    if (JS_IsException(o))
        return o;
    char alg[16];
    int rc = 0;
    switch (k->alg) {
    case ALG_HMAC:
    case ALG_AES_GCM:
    case ALG_AES_CBC:
    case ALG_AES_CTR:
    case ALG_AES_KW:
        rc |= set_str(ctx, o, "kty", "oct");
        rc |= set_val(ctx, o, "k", b64url_string(ctx, k->secret.p, k->secret.n));
        if (k->alg == ALG_HMAC)
            snprintf(alg, sizeof alg, "HS%s", jwk_hash_suffix(k->hash));
        else
            aes_jwk_alg(alg, sizeof alg, k->alg, k->secret.n);
        rc |= set_str(ctx, o, "alg", alg);
        break;
    case ALG_ECDSA:
    case ALG_ECDH: {
        size_t n = curve_len(k->curve);
        rc |= set_str(ctx, o, "kty", "EC");
        rc |= set_str(ctx, o, "crv", curve_name(k->curve));
        rc |= set_val(ctx, o, "x", bn_b64(ctx, k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, n));
        rc |= set_val(ctx, o, "y", bn_b64(ctx, k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, n));
        if (k->type == KEY_PRIVATE)
            rc |= set_val(ctx, o, "d", bn_b64(ctx, k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, n));
        break;
    }
    case ALG_ED25519:
    case ALG_X25519: {
        uint8_t key[32];
        size_t len = sizeof key;
        rc |= set_str(ctx, o, "kty", "OKP");
        rc |= set_str(ctx, o, "crv", k->alg == ALG_X25519 ? "X25519" : "Ed25519");
        if (EVP_PKEY_get_raw_public_key(k->pkey, key, &len) != 1)
            rc = -1;
        else
            rc |= set_val(ctx, o, "x", b64url_string(ctx, key, len));
        len = sizeof key;
        if (k->type == KEY_PRIVATE) {
            if (EVP_PKEY_get_raw_private_key(k->pkey, key, &len) != 1)
                rc = -1;
            else
                rc |= set_val(ctx, o, "d", b64url_string(ctx, key, len));
        }
        OPENSSL_cleanse(key, sizeof key);
        break;
    }
    case ALG_RSASSA:
    case ALG_RSA_PSS:
    case ALG_RSA_OAEP: {
        static const char *const jwk_names[8] = { "n", "e", "d", "p", "q", "dp", "dq", "qi" };
        static const char *const names[8] = {
            OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
            OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
            OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
            OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
        };
        rc |= set_str(ctx, o, "kty", "RSA");
        rsa_jwk_alg(alg, sizeof alg, k->alg, k->hash);
        rc |= set_str(ctx, o, "alg", alg);
        for (int i = 0; i < (k->type == KEY_PRIVATE ? 8 : 2) && rc >= 0; i++)
            rc |= set_val(ctx, o, jwk_names[i], bn_b64(ctx, k->pkey, names[i], 0));
        break;
    }
    default:
        JS_FreeValue(ctx, o);
        return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s keys cannot be exported",
                            crypto_alg_name(k->alg));
    }
    rc |= set_val(ctx, o, "key_ops", usages_array(ctx, k->usages));
    rc |= set_val(ctx, o, "ext", JS_NewBool(ctx, k->extractable));
    if (rc < 0 || JS_HasException(ctx)) {
        JS_FreeValue(ctx, o);
        ERR_clear_error();
        return JS_EXCEPTION;
    }
    return o;
}

JSValue crypto_export_key(JSContext *ctx, const char *format, crypto_key *k)
{
    if (!strcmp(format, "jwk"))
        return export_jwk(ctx, k);
    bool raw = !strcmp(format, "raw"), spki = !strcmp(format, "spki");
    bool pkcs8 = !strcmp(format, "pkcs8");
    if (!raw && !spki && !pkcs8)
        return JS_ThrowTypeError(ctx, "'%.20s' is not a key format", format);
    if (k->type == KEY_SECRET) {
        if (!raw)
            return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "secret keys export as raw or jwk");
        return crypto_array_buffer(ctx, k->secret.p, k->secret.n);
    }
    unsigned char *der = NULL;
    int len = -1;
    if (raw && k->type == KEY_PUBLIC && (k->alg == ALG_ECDSA || k->alg == ALG_ECDH)) {
        size_t n = 0;
        if (EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, NULL, 0, &n) == 1 &&
            (der = OPENSSL_malloc(n)) &&
            EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, der, n, &n) == 1)
            len = (int)n;
    } else if (raw && k->type == KEY_PUBLIC && (k->alg == ALG_ED25519 || k->alg == ALG_X25519)) {
        size_t n = 32;
        if ((der = OPENSSL_malloc(n)) && EVP_PKEY_get_raw_public_key(k->pkey, der, &n) == 1)
            len = (int)n;
    } else if (spki && k->type == KEY_PUBLIC) {
        len = i2d_PUBKEY(k->pkey, &der);
    } else if (pkcs8 && k->type == KEY_PRIVATE) {
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k->pkey);
        len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else {
        return crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "a %s %s key cannot be exported as %s",
                            crypto_alg_name(k->alg), k->type == KEY_PUBLIC ? "public" : "private",
                            format);
    }
    JSValue v = len >= 0 ? crypto_array_buffer(ctx, der, (size_t)len)
                         : crypto_throw(ctx, CRYPTO_OPERATION, "exporting the key failed");
    if (der && len > 0)
        OPENSSL_cleanse(der, (size_t)len);
    OPENSSL_free(der);
    ERR_clear_error();
    return v;
}

/* --- generate --- */

/* Checked before generating: each usage belongs to one half of the pair
 * (sign/verify, decrypt/encrypt, derive: private only), and the private
 * half gets at least one (WebCrypto's SyntaxError otherwise). */
static int pair_usages(JSContext *ctx, const key_params *p, unsigned usages)
{
    if (check_usages(ctx, p->alg, KEY_PRIVATE, usages & allowed_usages(p->alg, KEY_PRIVATE)) < 0)
        return -1;
    if (usages & ~(allowed_usages(p->alg, KEY_PRIVATE) | allowed_usages(p->alg, KEY_PUBLIC))) {
        crypto_throw(ctx, CRYPTO_SYNTAX, "usages not allowed for a %s key pair",
                     crypto_alg_name(p->alg));
        return -1;
    }
    return 0;
}

/* {publicKey, privateKey} around pkey (taken). */
static JSValue key_pair(JSContext *ctx, const key_params *p, EVP_PKEY *pkey, bool extractable,
                        unsigned usages)
{
    if (EVP_PKEY_up_ref(pkey) != 1) {
        EVP_PKEY_free(pkey);
        return crypto_throw(ctx, CRYPTO_OPERATION, "generating the key failed");
    }
    /* The public key is always extractable (WebCrypto). */
    JSValue pub = pkey_key(ctx, p, pkey, KEY_PUBLIC, true, usages & allowed_usages(p->alg, KEY_PUBLIC));
    JSValue priv = pkey_key(ctx, p, pkey, KEY_PRIVATE, extractable,
                            usages & allowed_usages(p->alg, KEY_PRIVATE));
    if (JS_IsException(pub) || JS_IsException(priv)) {
        JS_FreeValue(ctx, pub);
        JS_FreeValue(ctx, priv);
        return JS_EXCEPTION;
    }
    JSValue o = JS_NewObject(ctx);
    if (JS_IsException(o)) {
        JS_FreeValue(ctx, pub);
        JS_FreeValue(ctx, priv);
        return o;
    }
    JS_SetPropertyStr(ctx, o, "publicKey", pub);
    JS_SetPropertyStr(ctx, o, "privateKey", priv);
    return o;
}

/* On a pool thread: an RSA key (job->bits bits, exponent
 * job->exponent) handed back as PKCS #8 in job->out. */
static int rsa_work(crypto_job *job)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *bn = BN_new();
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *der = NULL;
    int len = -1;
    if (pctx && bn && BN_set_word(bn, (BN_ULONG)job->exponent) == 1 &&
        EVP_PKEY_keygen_init(pctx) == 1 &&
        EVP_PKEY_CTX_set_rsa_keygen_bits(pctx, (int)job->bits) == 1 &&
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(pctx, bn) == 1 && EVP_PKEY_keygen(pctx, &pkey) == 1 &&
        (p8 = EVP_PKEY2PKCS8(pkey)) != NULL)
        len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    if (len > 0 && (job->out = malloc((size_t)len)) != NULL) {
        memcpy(job->out, der, (size_t)len);
        job->out_len = (size_t)len;
    }
    if (der)
        OPENSSL_clear_free(der, len > 0 ? (size_t)len : 0);
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(pkey);
    BN_free(bn);
    EVP_PKEY_CTX_free(pctx);
    ERR_clear_error();
    return job->out ? 0 : -1;
}

static JSValue rsa_done(JSContext *ctx, crypto_job *job)
{
    const unsigned char *q = job->out;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)job->out_len);
    EVP_PKEY *pkey = p8 ? EVP_PKCS82PKEY(p8) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    ERR_clear_error();
    if (!pkey)
        return crypto_throw(ctx, CRYPTO_OPERATION, "generating the key failed");
    key_params p = { .alg = job->key_alg, .hash = job->hash };
    return key_pair(ctx, &p, pkey, job->extractable, job->usages);
}

JSValue crypto_generate_key(JSContext *ctx, JSValueConst alg, bool extractable, unsigned usages)
{
    key_params p;
    if (read_params(ctx, alg, &p, true) < 0)
        return JS_EXCEPTION;
    EVP_PKEY *pkey = NULL;
    switch (p.alg) {
    case ALG_HMAC:
    case ALG_AES_GCM:
    case ALG_AES_CBC:
    case ALG_AES_CTR:
    case ALG_AES_KW: {
        size_t bits = p.length ? p.length : (size_t)EVP_MD_get_block_size(crypto_md(p.hash)) * 8;
        if (bits > 8192)
            return crypto_throw(ctx, CRYPTO_OPERATION, "the key length is too large");
        cbytes b = { js_malloc(ctx, (bits + 7) / 8), (bits + 7) / 8 };
        if (!b.p)
            return JS_EXCEPTION;
        if (RAND_bytes(b.p, (int)b.n) != 1) {
            crypto_bytes_free(JS_GetRuntime(ctx), &b);
            return crypto_throw(ctx, CRYPTO_OPERATION, "the random number generator failed");
        }
        return secret_key(ctx, &p, &b, extractable, usages);
    }
    case ALG_ECDSA:
    case ALG_ECDH:
        if (pair_usages(ctx, &p, usages) < 0)
            return JS_EXCEPTION;
        pkey = EVP_EC_gen(curve_group(p.curve));
        break;
    case ALG_ED25519:
    case ALG_X25519:
        if (pair_usages(ctx, &p, usages) < 0)
            return JS_EXCEPTION;
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, p.alg == ALG_X25519 ? "X25519" : "ED25519");
        break;
    case ALG_RSASSA:
    case ALG_RSA_PSS:
    case ALG_RSA_OAEP: {
        uint32_t bits;
        bool present;
        cbytes e = { 0 };
        if (read_u32(ctx, alg, "modulusLength", &bits, &present) < 0)
            return JS_EXCEPTION;
        JSValue ev = JS_GetPropertyStr(ctx, alg, "publicExponent");
        int rc = JS_IsException(ev) ? -1 : crypto_bytes(ctx, ev, &e, "publicExponent");
        JS_FreeValue(ctx, ev);
        if (rc < 0)
            return JS_EXCEPTION;
        if (!present) {
            crypto_bytes_free(JS_GetRuntime(ctx), &e);
            return JS_ThrowTypeError(ctx, "the algorithm needs a 'modulusLength' member");
        }
        uint64_t exp = 0;
        for (size_t i = 0; i < e.n && exp < (1u << 24); i++)
            exp = exp << 8 | e.p[i];
        crypto_bytes_free(JS_GetRuntime(ctx), &e);
        /* Generation is the one slow operation (and grows fast with the
         * size); 4096 bits bounds it. */
        if (exp != 3 && exp != 65537)
            return crypto_throw(ctx, CRYPTO_OPERATION, "the public exponent must be 3 or 65537");
        if (bits < 1024 || bits > 4096 || bits % 8)
            return crypto_throw(ctx, CRYPTO_OPERATION,
                                "modulusLength must be a multiple of 8 from 1024 to 4096");
        if (pair_usages(ctx, &p, usages) < 0)
            return JS_EXCEPTION;
        /* Tens to hundreds of milliseconds: on the thread pool. */
        crypto_job *job = crypto_job_new();
        job->work = rsa_work;
        job->done = rsa_done;
        job->bits = bits;
        job->exponent = (uint32_t)exp;
        job->hash = p.hash;
        job->key_alg = p.alg;
        job->extractable = extractable;
        job->usages = usages;
        return crypto_job_run(ctx, job);
    }
    default:
        return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "cannot generate %s keys",
                            crypto_alg_name(p.alg));
    }
    ERR_clear_error();
    if (!pkey)
        return crypto_throw(ctx, CRYPTO_OPERATION, "generating the key failed");
    return key_pair(ctx, &p, pkey, extractable, usages);
}
