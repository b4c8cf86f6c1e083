// crypto: getRandomValues, randomUUID, subtle and DigestStream.
import { test, eq, deq, throws, rejects, assert, run } from "./harness.js";

const enc = new TextEncoder();
const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

test("getRandomValues fills integer arrays, returns its argument, caps at 65536 bytes", () => {
  const a = new Uint32Array(8);
  eq(crypto.getRandomValues(a), a);
  assert(a.some((x) => x !== 0));
  crypto.getRandomValues(new Uint8Array(65536));
  eq(throws(() => crypto.getRandomValues(new Uint8Array(65537))).name, "QuotaExceededError");
  eq(throws(() => crypto.getRandomValues(new Float32Array(4))).name, "TypeMismatchError");
});

test("randomUUID is a v4 UUID", () => {
  const u = crypto.randomUUID();
  assert(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), u);
  assert(u !== crypto.randomUUID());
});

test("digest SHA-1/256/384/512 known answers; unknown algorithm rejects", async () => {
  const d = (alg, s) => crypto.subtle.digest(alg, enc.encode(s)).then(hex);
  eq(await d("SHA-1", "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  eq(await d("SHA-256", ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  eq((await d({ name: "sha-384" }, "abc")).slice(0, 16), "cb00753f45a35e8b");
  eq((await d("SHA-512", "abc")).slice(0, 16), "ddaf35a193617aba");
  eq((await rejects(crypto.subtle.digest("MD5", enc.encode("x")))).name, "NotSupportedError");
});

test("HMAC sign/verify with raw and jwk import; wrong key fails to verify", async () => {
  const key = await crypto.subtle.importKey("raw", enc.encode("key"), { name: "HMAC", hash: "SHA-256" }, true, ["sign", "verify"]);
  const sig = await crypto.subtle.sign("HMAC", key, enc.encode("The quick brown fox jumps over the lazy dog"));
  eq(hex(sig), "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  eq(await crypto.subtle.verify("HMAC", key, sig, enc.encode("The quick brown fox jumps over the lazy dog")), true);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  eq(jwk.kty, "oct");
  eq(jwk.alg, "HS256");
  const other = await crypto.subtle.importKey("raw", enc.encode("other"), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  eq(await crypto.subtle.verify("HMAC", other, sig, enc.encode("x")), false);
  await rejects(crypto.subtle.sign("HMAC", other, enc.encode("x")), "InvalidAccessError");
  await rejects(crypto.subtle.exportKey("raw", other), "InvalidAccessError");
});

test("AES-GCM round trip; tampering fails with OperationError", async () => {
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode("ad") }, key, enc.encode("secret")));
  eq(ct.length, 6 + 16);
  const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode("ad") }, key, ct);
  eq(new TextDecoder().decode(pt), "secret");
  ct[0] ^= 1;
  await rejects(crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode("ad") }, key, ct), "OperationError");
});

test("AES-CBC known answer (NIST SP 800-38A F.2.1, first block)", async () => {
  const k = Uint8Array.from("2b7e151628aed2a6abf7158809cf4f3c".match(/../g), (h) => parseInt(h, 16));
  const iv = Uint8Array.from("000102030405060708090a0b0c0d0e0f".match(/../g), (h) => parseInt(h, 16));
  const pt = Uint8Array.from("6bc1bee22e409f96e93d7e117393172a".match(/../g), (h) => parseInt(h, 16));
  const key = await crypto.subtle.importKey("raw", k, "AES-CBC", false, ["encrypt", "decrypt"]);
  const ct = await crypto.subtle.encrypt({ name: "AES-CBC", iv }, key, pt);
  eq(hex(ct).slice(0, 32), "7649abac8119b246cee98e9b12e9197d");
  deq(new Uint8Array(await crypto.subtle.decrypt({ name: "AES-CBC", iv }, key, ct)), pt);
});

test("ECDSA P-256: generate, sign, verify, spki/pkcs8/jwk round trip", async () => {
  const kp = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const alg = { name: "ECDSA", hash: "SHA-256" };
  const sig = await crypto.subtle.sign(alg, kp.privateKey, enc.encode("m"));
  eq(sig.byteLength, 64);
  eq(await crypto.subtle.verify(alg, kp.publicKey, sig, enc.encode("m")), true);
  eq(await crypto.subtle.verify(alg, kp.publicKey, sig, enc.encode("n")), false);
  const spki = await crypto.subtle.exportKey("spki", kp.publicKey);
  const pub = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
  eq(await crypto.subtle.verify(alg, pub, sig, enc.encode("m")), true);
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", kp.privateKey);
  await crypto.subtle.importKey("pkcs8", pkcs8, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", kp.publicKey);
  eq(jwk.crv, "P-256");
  eq(kp.publicKey.type, "public");
  eq(kp.privateKey.extractable, true);
  deq(kp.publicKey.usages, ["verify"]);
});

test("Ed25519 sign/verify (RFC 8032 test 1)", async () => {
  const sk = Uint8Array.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60".match(/../g), (h) => parseInt(h, 16));
  const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20, ...sk]);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, "Ed25519", false, ["sign"]);
  const sig = await crypto.subtle.sign("Ed25519", key, new Uint8Array());
  eq(hex(sig).slice(0, 32), "e5564300c360ac729086e2cc806e828a");
  const pub = await crypto.subtle.importKey("raw",
    Uint8Array.from("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".match(/../g), (h) => parseInt(h, 16)),
    "Ed25519", true, ["verify"]);
  eq(await crypto.subtle.verify("Ed25519", pub, sig, new Uint8Array()), true);
});

test("RSASSA-PKCS1-v1_5: generate, sign, verify", async () => {
  const kp = await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, // 2048-bit keygen can pass the 50 ms CPU budget under ASan
      publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true, ["sign", "verify"]);
  const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", kp.privateKey, enc.encode("m"));
  eq(sig.byteLength, 128);
  eq(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", kp.publicKey, sig, enc.encode("m")), true);
});

test("RSA-PSS: sign, verify, saltLength, JWK as PS256, and a signature made elsewhere", async () => {
  const kp = await crypto.subtle.generateKey(
    { name: "RSA-PSS", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true, ["sign", "verify"]);
  eq(kp.publicKey.algorithm.name, "RSA-PSS");
  eq(kp.publicKey.algorithm.hash.name, "SHA-256");
  const pss = { name: "RSA-PSS", saltLength: 32 };
  const sig = await crypto.subtle.sign(pss, kp.privateKey, enc.encode("m"));
  eq(sig.byteLength, 128);
  eq(await crypto.subtle.verify(pss, kp.publicKey, sig, enc.encode("m")), true);
  eq(await crypto.subtle.verify(pss, kp.publicKey, sig, enc.encode("n")), false);
  eq(await crypto.subtle.verify({ name: "RSA-PSS", saltLength: 20 }, kp.publicKey, sig, enc.encode("m")), false);
  // Salted: two signatures of one message differ.
  assert(hex(sig) !== hex(await crypto.subtle.sign(pss, kp.privateKey, enc.encode("m"))));
  eq((await rejects(crypto.subtle.sign("RSA-PSS", kp.privateKey, enc.encode("m")))).name, "TypeError");
  const jwk = await crypto.subtle.exportKey("jwk", kp.publicKey);
  eq(jwk.alg, "PS256");
  // A PS256 JWS signed by Node.js (tests/apps/libs/vectors.json).
  const pub = await crypto.subtle.importKey("jwk", { kty: "RSA", e: "AQAB",
    n: "m9YdCYXvs6KfdkqVmwV-65n8_J8S9fhQ284tcTodqOgSACBmo6pGnmbzpg8ftsHS9spJH7U4pnjkjj4G35ddbJt5z0YiZeJIyKnwjF7dXaPhHTRUqyQCrWHLiEtopm1sVc2hI39GAUMO2OFzL6EOX9tTk99k267Qar1Ax-YvBY5RbE5qvzD0K4rA5GHIFVmWfT8PGR2Ns3t0WPQv8P51cv3VEY47I3mJkpoIkAwtTwV3ngCLMSzDo5cY1V9WVozQFecJ6pmhyifCKqOBKg4484nGaIvr3lcUcHXO22F3BmSglj_jROcGyuCSTM7hxjhr_58L4E6n53SBIliWFWpXjw" }, { name: "RSA-PSS", hash: "SHA-256" }, false, ["verify"]);
  const b64u = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const signed = enc.encode("eyJhbGciOiJQUzI1NiIsImtpZCI6ImstcHMyNTYifQ.c2lnbmVkIGVsc2V3aGVyZQ");
  const theirs = b64u("FMEmY712-6VVUUS9-XDLcSmzEzw2bExUJq-B54anCz7Icj_ejcFDu-FakEKPKo0K7TVduvgBaK64YyvoPZ-MlJZhF7eizBL_SkLXQAkzM_gw3TwJmv0e1JL8N5JXB0X8bswgmgAUFnOiuOHs0ET8bpJN7kNnG7MLojAN-lmQ4PszYyf5blOn0yQx_4J-c8HwnvsV0TMJThWzmEuyXDmrW93FWPVyW1K4r21Xz1Itz2kKNk_jJhVvzklI8YbmhQm15gXrovRLk_pE6RQ0m9e86vNpuejeEECHPl6s-sEYz8qgW63EzdZcfTbQL9wM82RnFyKFgZaf4WRqfdh7pEpvKw");
  eq(await crypto.subtle.verify(pss, pub, theirs, signed), true);
  // The same modulus imported as an RSASSA-PKCS1-v1_5 key is not an RSA-PSS key.
  const pkcs1 = await crypto.subtle.importKey("jwk", { kty: "RSA", e: jwk.e, n: jwk.n },
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
  eq((await rejects(crypto.subtle.verify(pss, pkcs1, sig, enc.encode("m")))).name, "InvalidAccessError");
});

test("PBKDF2 and HKDF deriveBits known answers", async () => {
  const pw = await crypto.subtle.importKey("raw", enc.encode("password"), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", salt: enc.encode("salt"), iterations: 1, hash: "SHA-1" }, pw, 160);
  eq(hex(bits), "0c60c80f961f0e71f3a9b524af6012062fe037a6");
  const ikm = await crypto.subtle.importKey("raw", new Uint8Array(22).fill(0x0b), "HKDF", false, ["deriveBits"]);
  const okm = await crypto.subtle.deriveBits({
    name: "HKDF", hash: "SHA-256",
    salt: Uint8Array.from("000102030405060708090a0b0c".match(/../g), (h) => parseInt(h, 16)),
    info: Uint8Array.from("f0f1f2f3f4f5f6f7f8f9".match(/../g), (h) => parseInt(h, 16)),
  }, ikm, 336);
  eq(hex(okm).slice(0, 32), "3cb25f25faacd57a90434f64d0362f2a");
});

test("bad usages and algorithm mismatches reject", async () => {
  await rejects(crypto.subtle.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["sign"]), "SyntaxError");
  const key = await crypto.subtle.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt"]);
  await rejects(crypto.subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, key, new Uint8Array(16)), "InvalidAccessError");
  await rejects(crypto.subtle.importKey("raw", new Uint8Array(15), "AES-GCM", false, ["encrypt"]), "DataError");
});

test("CryptoKey is not constructible; algorithm is reported", async () => {
  throws(() => new CryptoKey(), TypeError);
  const k = await crypto.subtle.importKey("raw", new Uint8Array(16), "AES-CBC", false, ["encrypt"]);
  eq(k.algorithm.name, "AES-CBC");
  eq(k.algorithm.length, 128);
});

test("DigestStream digests what is written", async () => {
  const ds = new crypto.DigestStream("SHA-256");
  const w = ds.getWriter();
  await w.write(enc.encode("a"));
  await w.write(enc.encode("bc"));
  await w.close();
  eq(hex(await ds.digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("timingSafeEqual, as Workers has it: synchronous, same lengths only", () => {
  // Webhook signature checks written for Workers call it; it was missing.
  const s = crypto.subtle;
  eq(s.timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  eq(s.timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  eq(s.timingSafeEqual(new Uint8Array([1, 2]).buffer, new DataView(new Uint8Array([0, 1, 2]).buffer, 1)), true);
  eq(s.timingSafeEqual(new ArrayBuffer(0), new Uint8Array(0)), true);
  throws(() => s.timingSafeEqual(new Uint8Array(2), new Uint8Array(3)), TypeError);
  throws(() => s.timingSafeEqual("ab", "ab"), TypeError);
  throws(() => s.timingSafeEqual(new Uint8Array(1)), TypeError);
});

const unhex = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

test("AES-CTR known answers (NIST SP 800-38A F.5.1), counter wrapping within length bits", async () => {
  const key = await crypto.subtle.importKey("raw", unhex("2b7e151628aed2a6abf7158809cf4f3c"), "AES-CTR", true, ["encrypt", "decrypt"]);
  const counter = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  const pt = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" +
                   "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  const ct = await crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 64 }, key, pt);
  eq(hex(ct), "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff" +
              "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
  deq(new Uint8Array(await crypto.subtle.decrypt({ name: "AES-CTR", counter, length: 64 }, key, ct)), pt);
  // length 8: the counter's last byte wraps ff -> 00 without carrying into
  // the byte left of it (vector from Node's WebCrypto).
  const wrapped = await crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 8 }, key, pt.subarray(0, 48));
  eq(hex(wrapped), "874d6191b620e3261bef6864990db6cee3256531c56fd498e4670c36587faba6253c594b7231e8509db37a4397a17174");
  // An odd length, not a whole block.
  eq(hex(await crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 128 }, key, pt.subarray(0, 5))), "874d6191b6");
  // 3 blocks do not fit a 1-bit counter; the counter is 16 bytes; length 1..128.
  await rejects(crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 1 }, key, pt.subarray(0, 48)), "OperationError");
  await crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 1 }, key, pt.subarray(0, 32));
  await rejects(crypto.subtle.encrypt({ name: "AES-CTR", counter: new Uint8Array(12), length: 64 }, key, pt), "OperationError");
  await rejects(crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 0 }, key, pt), "OperationError");
  await rejects(crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 129 }, key, pt), "OperationError");
  await rejects(crypto.subtle.encrypt({ name: "AES-CTR", counter }, key, pt), TypeError);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  eq(jwk.alg, "A128CTR");
  const g = await crypto.subtle.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt"]);
  deq(g.algorithm, { name: "AES-CTR", length: 256 });
  await rejects(crypto.subtle.importKey("jwk", { ...jwk, alg: "A128GCM" }, "AES-CTR", false, ["encrypt"]), "DataError");
});

test("AES-KW wrapKey/unwrapKey known answers (RFC 3394 4.1, 4.6); integrity failure", async () => {
  const kek = await crypto.subtle.importKey("raw", unhex("000102030405060708090a0b0c0d0e0f"), "AES-KW", true, ["wrapKey", "unwrapKey"]);
  deq(kek.usages, ["wrapKey", "unwrapKey"]);
  const data = await crypto.subtle.importKey("raw", unhex("00112233445566778899aabbccddeeff"), "AES-GCM", true, ["encrypt"]);
  const w = await crypto.subtle.wrapKey("raw", data, kek, "AES-KW");
  eq(hex(w), "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
  const back = await crypto.subtle.unwrapKey("raw", w, kek, { name: "AES-KW" }, "AES-GCM", true, ["decrypt"]);
  eq(hex(await crypto.subtle.exportKey("raw", back)), "00112233445566778899aabbccddeeff");
  deq(back.algorithm, { name: "AES-GCM", length: 128 });
  deq(back.usages, ["decrypt"]);
  const kek256 = await crypto.subtle.importKey("raw", unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), "AES-KW", false, ["wrapKey"]);
  const k256 = await crypto.subtle.importKey("raw", unhex("00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f"), { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  eq(hex(await crypto.subtle.wrapKey("raw", k256, kek256, "AES-KW")),
     "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21");
  const bad = new Uint8Array(w);
  bad[3] ^= 1;
  await rejects(crypto.subtle.unwrapKey("raw", bad, kek, "AES-KW", "AES-GCM", true, ["decrypt"]), "OperationError");
  // AES-KW does not encrypt; the wrapping key needs the usage; the key must be extractable.
  await rejects(crypto.subtle.encrypt("AES-KW", kek, new Uint8Array(16)), "NotSupportedError");
  await rejects(crypto.subtle.wrapKey("raw", data, kek256, "AES-KW").then(() => crypto.subtle.unwrapKey("raw", w, kek256, "AES-KW", "AES-GCM", true, ["decrypt"])), "InvalidAccessError");
  const fixed = await crypto.subtle.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt"]);
  await rejects(crypto.subtle.wrapKey("raw", fixed, kek, "AES-KW"), "InvalidAccessError");
  eq((await crypto.subtle.exportKey("jwk", kek)).alg, "A128KW");
  await rejects(crypto.subtle.importKey("raw", new Uint8Array(16), "AES-KW", false, ["encrypt"]), "SyntaxError");
  // A JWK wraps as its JSON text: 8-byte multiples only for AES-KW, any length for AES-GCM.
  const gcm = await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["wrapKey", "unwrapKey"]);
  const iv = new Uint8Array(12);
  const wj = await crypto.subtle.wrapKey("jwk", data, gcm, { name: "AES-GCM", iv });
  const uj = await crypto.subtle.unwrapKey("jwk", wj, gcm, { name: "AES-GCM", iv }, "AES-GCM", true, ["encrypt"]);
  eq(hex(await crypto.subtle.exportKey("raw", uj)), "00112233445566778899aabbccddeeff");
  // Plain bytes that are not JSON: DataError.
  const junk = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, (await crypto.subtle.importKey("raw", await crypto.subtle.exportKey("raw", data), "AES-GCM", false, ["encrypt"])), new Uint8Array(3));
  const gcm2 = await crypto.subtle.importKey("raw", unhex("00112233445566778899aabbccddeeff"), "AES-GCM", false, ["unwrapKey"]);
  await rejects(crypto.subtle.unwrapKey("jwk", junk, gcm2, { name: "AES-GCM", iv }, "AES-GCM", true, ["encrypt"]), "DataError");
});

test("wrapKey/unwrapKey with AES-CBC and AES-CTR", async () => {
  const key = await crypto.subtle.importKey("raw", unhex("000102030405060708090a0b0c0d0e0f"), { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  for (const [name, params] of [["AES-CBC", { iv: new Uint8Array(16) }], ["AES-CTR", { counter: new Uint8Array(16), length: 64 }]]) {
    const w = await crypto.subtle.importKey("raw", new Uint8Array(32).fill(7), name, false, ["wrapKey", "unwrapKey", "encrypt"]);
    const alg = { name, ...params };
    const wrapped = await crypto.subtle.wrapKey("raw", key, w, alg);
    // wrapKey of raw is encrypt of the exported bytes.
    eq(hex(wrapped), hex(await crypto.subtle.encrypt(alg, w, unhex("000102030405060708090a0b0c0d0e0f"))), name);
    const k = await crypto.subtle.unwrapKey("raw", wrapped, w, alg, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    eq(hex(await crypto.subtle.sign("HMAC", k, enc.encode("m"))), hex(await crypto.subtle.sign("HMAC", key, enc.encode("m"))), name);
  }
});

// A 1024-bit key and ciphertexts made by Node.js (crypto.publicEncrypt).
const OAEP = {
  pk8: "MIICeAIBADANBgkqhkiG9w0BAQEFAASCAmIwggJeAgEAAoGBANKDcf9dMjSnkHtmcKIMkYWo/3J1jIUwhqaAuhg+1XMEPwadZTzh8yrb0E1NOiC/oM0cqb4UicpvTzDWR7/665hehirOdiH21DVkI6rI/dmvn7PodZ4GJ4WefAhbcKUlt9cJW+YozMp/Q+uPENkwAejMIcmtn1D3ALubV+CkCi0jAgMBAAECgYEAw4QZqJciPg0y/6lRCvCpZ35iYigS7tD2/kWokUQqcryK3NXqZPVmJ3QoruL/DdNswZPRgx0ILN/cqPsbgI7Hp/jlndguJd5/KnLjoH5IdEq/RyznDCSIWgJ18svOK6+l8tBVvRlSsYPZ6egLIYmqobmjBYCA2mW+C+gBplYMcqECQQDyRZy/VVHEL5pA9vjIuyTP0qqTneHO5QFms6U2m8UYaaRMkArvzZjxfLsi1DOySij8LkNxaUDNARK6oEqAH8YNAkEA3nElV+ff6Hb6LisVN3zJWf2DWZgn1hHRtgIRrZnPjrhcEA1tcBPBqxHgje35XmARn3JTOp6xGf9za+xePN6j7wJBAIp0B+E8VA8nGSNZQNIOSTpPbVYRGzPOod9ceOVdXeTWsqNiii2DNI2FN7juxmB0izmbAsX0XakKnPZ0lj7kaZ0CQATStTmTuIIk2kXX/0zFsuP1oDx4FR0KI97rapC2Dg8NJkne0KmmdAOOjqzlJQwLzzYC15Ukzbg/lrQXWu+88BcCQQC9Bv1+tn9d5r41y5RLHJcu1ZxqZ47pu+1MoT6mLtKJNQNCbYr5p1aZo4T8EPt3DRPrbhQZQVpKcoDQpzSbcNKZ",
  spki: "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDSg3H/XTI0p5B7ZnCiDJGFqP9ydYyFMIamgLoYPtVzBD8GnWU84fMq29BNTTogv6DNHKm+FInKb08w1ke/+uuYXoYqznYh9tQ1ZCOqyP3Zr5+z6HWeBieFnnwIW3ClJbfXCVvmKMzKf0PrjxDZMAHozCHJrZ9Q9wC7m1fgpAotIwIDAQAB",
  ct256: "vagZnzHulsw/ZuVp9GeGUFh7iM1RHPDZb3uXKZWfyE6qdaXtIekO3yPNBOkJjHrp1rhL9NDqdQNPuV7DXgpZQzZoTV+Geaf2rbgavFQhmOD/MNt50XQubL/6Qt1mC5N7rNW/BKheMAJdOi/a0uA3+OP6vcEX8T4hI15ZN6/1Exo=",
  ct1: "SjcnY2chSMizx48mVFVL0Er8UKlp0ifrS59jb8ETIFXABD5qRiYZ8CCpjkptdjcIzeBMvNT6v2bv/shVKCGj1Usfo5XF1gNJ75Qx/NwTLeVdrHeAEtxGyPwNPqnbT+Q5CIpDnVXy3fX9OO1meSCMGl6ggS4xryKxaJWRtGT8PFw=",
};

test("RSA-OAEP: decrypts Node's SHA-256 (labelled) and SHA-1 ciphertexts; round trip; JWK alg; errors", async () => {
  const dec = new TextDecoder();
  const priv = await crypto.subtle.importKey("pkcs8", unb64(OAEP.pk8), { name: "RSA-OAEP", hash: "SHA-256" }, true, ["decrypt", "unwrapKey"]);
  const pub = await crypto.subtle.importKey("spki", unb64(OAEP.spki), { name: "RSA-OAEP", hash: "SHA-256" }, true, ["encrypt", "wrapKey"]);
  const label = enc.encode("label");
  eq(dec.decode(await crypto.subtle.decrypt({ name: "RSA-OAEP", label }, priv, unb64(OAEP.ct256))), "oaep from node");
  await rejects(crypto.subtle.decrypt({ name: "RSA-OAEP" }, priv, unb64(OAEP.ct256)), "OperationError");
  await rejects(crypto.subtle.decrypt({ name: "RSA-OAEP", label: enc.encode("other") }, priv, unb64(OAEP.ct256)), "OperationError");
  const priv1 = await crypto.subtle.importKey("pkcs8", unb64(OAEP.pk8), { name: "RSA-OAEP", hash: "SHA-1" }, false, ["decrypt"]);
  eq(dec.decode(await crypto.subtle.decrypt("RSA-OAEP", priv1, unb64(OAEP.ct1))), "sha-1, no label");
  // Randomized: two encryptions differ, both decrypt.
  const c1 = await crypto.subtle.encrypt({ name: "RSA-OAEP", label }, pub, enc.encode("m"));
  const c2 = await crypto.subtle.encrypt({ name: "RSA-OAEP", label }, pub, enc.encode("m"));
  eq(c1.byteLength, 128);
  assert(hex(c1) !== hex(c2));
  eq(dec.decode(await crypto.subtle.decrypt({ name: "RSA-OAEP", label }, priv, c2)), "m");
  // At most k - 2 hLen - 2 = 62 bytes under SHA-256 with a 1024-bit key.
  await crypto.subtle.encrypt("RSA-OAEP", pub, new Uint8Array(62));
  await rejects(crypto.subtle.encrypt("RSA-OAEP", pub, new Uint8Array(63)), "OperationError");
  // Wrapping an AES key.
  const aes = await crypto.subtle.importKey("raw", new Uint8Array(16).fill(9), "AES-GCM", true, ["encrypt"]);
  const w = await crypto.subtle.wrapKey("raw", aes, pub, "RSA-OAEP");
  const u = await crypto.subtle.unwrapKey("raw", w, priv, "RSA-OAEP", "AES-GCM", true, ["encrypt"]);
  eq(hex(await crypto.subtle.exportKey("raw", u)), "09".repeat(16));
  const jwk = await crypto.subtle.exportKey("jwk", pub);
  eq(jwk.alg, "RSA-OAEP-256");
  eq((await crypto.subtle.exportKey("jwk", await crypto.subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e }, { name: "RSA-OAEP", hash: "SHA-1" }, true, ["encrypt"]))).alg, "RSA-OAEP");
  await rejects(crypto.subtle.importKey("jwk", jwk, { name: "RSA-OAEP", hash: "SHA-384" }, true, ["encrypt"]), "DataError");
  deq(pub.algorithm.name, "RSA-OAEP");
  eq(pub.algorithm.modulusLength, 1024);
  await rejects(crypto.subtle.importKey("spki", unb64(OAEP.spki), { name: "RSA-OAEP", hash: "SHA-256" }, true, ["decrypt"]), "SyntaxError");
  await rejects(crypto.subtle.decrypt("RSA-OAEP", pub, c1), "InvalidAccessError");
  await rejects(crypto.subtle.sign("RSA-OAEP", priv, c1), "NotSupportedError");
});

test("RSA-OAEP generateKey splits the usages between the pair", async () => {
  const kp = await crypto.subtle.generateKey({ name: "RSA-OAEP", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    false, ["encrypt", "decrypt", "wrapKey", "unwrapKey"]);
  deq(kp.publicKey.usages, ["encrypt", "wrapKey"]);
  deq(kp.privateKey.usages, ["decrypt", "unwrapKey"]);
  const ct = await crypto.subtle.encrypt("RSA-OAEP", kp.publicKey, enc.encode("x"));
  eq(new TextDecoder().decode(await crypto.subtle.decrypt("RSA-OAEP", kp.privateKey, ct)), "x");
  await rejects(crypto.subtle.generateKey({ name: "RSA-OAEP", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["encrypt"]), "SyntaxError");
});

test("X25519 deriveBits (RFC 7748 6.1) with raw, pkcs8, spki and JWK (RFC 8037 A.6) keys", async () => {
  const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  const pk8 = (d) => unhex("302e020100300506032b656e04220420" + d);
  const alice = await crypto.subtle.importKey("pkcs8", pk8("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), "X25519", true, ["deriveBits"]);
  const bobPub = await crypto.subtle.importKey("raw", unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), "X25519", true, []);
  eq(hex(await crypto.subtle.deriveBits({ name: "X25519", public: bobPub }, alice, 256)), shared);
  eq(hex(await crypto.subtle.deriveBits({ name: "X25519", public: bobPub }, alice, null)), shared);
  eq(hex(await crypto.subtle.deriveBits({ name: "X25519", public: bobPub }, alice, 12)), "4a50");
  await rejects(crypto.subtle.deriveBits({ name: "X25519", public: bobPub }, alice, 264), "OperationError");
  // The other side, as JWKs (RFC 8037 A.6: Bob's key and the ephemeral key).
  const bob = await crypto.subtle.importKey("pkcs8", pk8("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"), "X25519", false, ["deriveBits"]);
  const epk = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "X25519", x: "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo" }, "X25519", true, []);
  eq(hex(await crypto.subtle.deriveBits({ name: "X25519", public: epk }, bob, 256)), shared);
  const ejwk = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "X25519", x: "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo", d: "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo" }, "X25519", true, ["deriveBits"]);
  eq(hex(await crypto.subtle.deriveBits({ name: "X25519", public: bobPub }, ejwk, 256)), shared);
  const jwk = await crypto.subtle.exportKey("jwk", bobPub);
  eq(jwk.crv, "X25519");
  eq(jwk.x, "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08");
  eq(hex(await crypto.subtle.exportKey("spki", bobPub)), "302a300506032b656e032100de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  eq(hex(await crypto.subtle.exportKey("pkcs8", alice)), "302e020100300506032b656e0422042077076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  // deriveKey to AES-KW and HMAC.
  const kw = await crypto.subtle.deriveKey({ name: "X25519", public: bobPub }, await crypto.subtle.importKey("pkcs8", pk8("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), "X25519", false, ["deriveKey"]),
    { name: "AES-KW", length: 128 }, true, ["wrapKey"]);
  eq(hex(await crypto.subtle.exportKey("raw", kw)), shared.slice(0, 32));
  // The small-order point 0 gives an all-zero secret: OperationError.
  const zero = await crypto.subtle.importKey("raw", new Uint8Array(32), "X25519", false, []);
  await rejects(crypto.subtle.deriveBits({ name: "X25519", public: zero }, alice, 256), "OperationError");
  await rejects(crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, "X25519", false, []), "DataError");
  await rejects(crypto.subtle.importKey("raw", new Uint8Array(32), "X25519", false, ["deriveBits"]), "SyntaxError");
});

test("X25519 and ECDH generateKey; a pair agrees with itself; spec errors", async () => {
  const a = await crypto.subtle.generateKey("X25519", true, ["deriveBits", "deriveKey"]);
  const b = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  deq(a.publicKey.usages, []);
  deq(a.privateKey.usages, ["deriveKey", "deriveBits"]);
  eq(hex(await crypto.subtle.deriveBits({ name: "X25519", public: b.publicKey }, a.privateKey, 256)),
     hex(await crypto.subtle.deriveBits({ name: "X25519", public: a.publicKey }, b.privateKey, 256)));
  await rejects(crypto.subtle.generateKey("X25519", true, ["sign"]), "SyntaxError");
  const p384 = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, true, ["deriveBits"]);
  const q384 = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, true, ["deriveBits"]);
  const z = await crypto.subtle.deriveBits({ name: "ECDH", public: q384.publicKey }, p384.privateKey, null);
  eq(z.byteLength, 48);
  eq(hex(z), hex(await crypto.subtle.deriveBits({ name: "ECDH", public: p384.publicKey }, q384.privateKey, 384)));
  deq(p384.publicKey.algorithm, { name: "ECDH", namedCurve: "P-384" });
  const p256 = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
  // Another curve, another algorithm, a private key as `public`, no `public`: as the spec says.
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: p256.publicKey }, p384.privateKey, 256), "InvalidAccessError");
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: a.publicKey }, p384.privateKey, 256), "InvalidAccessError");
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: q384.privateKey }, p384.privateKey, 256), "InvalidAccessError");
  await rejects(crypto.subtle.deriveBits({ name: "ECDH" }, p384.privateKey, 256), TypeError);
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: {} }, p384.privateKey, 256), TypeError);
  const ecdsa = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"]);
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: ecdsa.publicKey }, p384.privateKey, 256), "InvalidAccessError");
  await rejects(crypto.subtle.deriveBits({ name: "X25519", public: a.publicKey }, p384.privateKey, 256), "InvalidAccessError");
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: q384.publicKey }, p384.privateKey, 392), "OperationError");
});

test("ECDH P-256 agrees with Node.js; deriveKey to AES-GCM and HMAC; raw/spki/jwk", async () => {
  // Node's crypto.diffieHellman of a's private and b's public key.
  const a = { kty: "EC", crv: "P-256", x: "ydL2ArEoI3r-ac82JeiNV63GQslSZ3tPWqK3kaGsQCo", y: "cpx7A4vEPM-RJrRwiXCr0BRn-TE8Cc5_bGI-N-9jnR4", d: "ZYXlxcBxvMjvknJF9poVFudjiGKDEfsfiOizkF3puh0" };
  const b = { kty: "EC", crv: "P-256", x: "7NCc2P1r4zgPlcHT_9ApKnoUCSw1fX44k-kvBrpH_9I", y: "8tE9DM_jkoyFRfaX9fgF_4ZPu8w3HCQm3pTGqL7F-6o" };
  const z = "05607dada331da8a166d8150c23d2b89d138f279f99317605272acd89752de6f";
  const alg = { name: "ECDH", namedCurve: "P-256" };
  const priv = await crypto.subtle.importKey("jwk", a, alg, true, ["deriveBits", "deriveKey"]);
  const pub = await crypto.subtle.importKey("jwk", b, alg, true, []);
  eq(hex(await crypto.subtle.deriveBits({ name: "ECDH", public: pub }, priv, 256)), z);
  eq(hex(await crypto.subtle.deriveBits({ name: "ECDH", public: pub }, priv, 128)), z.slice(0, 32));
  // The same public key through raw and spki.
  const raw = await crypto.subtle.exportKey("raw", pub);
  eq(raw.byteLength, 65);
  const pub2 = await crypto.subtle.importKey("raw", raw, alg, true, []);
  const pub3 = await crypto.subtle.importKey("spki", await crypto.subtle.exportKey("spki", pub2), alg, true, []);
  eq(hex(await crypto.subtle.deriveBits({ name: "ECDH", public: pub3 }, priv, 256)), z);
  const priv2 = await crypto.subtle.importKey("pkcs8", await crypto.subtle.exportKey("pkcs8", priv), alg, false, ["deriveKey"]);
  const aes = await crypto.subtle.deriveKey({ name: "ECDH", public: pub }, priv2, { name: "AES-GCM", length: 256 }, true, ["encrypt"]);
  eq(hex(await crypto.subtle.exportKey("raw", aes)), z);
  const mac = await crypto.subtle.deriveKey({ name: "ECDH", public: pub }, priv, { name: "HMAC", hash: "SHA-256", length: 256 }, true, ["sign"]);
  eq(hex(await crypto.subtle.exportKey("raw", mac)), z);
  // HMAC's default length is the hash's block, 512 bits: more than P-256 gives.
  await rejects(crypto.subtle.deriveKey({ name: "ECDH", public: pub }, priv, { name: "HMAC", hash: "SHA-256" }, true, ["sign"]), "OperationError");
  const jwk = await crypto.subtle.exportKey("jwk", priv);
  deq([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.d], ["EC", "P-256", a.x, a.y, a.d]);
  await rejects(crypto.subtle.importKey("jwk", b, { name: "ECDH", namedCurve: "P-384" }, true, []), "DataError");
  await rejects(crypto.subtle.importKey("jwk", b, alg, true, ["deriveBits"]), "SyntaxError");
  await rejects(crypto.subtle.deriveBits({ name: "ECDH", public: pub }, priv2, 256), "InvalidAccessError");
});

export default run();
