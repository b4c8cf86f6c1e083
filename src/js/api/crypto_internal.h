/* Declarations shared by the Web Crypto files and by no one else:
 * crypto.c (the `crypto` object, errors, bytes, thread-pool jobs),
 * subtle.c (the SubtleCrypto methods), crypto_key.c (CryptoKey, import,
 * export, generate) and digest_stream.c (crypto.DigestStream). All of it
 * is on OpenSSL 3. */
#ifndef ATOLL_JS_API_CRYPTO_INTERNAL_H
#define ATOLL_JS_API_CRYPTO_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "js/api/api_internal.h"

/* --- errors: DOMException-like, by WebCrypto's names --- */
#define CRYPTO_NOT_SUPPORTED "NotSupportedError"
#define CRYPTO_INVALID_ACCESS "InvalidAccessError"
#define CRYPTO_DATA "DataError"
#define CRYPTO_OPERATION "OperationError"
#define CRYPTO_SYNTAX "SyntaxError"
#define CRYPTO_QUOTA "QuotaExceededError"
#define CRYPTO_TYPE_MISMATCH "TypeMismatchError"

/* Throws an error whose `name` is `name` (a DOMException once the global
 * exists, else an Error with that name); returns JS_EXCEPTION. */
JSValue crypto_throw(JSContext *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- bytes copied out of a BufferSource (ArrayBuffer or a view) --- */
typedef struct cbytes {
    uint8_t *p;   /* js_malloc'd (never NULL once filled, even when n == 0) */
    size_t n;
} cbytes;

/* 0, or -1 with a TypeError thrown when v is not a BufferSource. */
int crypto_bytes(JSContext *ctx, JSValueConst v, cbytes *out, const char *what);
/* Zeroes and frees (the bytes may be key material). */
void crypto_bytes_free(JSRuntime *rt, cbytes *b);
JSValue crypto_array_buffer(JSContext *ctx, const uint8_t *p, size_t n);
JSValue crypto_uint8_array(JSContext *ctx, const uint8_t *p, size_t n);

/* --- algorithms --- */
typedef enum {
    ALG_NONE, ALG_SHA1, ALG_SHA256, ALG_SHA384, ALG_SHA512,
    ALG_HMAC, ALG_AES_GCM, ALG_AES_CBC, ALG_ECDSA, ALG_ED25519, ALG_RSASSA,
    ALG_RSA_PSS, ALG_PBKDF2, ALG_HKDF, ALG_AES_CTR, ALG_AES_KW, ALG_RSA_OAEP, ALG_ECDH,
    ALG_X25519,
} crypto_alg;

/* AES keys of every mode: the same bytes and formats, other operations. */
static inline bool crypto_alg_is_aes(crypto_alg a)
{
    return a == ALG_AES_GCM || a == ALG_AES_CBC || a == ALG_AES_CTR || a == ALG_AES_KW;
}
static inline bool crypto_alg_is_rsa(crypto_alg a)
{
    return a == ALG_RSASSA || a == ALG_RSA_PSS || a == ALG_RSA_OAEP;
}

const char *crypto_alg_name(crypto_alg a);
/* The algorithm named by `v` (a string, or an object's `name`), matched
 * case-insensitively; NODE-ED25519 gives ALG_ED25519 with *node set.
 * ALG_NONE with NotSupportedError or a TypeError thrown. */
crypto_alg crypto_alg_of(JSContext *ctx, JSValueConst v, bool *node);
/* A hash member (`hash` of an algorithm object): SHA-*, or ALG_NONE
 * with an exception. */
crypto_alg crypto_hash_of(JSContext *ctx, JSValueConst alg, const char *member);
const EVP_MD *crypto_md(crypto_alg hash);

/* --- CryptoKey --- */
enum {
    USE_ENCRYPT = 1, USE_DECRYPT = 2, USE_SIGN = 4, USE_VERIFY = 8,
    USE_DERIVE_KEY = 16, USE_DERIVE_BITS = 32, USE_WRAP = 64, USE_UNWRAP = 128,
};
typedef enum { KEY_SECRET, KEY_PUBLIC, KEY_PRIVATE } crypto_key_type;
typedef enum { CURVE_NONE, CURVE_P256, CURVE_P384 } crypto_curve;

typedef struct crypto_key {
    crypto_alg alg;
    crypto_key_type type;
    bool extractable;
    bool node;              /* Ed25519 imported as NODE-ED25519 (Workers' name) */
    unsigned usages;        /* USE_* */
    crypto_alg hash;        /* HMAC, RSASSA, RSA-PSS, RSA-OAEP */
    crypto_curve curve;     /* ECDSA, ECDH */
    cbytes secret;          /* HMAC, AES, PBKDF2, HKDF; zeroed when freed */
    size_t hmac_bits;       /* HMAC length in bits (may be < 8 * secret.n) */
    EVP_PKEY *pkey;         /* ECDSA, ECDH, Ed25519, X25519, RSA */
    JSValue algorithm;      /* cached key.algorithm / key.usages objects */
    JSValue usages_obj;
} crypto_key;

/* The key behind v, or NULL with a TypeError thrown. */
crypto_key *crypto_key_of(JSContext *ctx, JSValueConst v);
/* A new CryptoKey object owning k (js_malloc'd; freed on failure). */
JSValue crypto_key_wrap(JSContext *ctx, crypto_key *k);
crypto_key *crypto_key_new(JSContext *ctx, crypto_alg alg, crypto_key_type type);
void crypto_key_free(JSRuntime *rt, crypto_key *k);
/* Parses a usages array into USE_* bits; -1 with a TypeError/SyntaxError. */
int crypto_usages(JSContext *ctx, JSValueConst v, unsigned *out);

/* importKey(format, keyData, algorithm, extractable, usages) as a value
 * (a CryptoKey), or JS_EXCEPTION. */
JSValue crypto_import_key(JSContext *ctx, const char *format, JSValueConst data, JSValueConst alg,
                          bool extractable, unsigned usages);
/* Imports raw secret bytes (deriveKey's result); consumes `bytes`. */
JSValue crypto_import_secret(JSContext *ctx, cbytes *bytes, JSValueConst alg, bool extractable,
                             unsigned usages);
JSValue crypto_export_key(JSContext *ctx, const char *format, crypto_key *k);
/* generateKey: a CryptoKey or {publicKey, privateKey}. */
JSValue crypto_generate_key(JSContext *ctx, JSValueConst alg, bool extractable, unsigned usages);
/* The length in bits deriveKey must produce for a derivedKeyType (AES:
 * its length; HMAC: its length or the hash's block size); -1 with an
 * exception. */
int64_t crypto_derived_key_bits(JSContext *ctx, JSValueConst alg);

/* --- work on libuv's thread pool (PBKDF2 with many iterations, RSA key
 * generation) --- */
typedef struct crypto_job crypto_job;
/* Runs on a pool thread: pure C, no JS. Returns 0 or -1 (OperationError). */
typedef int crypto_work_fn(crypto_job *job);
/* Back on the loop: turns the job's output into the promise's value. */
typedef JSValue crypto_done_fn(JSContext *ctx, crypto_job *job);

struct crypto_job {
    crypto_work_fn *work;
    crypto_done_fn *done;
    /* Inputs and output in plain malloc'd memory (zeroed when freed): the
     * isolate may be gone when the pool thread finishes. */
    uint8_t *in1, *in2, *out;
    size_t in1_len, in2_len, out_len;
    uint32_t iterations;    /* PBKDF2 */
    uint32_t bits, exponent; /* RSA key generation */
    crypto_alg hash;
    crypto_alg key_alg;     /* RSA key generation: RSASSA, RSA-PSS or RSA-OAEP */
    JSValue extra;          /* done's argument (deriveKey's algorithm) */
    bool extractable;
    unsigned usages;
};

/* A promise for the job's result; the job runs on the pool when the
 * isolate has few jobs there, else waits for one of them to finish (a
 * bounded queue: past it, an OperationError is thrown). Takes the job
 * (heap, from crypto_job_new) in every case. */
JSValue crypto_job_run(JSContext *ctx, crypto_job *job);
crypto_job *crypto_job_new(void);
/* (jsapi_crypto_free, in api_internal.h: jobs still on the pool drop
 * their JS values at jsapi_uninstall and free the rest when they come
 * back.) */

/* crypto.subtle (subtle.c) and crypto.DigestStream (digest_stream.c). */
JSValue jsapi_subtle_create(JSContext *ctx);
JSValue jsapi_digest_stream_create(JSContext *ctx);

#endif
