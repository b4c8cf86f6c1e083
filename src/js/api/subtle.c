/* crypto.subtle (W3C Web Cryptography API, as Cloudflare Workers offers
 * it) on OpenSSL 3: digest, sign/verify (HMAC, ECDSA, Ed25519,
 * RSASSA-PKCS1-v1_5, RSA-PSS), encrypt/decrypt (AES-GCM, AES-CBC,
 * AES-CTR, RSA-OAEP), wrapKey/unwrapKey (those and AES-KW),
 * deriveBits/deriveKey (PBKDF2, HKDF, ECDH, X25519), and the entry points of
 * importKey/exportKey/generateKey (their work is in crypto_key.c), and
 * Workers' timingSafeEqual (synchronous, as there).
 *
 * Every method but timingSafeEqual returns a promise and reports every
 * error by rejecting it, never by throwing. The work is done synchronously (it takes
 * microseconds), except PBKDF2 with many iterations (and RSA key
 * generation, crypto_key.c), which go to the thread pool (crypto.c). */
#include "js/api/crypto_internal.h"

#include "core/alloc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>

/* Workers refuses PBKDF2 above 100,000 iterations; so do we, and bound
 * the whole derivation so that no request can hold a pool thread long. */
#define PBKDF2_MAX_ITERATIONS 100000
#define PBKDF2_MAX_BLOCKS_X_ITERATIONS (16u * PBKDF2_MAX_ITERATIONS)
#define PBKDF2_MAX_BLOCKS 32768
/* Below this many HMAC blocks x iterations, PBKDF2 runs on the loop. */
#define PBKDF2_POOL_THRESHOLD 20000

/* A promise for a method's outcome: consumes v, rejects with the pending
 * exception when v is JS_EXCEPTION (but for the CPU limit's interrupt,
 * which no code may catch). */
static JSValue to_promise(JSContext *ctx, JSValue v)
{
    if (!JS_IsException(v))
        return jsapi_promise_resolve(ctx, v);
    if (jsapi_work_stopped(ctx))
        return v;
    JSValue funcs[2];
    JSValue exc = JS_GetException(ctx);
    JSValue p = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(p)) {
        JS_FreeValue(ctx, exc);
        return p;
    }
    JSValue r = JS_Call(ctx, funcs[1], JS_UNDEFINED, 1, (JSValueConst *)&exc);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, exc);
    JS_FreeValue(ctx, funcs[0]);
    JS_FreeValue(ctx, funcs[1]);
    return p;
}

/* OpenSSL failed: its error queue is not the tenant's business. */
static JSValue op_error(JSContext *ctx, const char *what)
{
    ERR_clear_error();
    return crypto_throw(ctx, CRYPTO_OPERATION, "%s failed", what);
}

/* The key for an operation: an algorithm that matches and the usage. */
static crypto_key *key_for(JSContext *ctx, JSValueConst v, crypto_alg alg, unsigned usage,
                           const char *op)
{
    crypto_key *k = crypto_key_of(ctx, v);
    if (!k)
        return NULL;
    if (k->alg != alg) {
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "%s: the key is for %s, not %s", op,
                     crypto_alg_name(k->alg), crypto_alg_name(alg));
        return NULL;
    }
    if (!(k->usages & usage)) {
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "%s: the key's usages do not allow it", op);
        return NULL;
    }
    return k;
}

/* An optional/required BufferSource member of an algorithm object. */
static int member_bytes(JSContext *ctx, JSValueConst alg, const char *name, bool required,
                        cbytes *out)
{
    out->p = NULL;
    out->n = 0;
    JSValue v = JS_IsObject(alg) ? JS_GetPropertyStr(ctx, alg, name) : JS_UNDEFINED;
    if (JS_IsException(v))
        return -1;
    if (JS_IsUndefined(v)) {
        if (required) {
            JS_ThrowTypeError(ctx, "the algorithm needs a '%s' member", name);
            return -1;
        }
        return 1;
    }
    int rc = crypto_bytes(ctx, v, out, name);
    JS_FreeValue(ctx, v);
    return rc;
}

/* A numeric member; 1 when absent (and not required). */
static int member_u32(JSContext *ctx, JSValueConst alg, const char *name, bool required,
                      uint32_t *out)
{
    JSValue v = JS_IsObject(alg) ? JS_GetPropertyStr(ctx, alg, name) : JS_UNDEFINED;
    if (JS_IsException(v))
        return -1;
    if (JS_IsUndefined(v)) {
        JS_FreeValue(ctx, v);
        if (required) {
            JS_ThrowTypeError(ctx, "the algorithm needs a '%s' member", name);
            return -1;
        }
        return 1;
    }
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
    return 0;
}

/* --- digest --- */

static JSValue digest(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    bool node;
    crypto_alg a = crypto_alg_of(ctx, argv[0], &node);
    if (a == ALG_NONE)
        return to_promise(ctx, JS_EXCEPTION);
    const EVP_MD *md = crypto_md(a);
    if (!md)
        return to_promise(ctx, crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s is not a digest",
                                            crypto_alg_name(a)));
    cbytes data;
    if (crypto_bytes(ctx, argv[1], &data, "data") < 0)
        return to_promise(ctx, JS_EXCEPTION);
    if (jsapi_charge_work(ctx, data.n) < 0) {
        crypto_bytes_free(JS_GetRuntime(ctx), &data);
        return JS_EXCEPTION;
    }
    uint8_t out[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    JSValue v = EVP_Digest(data.p, data.n, out, &n, md, NULL) == 1
                    ? crypto_array_buffer(ctx, out, n)
                    : op_error(ctx, "digest");
    crypto_bytes_free(JS_GetRuntime(ctx), &data);
    return to_promise(ctx, v);
}

/* --- sign and verify --- */

static size_t curve_bytes(crypto_curve c) { return c == CURVE_P384 ? 48 : 32; }

/* An ECDSA DER signature as WebCrypto's r || s, each n bytes. */
static int ecdsa_der_to_raw(const uint8_t *der, size_t len, size_t n, uint8_t *out)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, out, (int)n) == (int)n && BN_bn2binpad(s, out + n, (int)n) == (int)n;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

/* r || s as DER (OPENSSL_malloc'd in *der); its length, or -1. */
static int ecdsa_raw_to_der(const uint8_t *raw, size_t n, unsigned char **der)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)n, NULL), *s = BN_bin2bn(raw + n, (int)n, NULL);
    int len = -1;
    if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig now */
        *der = NULL;
        len = i2d_ECDSA_SIG(sig, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return len;
}

/* The hash a sign/verify uses: ECDSA names it in the algorithm, the
 * others in the key (Ed25519: none). */
static int sign_md(JSContext *ctx, JSValueConst alg, const crypto_key *k, const EVP_MD **md)
{
    *md = NULL;
    if (k->alg == ALG_ECDSA) {
        crypto_alg h = crypto_hash_of(ctx, alg, "hash");
        if (h == ALG_NONE)
            return -1;
        *md = crypto_md(h);
    } else if (k->alg != ALG_ED25519) {
        *md = crypto_md(k->hash);
    }
    return 0;
}

/* RSA-PSS on a signing context: MGF1 with the key's hash, and the
 * algorithm's saltLength (WebCrypto fixes both; OpenSSL's defaults differ). */
static int pss_params(EVP_PKEY_CTX *pctx, const EVP_MD *md, uint32_t salt)
{
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                   EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
                   EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)salt) == 1
               ? 0
               : -1;
}

static JSValue sign_or_verify(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                              int verify)
{
    const char *op = verify ? "verify" : "sign";
    JSValue v = JS_EXCEPTION;
    cbytes data = { 0 }, sig = { 0 };
    EVP_MD_CTX *mctx = NULL;
    unsigned char *der = NULL;
    uint8_t *out = NULL;
    bool node;
    crypto_alg a = crypto_alg_of(ctx, argv[0], &node);
    if (a == ALG_NONE)
        goto done;
    if (a != ALG_HMAC && a != ALG_ECDSA && a != ALG_ED25519 && a != ALG_RSASSA && a != ALG_RSA_PSS) {
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s cannot %s", crypto_alg_name(a), op);
        goto done;
    }
    crypto_key *k = key_for(ctx, argv[1], a, verify ? USE_VERIFY : USE_SIGN, op);
    if (!k)
        goto done;
    if (verify && crypto_bytes(ctx, argv[2], &sig, "signature") < 0)
        goto done;
    if (crypto_bytes(ctx, argv[verify ? 3 : 2], &data, "data") < 0 || jsapi_charge_work(ctx, data.n) < 0)
        goto done;
    const EVP_MD *md;
    if (sign_md(ctx, argv[0], k, &md) < 0)
        goto done;
    uint32_t salt = 0;
    if (a == ALG_RSA_PSS && member_u32(ctx, argv[0], "saltLength", true, &salt) < 0)
        goto done;
    if (a == ALG_RSA_PSS && salt > (uint32_t)EVP_PKEY_get_size(k->pkey)) {
        crypto_throw(ctx, CRYPTO_OPERATION, "saltLength is too large for the key");
        goto done;
    }

    if (a == ALG_HMAC) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (!HMAC(md, k->secret.p, (int)k->secret.n, data.p, data.n, mac, &n)) {
            op_error(ctx, op);
            goto done;
        }
        v = verify ? JS_NewBool(ctx, sig.n == n && CRYPTO_memcmp(sig.p, mac, n) == 0)
                   : crypto_array_buffer(ctx, mac, n);
        OPENSSL_cleanse(mac, sizeof mac);
        goto done;
    }

    mctx = EVP_MD_CTX_new();
    if (!mctx) {
        op_error(ctx, op);
        goto done;
    }
    if (verify) {
        const uint8_t *s = sig.p;
        size_t slen = sig.n;
        if (a == ALG_ECDSA) {
            size_t n = curve_bytes(k->curve);
            if (sig.n != 2 * n) {
                v = JS_FALSE;
                goto done;
            }
            int dlen = ecdsa_raw_to_der(sig.p, n, &der);
            if (dlen < 0) {
                op_error(ctx, op);
                goto done;
            }
            s = der;
            slen = (size_t)dlen;
        }
        EVP_PKEY_CTX *pctx = NULL;
        if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, k->pkey) != 1 ||
            (a == ALG_RSA_PSS && pss_params(pctx, md, salt) < 0)) {
            op_error(ctx, op);
            goto done;
        }
        int ok = EVP_DigestVerify(mctx, s, slen, data.p, data.n);
        ERR_clear_error();
        v = JS_NewBool(ctx, ok == 1);
        goto done;
    }
    size_t len = 0;
    EVP_PKEY_CTX *pctx = NULL;
    if (EVP_DigestSignInit(mctx, &pctx, md, NULL, k->pkey) != 1 ||
        (a == ALG_RSA_PSS && pss_params(pctx, md, salt) < 0) ||
        EVP_DigestSign(mctx, NULL, &len, data.p, data.n) != 1) {
        op_error(ctx, op);
        goto done;
    }
    out = OPENSSL_malloc(len ? len : 1);
    if (!out || EVP_DigestSign(mctx, out, &len, data.p, data.n) != 1) {
        op_error(ctx, op);
        goto done;
    }
    if (a == ALG_ECDSA) {
        size_t n = curve_bytes(k->curve);
        uint8_t raw[96];
        if (ecdsa_der_to_raw(out, len, n, raw) < 0) {
            op_error(ctx, op);
            goto done;
        }
        v = crypto_array_buffer(ctx, raw, 2 * n);
    } else {
        v = crypto_array_buffer(ctx, out, len);
    }
done:
    OPENSSL_free(out);
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    crypto_bytes_free(JS_GetRuntime(ctx), &data);
    crypto_bytes_free(JS_GetRuntime(ctx), &sig);
    return to_promise(ctx, v);
}

/* --- encrypt, decrypt, wrapKey and unwrapKey --- */

static const EVP_CIPHER *aes_cipher(crypto_alg a, size_t key_len)
{
    int i = key_len == 16 ? 0 : key_len == 24 ? 1 : key_len == 32 ? 2 : -1;
    if (i < 0)
        return NULL;
    switch (a) {
    case ALG_AES_GCM: return (const EVP_CIPHER *[]){ EVP_aes_128_gcm(), EVP_aes_192_gcm(), EVP_aes_256_gcm() }[i];
    case ALG_AES_CBC: return (const EVP_CIPHER *[]){ EVP_aes_128_cbc(), EVP_aes_192_cbc(), EVP_aes_256_cbc() }[i];
    case ALG_AES_CTR: return (const EVP_CIPHER *[]){ EVP_aes_128_ctr(), EVP_aes_192_ctr(), EVP_aes_256_ctr() }[i];
    case ALG_AES_KW: return (const EVP_CIPHER *[]){ EVP_aes_128_wrap(), EVP_aes_192_wrap(), EVP_aes_256_wrap() }[i];
    default: return NULL;
    }
}

static JSValue aes_gcm_cbc(JSContext *ctx, crypto_alg a, crypto_key *k, JSValueConst alg,
                           const cbytes *data, bool decrypt, const char *op)
{
    JSValue v = JS_EXCEPTION;
    cbytes iv = { 0 }, aad = { 0 };
    EVP_CIPHER_CTX *cctx = NULL;
    uint8_t *out = NULL;
    size_t out_cap = 0;
    if (member_bytes(ctx, alg, "iv", true, &iv) < 0)
        goto done;
    uint32_t tag_bits = 128;
    if (a == ALG_AES_GCM) {
        if (member_bytes(ctx, alg, "additionalData", false, &aad) < 0 ||
            member_u32(ctx, alg, "tagLength", false, &tag_bits) < 0)
            goto done;
        if (tag_bits != 32 && tag_bits != 64 && (tag_bits < 96 || tag_bits > 128 || tag_bits % 8)) {
            crypto_throw(ctx, CRYPTO_OPERATION, "AES-GCM tagLength %u is not allowed", tag_bits);
            goto done;
        }
        if (iv.n == 0 || iv.n > INT_MAX) {
            crypto_throw(ctx, CRYPTO_OPERATION, "AES-GCM needs a non-empty iv");
            goto done;
        }
    } else if (iv.n != 16) {
        crypto_throw(ctx, CRYPTO_OPERATION, "AES-CBC needs a 16-byte iv, got %zu bytes", iv.n);
        goto done;
    }
    size_t tag_len = tag_bits / 8;
    if (data->n > INT_MAX - 64 || aad.n > INT_MAX) {
        crypto_throw(ctx, CRYPTO_OPERATION, "%s: the data is too large", op);
        goto done;
    }
    if (a == ALG_AES_GCM && decrypt && data->n < tag_len) {
        crypto_throw(ctx, CRYPTO_OPERATION, "AES-GCM: the data is shorter than the tag");
        goto done;
    }
    size_t in_len = a == ALG_AES_GCM && decrypt ? data->n - tag_len : data->n;
    out_cap = in_len + 32;
    out = js_malloc(ctx, out_cap);
    cctx = EVP_CIPHER_CTX_new();
    const EVP_CIPHER *cipher = aes_cipher(a, k->secret.n);
    if (!out || !cctx || !cipher)
        goto fail;
    if (EVP_CipherInit_ex(cctx, cipher, NULL, NULL, NULL, !decrypt) != 1)
        goto fail;
    if (a == ALG_AES_GCM &&
        EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_IVLEN, (int)iv.n, NULL) != 1)
        goto fail;
    if (EVP_CipherInit_ex(cctx, NULL, NULL, k->secret.p, iv.p, -1) != 1)
        goto fail;
    int n = 0, total = 0;
    if (a == ALG_AES_GCM && aad.n && EVP_CipherUpdate(cctx, NULL, &n, aad.p, (int)aad.n) != 1)
        goto fail;
    if (a == ALG_AES_GCM && decrypt &&
        EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, (int)tag_len, data->p + in_len) != 1)
        goto fail;
    if (in_len && EVP_CipherUpdate(cctx, out, &n, data->p, (int)in_len) != 1)
        goto fail;
    total = n;
    if (EVP_CipherFinal_ex(cctx, out + total, &n) != 1)
        goto fail;
    total += n;
    if (a == ALG_AES_GCM && !decrypt) {
        if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, (int)tag_len, out + total) != 1)
            goto fail;
        total += (int)tag_len;
    }
    v = crypto_array_buffer(ctx, out, (size_t)total);
    goto done;
fail:
    /* Wrong tag, bad padding, tampered data: all one OperationError. */
    if (!JS_HasException(ctx))
        op_error(ctx, op);
done:
    if (out) {
        OPENSSL_cleanse(out, out_cap);
        js_free(ctx, out);
    }
    EVP_CIPHER_CTX_free(cctx);
    crypto_bytes_free(JS_GetRuntime(ctx), &iv);
    crypto_bytes_free(JS_GetRuntime(ctx), &aad);
    return v;
}

/* n bytes of AES-CTR keystream applied from counter block ctr; 0 or -1. */
static int ctr_segment(const EVP_CIPHER *cipher, const uint8_t *key, const uint8_t ctr[16],
                       const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    int ok = cctx && EVP_EncryptInit_ex(cctx, cipher, NULL, key, ctr) == 1 &&
             (n == 0 || EVP_EncryptUpdate(cctx, out, &len, in, (int)n) == 1) &&
             EVP_EncryptFinal_ex(cctx, out + len, &fin) == 1 && (size_t)(len + fin) == n;
    EVP_CIPHER_CTX_free(cctx);
    return ok ? 0 : -1;
}

/* AES-CTR (encrypt and decrypt are one): the rightmost `length` bits of
 * the 16-byte counter block count and wrap to zero; the bits left of
 * them stay (WebCrypto, as NIST SP 800-38A B.1 allows). OpenSSL carries
 * into all 128 bits, so a message that wraps is done in two runs. */
static JSValue aes_ctr(JSContext *ctx, crypto_key *k, JSValueConst alg, const cbytes *data)
{
    JSValue v = JS_EXCEPTION;
    cbytes counter = { 0 };
    uint8_t *out = NULL;
    uint32_t length;
    if (member_bytes(ctx, alg, "counter", true, &counter) < 0 ||
        member_u32(ctx, alg, "length", true, &length) < 0)
        goto done;
    if (counter.n != 16) {
        crypto_throw(ctx, CRYPTO_OPERATION, "AES-CTR needs a 16-byte counter, got %zu bytes", counter.n);
        goto done;
    }
    if (length == 0 || length > 128) {
        crypto_throw(ctx, CRYPTO_OPERATION, "AES-CTR length must be 1 to 128 bits, not %u", length);
        goto done;
    }
    if (data->n > INT_MAX) {
        crypto_throw(ctx, CRYPTO_OPERATION, "AES-CTR: the data is too large");
        goto done;
    }
    typedef unsigned __int128 u128;
    u128 ctr = 0;
    for (int i = 0; i < 16; i++)
        ctr = ctr << 8 | counter.p[i];
    u128 mask = length == 128 ? ~(u128)0 : ((u128)1 << length) - 1;
    u128 blocks = (data->n + 15) / 16;
    size_t first = data->n;
    if (length < 128) {
        /* More blocks than the counter has values would reuse keystream. */
        if (blocks > mask + 1) {
            crypto_throw(ctx, CRYPTO_OPERATION,
                         "AES-CTR: %zu bytes need more than a %u-bit counter gives", data->n, length);
            goto done;
        }
        u128 room = mask - (ctr & mask) + 1; /* blocks before the counter wraps */
        if (blocks > room)
            first = (size_t)room * 16;
    }
    out = js_malloc(ctx, data->n ? data->n : 1);
    const EVP_CIPHER *cipher = aes_cipher(ALG_AES_CTR, k->secret.n);
    if (!out || !cipher)
        goto fail;
    if (ctr_segment(cipher, k->secret.p, counter.p, data->p, first, out) < 0)
        goto fail;
    if (first < data->n) {
        ctr &= ~mask;
        uint8_t wrapped[16];
        for (int i = 15; i >= 0; i--, ctr >>= 8)
            wrapped[i] = (uint8_t)ctr;
        if (ctr_segment(cipher, k->secret.p, wrapped, data->p + first, data->n - first, out + first) < 0)
            goto fail;
    }
    v = crypto_array_buffer(ctx, out, data->n);
    goto done;
fail:
    if (!JS_HasException(ctx))
        op_error(ctx, "AES-CTR");
done:
    if (out) {
        OPENSSL_cleanse(out, data->n);
        js_free(ctx, out);
    }
    crypto_bytes_free(JS_GetRuntime(ctx), &counter);
    return v;
}

/* AES-KW (RFC 3394, the default IV): wrapping takes whole 64-bit blocks,
 * at least two; unwrapping checks the integrity value (OperationError). */
static JSValue aes_kw(JSContext *ctx, crypto_key *k, const cbytes *data, bool unwrap)
{
    if (data->n % 8 || data->n < (unwrap ? 24u : 16u) || data->n > INT_MAX - 16)
        return crypto_throw(ctx, CRYPTO_OPERATION,
                            "AES-KW %s a multiple of 8 bytes, at least %d, not %zu bytes",
                            unwrap ? "unwraps" : "wraps", unwrap ? 24 : 16, data->n);
    JSValue v = JS_EXCEPTION;
    size_t cap = data->n + 16;
    uint8_t *out = js_malloc(ctx, cap);
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    const EVP_CIPHER *cipher = aes_cipher(ALG_AES_KW, k->secret.n);
    int n = 0, fin = 0;
    if (out && cctx && cipher) {
        /* OpenSSL hands out its wrap modes only to callers who ask. */
        EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        if (EVP_CipherInit_ex(cctx, cipher, NULL, k->secret.p, NULL, !unwrap) == 1 &&
            EVP_CipherUpdate(cctx, out, &n, data->p, (int)data->n) == 1 && n >= 0 &&
            EVP_CipherFinal_ex(cctx, out + n, &fin) == 1)
            v = crypto_array_buffer(ctx, out, (size_t)(n + fin));
    }
    if (JS_IsException(v) && !JS_HasException(ctx))
        op_error(ctx, unwrap ? "AES-KW unwrapping" : "AES-KW wrapping");
    if (out) {
        OPENSSL_cleanse(out, cap);
        js_free(ctx, out);
    }
    EVP_CIPHER_CTX_free(cctx);
    return v;
}

/* RSA-OAEP (RFC 8017): the key's hash for both OAEP and MGF1, as
 * WebCrypto fixes it, and the algorithm's optional label. */
static JSValue rsa_oaep(JSContext *ctx, crypto_key *k, JSValueConst alg, const cbytes *data,
                        bool decrypt)
{
    JSValue v = JS_EXCEPTION;
    cbytes label = { 0 };
    uint8_t *out = NULL, *lab = NULL;
    size_t len = 0;
    EVP_PKEY_CTX *pctx = NULL;
    if (member_bytes(ctx, alg, "label", false, &label) < 0)
        goto done;
    const EVP_MD *md = crypto_md(k->hash);
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (!pctx || (decrypt ? EVP_PKEY_decrypt_init(pctx) : EVP_PKEY_encrypt_init(pctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)
        goto fail;
    if (label.n) {
        /* set0 takes the label: a copy in OpenSSL's heap. */
        if (!(lab = OPENSSL_memdup(label.p, label.n)) ||
            EVP_PKEY_CTX_set0_rsa_oaep_label(pctx, lab, (int)label.n) != 1)
            goto fail;
        lab = NULL;
    }
    int rc = decrypt ? EVP_PKEY_decrypt(pctx, NULL, &len, data->p, data->n)
                     : EVP_PKEY_encrypt(pctx, NULL, &len, data->p, data->n);
    if (rc != 1 || !(out = js_malloc(ctx, len ? len : 1)))
        goto fail;
    rc = decrypt ? EVP_PKEY_decrypt(pctx, out, &len, data->p, data->n)
                 : EVP_PKEY_encrypt(pctx, out, &len, data->p, data->n);
    if (rc != 1)
        goto fail;
    v = crypto_array_buffer(ctx, out, len);
    goto done;
fail:
    /* Too long a message, a wrong key or label: one OperationError. */
    if (!JS_HasException(ctx))
        op_error(ctx, decrypt ? "RSA-OAEP decryption" : "RSA-OAEP encryption");
done:
    OPENSSL_free(lab);
    if (out) {
        OPENSSL_cleanse(out, len);
        js_free(ctx, out);
    }
    EVP_PKEY_CTX_free(pctx);
    crypto_bytes_free(JS_GetRuntime(ctx), &label);
    return v;
}

/* The algorithm and key of an encrypt/decrypt (wrap false) or a
 * wrapKey/unwrapKey (wrap true): AES-KW only wraps. */
static crypto_key *cipher_key(JSContext *ctx, JSValueConst alg, JSValueConst key_v, bool decrypt,
                              bool wrap, crypto_alg *a)
{
    const char *op = wrap ? (decrypt ? "unwrapKey" : "wrapKey") : (decrypt ? "decrypt" : "encrypt");
    bool node;
    *a = crypto_alg_of(ctx, alg, &node);
    if (*a == ALG_NONE)
        return NULL;
    bool ok = *a == ALG_AES_GCM || *a == ALG_AES_CBC || *a == ALG_AES_CTR || *a == ALG_RSA_OAEP ||
              (wrap && *a == ALG_AES_KW);
    if (!ok) {
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s cannot %s", crypto_alg_name(*a), op);
        return NULL;
    }
    unsigned use = wrap ? (decrypt ? USE_UNWRAP : USE_WRAP) : (decrypt ? USE_DECRYPT : USE_ENCRYPT);
    return key_for(ctx, key_v, *a, use, op);
}

/* The ciphertext (or plaintext) as an ArrayBuffer, or JS_EXCEPTION. */
static JSValue cipher_run(JSContext *ctx, crypto_alg a, crypto_key *k, JSValueConst alg,
                          const cbytes *data, bool decrypt, const char *op)
{
    if (jsapi_charge_work(ctx, data->n) < 0) /* a loop of large ciphers must meet the CPU limit */
        return JS_EXCEPTION;
    switch (a) {
    case ALG_AES_CTR: return aes_ctr(ctx, k, alg, data);
    case ALG_AES_KW: return aes_kw(ctx, k, data, decrypt);
    case ALG_RSA_OAEP: return rsa_oaep(ctx, k, alg, data, decrypt);
    default: return aes_gcm_cbc(ctx, a, k, alg, data, decrypt, op);
    }
}

static JSValue encrypt_or_decrypt(JSContext *ctx, JSValueConst this_val, int argc,
                                  JSValueConst *argv, int decrypt)
{
    crypto_alg a;
    cbytes data = { 0 };
    JSValue v = JS_EXCEPTION;
    crypto_key *k = cipher_key(ctx, argv[0], argv[1], decrypt, false, &a);
    if (k && crypto_bytes(ctx, argv[2], &data, "data") == 0)
        v = cipher_run(ctx, a, k, argv[0], &data, decrypt, decrypt ? "decrypt" : "encrypt");
    crypto_bytes_free(JS_GetRuntime(ctx), &data);
    return to_promise(ctx, v);
}

/* wrapKey(format, key, wrappingKey, wrapAlgorithm): exportKey, then
 * encrypt (a JWK as its JSON text in UTF-8). */
static JSValue wrap_key(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    JSValue v = JS_EXCEPTION, exported = JS_UNDEFINED, json = JS_UNDEFINED;
    cbytes data = { 0 };
    crypto_alg a;
    const char *format = JS_ToCString(ctx, argv[0]);
    if (!format)
        return to_promise(ctx, JS_EXCEPTION);
    crypto_key *wk = cipher_key(ctx, argv[3], argv[2], false, true, &a);
    crypto_key *k = wk ? crypto_key_of(ctx, argv[1]) : NULL;
    if (!k)
        goto done;
    if (!k->extractable) {
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "wrapKey: the key is not extractable");
        goto done;
    }
    exported = crypto_export_key(ctx, format, k);
    if (JS_IsException(exported))
        goto done;
    if (!strcmp(format, "jwk")) {
        json = JS_JSONStringify(ctx, exported, JS_UNDEFINED, JS_UNDEFINED);
        size_t n;
        const char *s = JS_IsException(json) ? NULL : JS_ToCStringLen(ctx, &n, json);
        if (!s)
            goto done;
        data.p = js_malloc(ctx, n ? n : 1);
        if (data.p) {
            memcpy(data.p, s, n);
            data.n = n;
        }
        OPENSSL_cleanse((void *)s, n);
        JS_FreeCString(ctx, s);
        if (!data.p)
            goto done;
    } else if (crypto_bytes(ctx, exported, &data, "exported key") < 0) {
        goto done;
    }
    v = cipher_run(ctx, a, wk, argv[3], &data, false, "wrapKey");
done:
    JS_FreeValue(ctx, exported);
    JS_FreeValue(ctx, json);
    crypto_bytes_free(JS_GetRuntime(ctx), &data);
    JS_FreeCString(ctx, format);
    return to_promise(ctx, v);
}

/* unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm,
 * unwrappedKeyAlgorithm, extractable, keyUsages): decrypt, then
 * importKey (a JWK parsed from its JSON text; not JSON is a DataError). */
static JSValue unwrap_key(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    JSValue v = JS_EXCEPTION, plain = JS_UNDEFINED, key_data = JS_UNDEFINED;
    cbytes wrapped = { 0 }, text = { 0 };
    crypto_alg a;
    unsigned usages;
    const char *format = JS_ToCString(ctx, argv[0]);
    if (!format)
        return to_promise(ctx, JS_EXCEPTION);
    if (crypto_usages(ctx, argv[6], &usages) < 0 ||
        crypto_bytes(ctx, argv[1], &wrapped, "wrappedKey") < 0)
        goto done;
    crypto_key *wk = cipher_key(ctx, argv[3], argv[2], true, true, &a);
    if (!wk)
        goto done;
    plain = cipher_run(ctx, a, wk, argv[3], &wrapped, true, "unwrapKey");
    if (JS_IsException(plain))
        goto done;
    if (!strcmp(format, "jwk")) {
        if (crypto_bytes(ctx, plain, &text, "unwrapped key") < 0)
            goto done;
        /* JS_ParseJSON reads up to a NUL past the length. */
        uint8_t *z = js_realloc(ctx, text.p, text.n + 1);
        if (!z)
            goto done;
        text.p = z;
        z[text.n] = 0;
        key_data = JS_ParseJSON(ctx, (const char *)text.p, text.n, "<unwrapped jwk>");
        if (JS_IsException(key_data)) {
            JS_FreeValue(ctx, JS_GetException(ctx));
            crypto_throw(ctx, CRYPTO_DATA, "unwrapKey: the unwrapped data is not a JWK");
            goto done;
        }
    } else {
        key_data = JS_DupValue(ctx, plain);
    }
    v = crypto_import_key(ctx, format, key_data, argv[4], JS_ToBool(ctx, argv[5]), usages);
done:
    JS_FreeValue(ctx, plain);
    JS_FreeValue(ctx, key_data);
    crypto_bytes_free(JS_GetRuntime(ctx), &wrapped);
    if (text.p)
        text.n++; /* the NUL too */
    crypto_bytes_free(JS_GetRuntime(ctx), &text);
    JS_FreeCString(ctx, format);
    return to_promise(ctx, v);
}

/* --- deriveBits and deriveKey --- */

static int pbkdf2_work(crypto_job *job)
{
    return PKCS5_PBKDF2_HMAC((const char *)job->in1, (int)job->in1_len, job->in2,
                             (int)job->in2_len, (int)job->iterations, crypto_md(job->hash),
                             (int)job->out_len, job->out) == 1 ? 0 : -1;
}

static JSValue bits_done(JSContext *ctx, crypto_job *job)
{
    return crypto_array_buffer(ctx, job->out, job->out_len);
}

static JSValue key_done(JSContext *ctx, crypto_job *job)
{
    cbytes b = { js_malloc(ctx, job->out_len ? job->out_len : 1), job->out_len };
    if (!b.p)
        return JS_EXCEPTION;
    memcpy(b.p, job->out, job->out_len);
    return crypto_import_secret(ctx, &b, job->extra, job->extractable, job->usages);
}

static uint8_t *dup_bytes(const cbytes *b)
{
    uint8_t *p = xmalloc(b->n ? b->n : 1);
    if (b->n)
        memcpy(p, b->p, b->n);
    return p;
}

/* ECDH (P-256, P-384) and X25519: the shared secret of the private key k
 * and the algorithm's `public` key, cut to `bits` bits (-1: all of it;
 * bits past a byte are zeroed, as WebCrypto says). 0 with *out
 * js_malloc'd, or -1 with an exception. */
static int agree(JSContext *ctx, crypto_alg a, JSValueConst alg, crypto_key *k, int64_t bits,
                 uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    JSValue pv = JS_IsObject(alg) ? JS_GetPropertyStr(ctx, alg, "public") : JS_UNDEFINED;
    if (JS_IsException(pv))
        return -1;
    if (JS_IsUndefined(pv)) {
        JS_ThrowTypeError(ctx, "the algorithm needs a 'public' member");
        return -1;
    }
    crypto_key *pub = crypto_key_of(ctx, pv);
    /* Kept alive past the algorithm object (no JS runs below, but the
     * reference costs nothing). */
    EVP_PKEY *peer = pub && pub->pkey && EVP_PKEY_up_ref(pub->pkey) == 1 ? pub->pkey : NULL;
    crypto_key_type pub_type = pub ? pub->type : KEY_SECRET;
    crypto_alg pub_alg = pub ? pub->alg : ALG_NONE;
    crypto_curve pub_curve = pub ? pub->curve : CURVE_NONE;
    JS_FreeValue(ctx, pv);
    int rc = -1;
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!pub)
        goto done;
    if (pub_type != KEY_PUBLIC) {
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "the algorithm's 'public' must be a public key");
        goto done;
    }
    if (pub_alg != a) {
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "the public key is for %s, not %s",
                     crypto_alg_name(pub_alg), crypto_alg_name(a));
        goto done;
    }
    if (a == ALG_ECDH && pub_curve != k->curve) {
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "the public key is on %s, the private key on %s",
                     pub_curve == CURVE_P384 ? "P-384" : "P-256",
                     k->curve == CURVE_P384 ? "P-384" : "P-256");
        goto done;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (!peer || !pctx || EVP_PKEY_derive_init(pctx) != 1 || EVP_PKEY_derive_set_peer(pctx, peer) != 1 ||
        EVP_PKEY_derive(pctx, NULL, &len) != 1 || !(buf = js_malloc(ctx, len ? len : 1)) ||
        EVP_PKEY_derive(pctx, buf, &len) != 1) {
        /* X25519 with a small-order point (an all-zero secret) lands here too. */
        if (!JS_HasException(ctx))
            op_error(ctx, a == ALG_ECDH ? "ECDH" : "X25519");
        goto done;
    }
    if (bits >= 0) {
        if ((uint64_t)bits > (uint64_t)len * 8) {
            crypto_throw(ctx, CRYPTO_OPERATION, "%s gives at most %zu bits, %lld asked",
                         crypto_alg_name(a), len * 8, (long long)bits);
            goto done;
        }
        size_t n = ((size_t)bits + 7) / 8;
        if (bits % 8)
            buf[n - 1] &= (uint8_t)(0xff << (8 - bits % 8));
        OPENSSL_cleanse(buf + n, len - n);
        len = n;
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
done:
    if (buf) {
        OPENSSL_cleanse(buf, len);
        js_free(ctx, buf);
    }
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    ERR_clear_error();
    return rc;
}

/* Derives `bits` bits with `alg` from the key; the result, or for
 * deriveKey (key_alg an object) a CryptoKey; or a promise of either. */
static JSValue derive(JSContext *ctx, JSValueConst alg, JSValueConst key_v, JSValueConst length,
                      JSValueConst key_alg, bool extractable, unsigned usages)
{
    bool for_key = !JS_IsUndefined(key_alg);
    JSValue v = JS_EXCEPTION;
    cbytes salt = { 0 }, info = { 0 };
    uint8_t *out = NULL;
    size_t out_len = 0;
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    bool node;
    crypto_alg a = crypto_alg_of(ctx, alg, &node);
    if (a == ALG_NONE)
        goto done;
    if (a != ALG_PBKDF2 && a != ALG_HKDF && a != ALG_ECDH && a != ALG_X25519) {
        crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s cannot derive bits", crypto_alg_name(a));
        goto done;
    }
    crypto_key *k = key_for(ctx, key_v, a, for_key ? USE_DERIVE_KEY : USE_DERIVE_BITS,
                            for_key ? "deriveKey" : "deriveBits");
    if (!k)
        goto done;
    if (a == ALG_ECDH || a == ALG_X25519) {
        /* A key agreement's length is optional: null is the whole secret. */
        int64_t want = -1;
        if (for_key) {
            want = crypto_derived_key_bits(ctx, key_alg);
            if (want < 0)
                goto done;
        } else if (!JS_IsNull(length) && !JS_IsUndefined(length)) {
            uint32_t u;
            if (JS_ToUint32(ctx, &u, length) < 0)
                goto done;
            want = u;
        }
        if (agree(ctx, a, alg, k, want, &out, &out_len) < 0)
            goto done;
        goto result;
    }
    crypto_alg hash = crypto_hash_of(ctx, alg, "hash");
    if (hash == ALG_NONE || member_bytes(ctx, alg, "salt", true, &salt) < 0)
        goto done;
    if (a == ALG_HKDF && member_bytes(ctx, alg, "info", true, &info) < 0)
        goto done;
    uint32_t iterations = 0;
    if (a == ALG_PBKDF2 && member_u32(ctx, alg, "iterations", true, &iterations) < 0)
        goto done;
    int64_t bits;
    if (for_key) {
        bits = crypto_derived_key_bits(ctx, key_alg);
        if (bits < 0)
            goto done;
    } else {
        if (JS_IsNull(length) || JS_IsUndefined(length)) {
            crypto_throw(ctx, CRYPTO_OPERATION, "deriveBits needs a length");
            goto done;
        }
        uint32_t u;
        if (JS_ToUint32(ctx, &u, length) < 0)
            goto done;
        bits = u;
    }
    if (bits % 8) {
        crypto_throw(ctx, CRYPTO_OPERATION, "the length must be a multiple of 8, got %lld",
                     (long long)bits);
        goto done;
    }
    out_len = (size_t)bits / 8;
    size_t hash_len = (size_t)EVP_MD_get_size(crypto_md(hash));
    if (a == ALG_PBKDF2) {
        if (iterations == 0) {
            crypto_throw(ctx, CRYPTO_OPERATION, "PBKDF2 needs at least one iteration");
            goto done;
        }
        uint64_t cost = (uint64_t)iterations * ((out_len + hash_len - 1) / hash_len);
        if (iterations > PBKDF2_MAX_ITERATIONS || cost > PBKDF2_MAX_BLOCKS_X_ITERATIONS ||
            out_len / hash_len > PBKDF2_MAX_BLOCKS) {
            crypto_throw(ctx, CRYPTO_NOT_SUPPORTED,
                         "PBKDF2 with more than %d iterations (or as much work) is not supported",
                         PBKDF2_MAX_ITERATIONS);
            goto done;
        }
        if (k->secret.n > INT_MAX || salt.n > INT_MAX) {
            crypto_throw(ctx, CRYPTO_OPERATION, "PBKDF2: the input is too large");
            goto done;
        }
        if (cost < PBKDF2_POOL_THRESHOLD) {
            /* Cheap: here and now, as the other methods do — a block of
             * an iteration hashes some 256 bytes. */
            if (jsapi_charge_work(ctx, cost * 256) < 0)
                goto done;
            out = js_malloc(ctx, out_len ? out_len : 1);
            if (!out)
                goto done;
            if (PKCS5_PBKDF2_HMAC((const char *)k->secret.p, (int)k->secret.n, salt.p,
                                  (int)salt.n, (int)iterations, crypto_md(hash), (int)out_len,
                                  out) != 1) {
                op_error(ctx, "PBKDF2");
                goto done;
            }
            goto result;
        }
        crypto_job *job = crypto_job_new();
        job->work = pbkdf2_work;
        job->done = for_key ? key_done : bits_done;
        job->in1 = dup_bytes(&k->secret);
        job->in1_len = k->secret.n;
        job->in2 = dup_bytes(&salt);
        job->in2_len = salt.n;
        job->out = xcalloc(1, out_len ? out_len : 1);
        job->out_len = out_len;
        job->iterations = iterations;
        job->hash = hash;
        job->extra = JS_DupValue(ctx, key_alg);
        job->extractable = extractable;
        job->usages = usages;
        v = crypto_job_run(ctx, job);
        goto done;
    }
    /* HKDF */
    if (out_len > 255 * hash_len) {
        crypto_throw(ctx, CRYPTO_OPERATION, "HKDF can derive at most %zu bits", 255 * hash_len * 8);
        goto done;
    }
    out = js_malloc(ctx, out_len ? out_len : 1);
    if (!out)
        goto done;
    if (out_len) {
        kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
        OSSL_PARAM params[5], *p = params;
        static uint8_t empty[1];
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                (char *)EVP_MD_get0_name(crypto_md(hash)), 0);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                 k->secret.n ? k->secret.p : empty, k->secret.n);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt.p, salt.n);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.p, info.n);
        *p = OSSL_PARAM_construct_end();
        if (!kctx || EVP_KDF_derive(kctx, out, out_len, params) != 1) {
            op_error(ctx, "HKDF");
            goto done;
        }
    }
result:
    if (for_key) {
        cbytes b = { out, out_len };
        out = NULL;
        v = crypto_import_secret(ctx, &b, key_alg, extractable, usages);
    } else {
        v = crypto_array_buffer(ctx, out, out_len);
    }
done:
    if (out) {
        OPENSSL_cleanse(out, out_len);
        js_free(ctx, out);
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    crypto_bytes_free(JS_GetRuntime(ctx), &salt);
    crypto_bytes_free(JS_GetRuntime(ctx), &info);
    return v;
}

static JSValue derive_bits(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return to_promise(ctx, derive(ctx, argv[0], argv[1], argv[2], JS_UNDEFINED, false, 0));
}

static JSValue derive_key(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    unsigned usages;
    if (crypto_usages(ctx, argv[4], &usages) < 0)
        return to_promise(ctx, JS_EXCEPTION);
    JSValueConst key_alg = argv[2];
    if (!JS_IsObject(key_alg) && !JS_IsString(key_alg))
        return to_promise(ctx, JS_ThrowTypeError(ctx, "deriveKey needs a derivedKeyType"));
    return to_promise(ctx, derive(ctx, argv[0], argv[1], JS_UNDEFINED, key_alg,
                                  JS_ToBool(ctx, argv[3]), usages));
}

/* --- keys --- */

static JSValue import_key(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    unsigned usages;
    const char *format = JS_ToCString(ctx, argv[0]);
    if (!format)
        return to_promise(ctx, JS_EXCEPTION);
    JSValue v = crypto_usages(ctx, argv[4], &usages) < 0
                    ? JS_EXCEPTION
                    : crypto_import_key(ctx, format, argv[1], argv[2], JS_ToBool(ctx, argv[3]),
                                        usages);
    JS_FreeCString(ctx, format);
    return to_promise(ctx, v);
}

static JSValue export_key(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    const char *format = JS_ToCString(ctx, argv[0]);
    if (!format)
        return to_promise(ctx, JS_EXCEPTION);
    JSValue v = JS_EXCEPTION;
    crypto_key *k = crypto_key_of(ctx, argv[1]);
    if (k && !k->extractable)
        crypto_throw(ctx, CRYPTO_INVALID_ACCESS, "the key is not extractable");
    else if (k)
        v = crypto_export_key(ctx, format, k);
    JS_FreeCString(ctx, format);
    return to_promise(ctx, v);
}

static JSValue generate_key(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    unsigned usages;
    if (crypto_usages(ctx, argv[2], &usages) < 0)
        return to_promise(ctx, JS_EXCEPTION);
    return to_promise(ctx, crypto_generate_key(ctx, argv[0], JS_ToBool(ctx, argv[1]), usages));
}

/* crypto.subtle.timingSafeEqual(a, b), Workers' extension that webhook
 * signature checks written for Workers call: a synchronous boolean, in
 * constant time for the length; buffers of different lengths are a
 * TypeError, as in Workers (callers compare the lengths first). */
static JSValue timing_safe_equal(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    const uint8_t *a, *b;
    size_t na, nb;
    /* The first buffer is copied before the second is read: reading a
     * DataView runs its getters, which may detach the first one. */
    uint8_t *copy = NULL;
    JSValue r = JS_EXCEPTION;
    for (int i = 0; i < 2; i++) {
        int k = jsapi_buffer_source(ctx, i < argc ? argv[i] : JS_UNDEFINED, i ? &b : &a, i ? &nb : &na);
        if (k < 0)
            goto done;
        if (k == 0) {
            JS_ThrowTypeError(ctx, "timingSafeEqual: argument %d must be an ArrayBuffer or an ArrayBufferView",
                              i + 1);
            goto done;
        }
        if (i == 0) {
            if (!(copy = js_malloc(ctx, na ? na : 1)))
                goto done;
            memcpy(copy, a, na);
        }
    }
    if (na != nb)
        JS_ThrowTypeError(ctx, "timingSafeEqual: input buffers must have the same byte length (%zu and %zu)", na,
                          nb);
    else
        r = JS_NewBool(ctx, na == 0 || CRYPTO_memcmp(copy, b, na) == 0);
done:
    js_free(ctx, copy);
    return r;
}

static const JSCFunctionListEntry subtle_funcs[] = {
    JS_CFUNC_DEF("digest", 2, digest),
    JS_CFUNC_MAGIC_DEF("sign", 3, sign_or_verify, 0),
    JS_CFUNC_MAGIC_DEF("verify", 4, sign_or_verify, 1),
    JS_CFUNC_MAGIC_DEF("encrypt", 3, encrypt_or_decrypt, 0),
    JS_CFUNC_MAGIC_DEF("decrypt", 3, encrypt_or_decrypt, 1),
    JS_CFUNC_DEF("wrapKey", 4, wrap_key),
    JS_CFUNC_DEF("unwrapKey", 7, unwrap_key),
    JS_CFUNC_DEF("deriveBits", 3, derive_bits),
    JS_CFUNC_DEF("deriveKey", 5, derive_key),
    JS_CFUNC_DEF("importKey", 5, import_key),
    JS_CFUNC_DEF("exportKey", 2, export_key),
    JS_CFUNC_DEF("generateKey", 3, generate_key),
    JS_CFUNC_DEF("timingSafeEqual", 2, timing_safe_equal),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "SubtleCrypto", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_subtle_create(JSContext *ctx)
{
    JSValue obj = JS_NewObject(ctx);
    if (JS_IsException(obj))
        return obj;
    JS_SetPropertyFunctionList(ctx, obj, subtle_funcs, sizeof subtle_funcs / sizeof subtle_funcs[0]);
    return obj;
}
