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

export default run();
