// Widely used npm libraries as Workers code uses them, bundled by esbuild
// at test time (tests/e2e/test_apps.py) from the npm registry and served
// unmodified by atoll: jose (JWS/JWT with HS256, RS256, PS256, ES256,
// EdDSA; JWK and SPKI import/export, thumbprints; JWE with dir, A128KW,
// A256KW, RSA-OAEP-256, ECDH-ES (P-256, X25519) and ECDH-ES+A128KW, and
// AES-GCM / AES-CBC+HMAC content encryption), @tsndr/cloudflare-worker-jwt, zod, nanoid,
// uuid, cookie, date-fns, marked, superjson and devalue. Each route
// answers JSON (or HTML) the test checks exactly; the keys and tokens
// signed elsewhere come from the test.
import * as jose from "jose";
import jwt from "@tsndr/cloudflare-worker-jwt";
import { z } from "zod";
import { nanoid, customAlphabet } from "nanoid";
import { v4 as uuidv4, v5 as uuidv5, v7 as uuidv7, validate as uuidValidate, version as uuidVersion } from "uuid";
import { parseCookie, stringifySetCookie } from "cookie";
import { addDays, differenceInCalendarDays, formatISO, format, parseISO, isBefore } from "date-fns";
import { marked } from "marked";
import superjson from "superjson";
import * as devalue from "devalue";

const json = (v, status = 200, headers = {}) =>
  new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json", ...headers } });

// A library failing is a finding, not a crash: its error's name and
// message go back to the test.
const failure = (e) => json({ error: e && e.name, message: e && e.message, code: e && e.code }, 500);

const routes = {
  // --- jose: JWS / JWT ---
  // Signs `payload` with the private JWK `jwk` under `alg` (as compact
  // JWS with a fixed header, so deterministic algorithms give fixed tokens).
  "POST /jose/sign": async (req) => {
    const { jwk, alg, payload } = await req.json();
    const key = await jose.importJWK(jwk, alg);
    const token = await new jose.CompactSign(new TextEncoder().encode(payload))
      .setProtectedHeader({ alg, kid: jwk.kid })
      .sign(key);
    return json({ token });
  },
  // Verifies a compact JWS under a public JWK (or an oct JWK for HMAC).
  "POST /jose/verify": async (req) => {
    const { jwk, alg, token } = await req.json();
    const key = await jose.importJWK(jwk, alg);
    try {
      const { payload, protectedHeader } = await jose.compactVerify(token, key, { algorithms: [alg] });
      return json({ valid: true, payload: new TextDecoder().decode(payload), header: protectedHeader });
    } catch (e) {
      return json({ valid: false, code: e.code, message: e.message });
    }
  },
  // A JWT with claims, signed with a key generated here (or, for RSA,
  // whose generation takes more than the 50 ms CPU budget, the test's
  // key pair); returns the token and the public JWK for the test to
  // verify elsewhere.
  "POST /jose/jwt": async (req) => {
    const { alg, sub, priv, pub } = await req.json();
    const opts = alg === "EdDSA" ? { crv: "Ed25519", extractable: true } : { extractable: true };
    const { publicKey, privateKey } = priv
      ? { publicKey: await jose.importJWK(pub, alg), privateKey: await jose.importJWK(priv, alg) }
      : await jose.generateKeyPair(alg, opts);
    const token = await new jose.SignJWT({ sub, role: "admin" })
      .setProtectedHeader({ alg, typ: "JWT" })
      .setIssuedAt(1700000000)
      .setIssuer("urn:atoll")
      .setAudience("urn:test")
      .setExpirationTime(4102444800)
      .sign(privateKey);
    const { payload } = await jose.jwtVerify(token, publicKey, { issuer: "urn:atoll", audience: "urn:test" });
    let wrongAudience;
    try {
      await jose.jwtVerify(token, publicKey, { audience: "urn:other" });
    } catch (e) {
      wrongAudience = e.code;
    }
    const jwk = await jose.exportJWK(publicKey);
    const spki = await jose.exportSPKI(publicKey);
    const again = await jose.importSPKI(spki, alg);
    const viaSpki = (await jose.jwtVerify(token, again)).payload.sub;
    return json({ token, jwk, payload, wrongAudience, viaSpki, spkiHead: spki.split("\n")[0] });
  },
  // HS256 JWT with a secret from the test, and its verification.
  "POST /jose/hs256": async (req) => {
    const { secret, sub, token } = await req.json();
    const key = new TextEncoder().encode(secret);
    const signed = await new jose.SignJWT({ sub })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt(1700000000)
      .sign(key);
    let verified;
    try {
      verified = (await jose.jwtVerify(token, key)).payload;
    } catch (e) {
      verified = { code: e.code };
    }
    return json({ signed, verified, decoded: jose.decodeJwt(signed), header: jose.decodeProtectedHeader(signed) });
  },
  "POST /jose/thumbprint": async (req) => {
    const jwk = await req.json();
    return json({ thumbprint: await jose.calculateJwkThumbprint(jwk, "sha256") });
  },
  // JWE: encrypts with each content encryption and decrypts again; also
  // decrypts a token the test made elsewhere with `jwk` (oct, alg dir).
  "POST /jose/jwe": async (req) => {
    const { plaintext, token, jwk } = await req.json();
    const data = new TextEncoder().encode(plaintext);
    const out = {};
    for (const enc of ["A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512"]) {
      try {
        const k = await jose.generateSecret(enc, { extractable: true });
        const jwe = await new jose.CompactEncrypt(data).setProtectedHeader({ alg: "dir", enc }).encrypt(k);
        const { plaintext: pt } = await jose.compactDecrypt(jwe, k);
        out[enc] = [new TextDecoder().decode(pt), jwe.split(".").length];
      } catch (e) {
        out[enc] = `${e.name}: ${e.message}`;
      }
    }
    try {
      const { plaintext: pt, protectedHeader } = await jose.compactDecrypt(token, await jose.importJWK(jwk, "dir"));
      out.external = { plaintext: new TextDecoder().decode(pt), header: protectedHeader };
    } catch (e) {
      out.external = `${e.name}: ${e.message}`;
    }
    return json(out);
  },
  // JWE key management: for each case of `cases` (the recipient's keys
  // and a token made elsewhere, by alg: A128KW, A256KW, RSA-OAEP-256,
  // ECDH-ES on P-256 and X25519, ECDH-ES+A128KW), encrypts to the public
  // key and decrypts again, decrypts the token made elsewhere, and hands
  // back the token made here for the test to decrypt elsewhere. ECDH-ES
  // also with a recipient key pair generated here.
  "POST /jose/jwe-kw": async (req) => {
    const { plaintext, cases } = await req.json();
    const dec = (b) => new TextDecoder().decode(b);
    const out = {};
    for (const [name, c] of Object.entries(cases)) {
      if (name === "_comment") continue;
      try {
        const pub = await jose.importJWK(c.pub, c.alg);
        const priv = await jose.importJWK(c.priv, c.alg);
        const token = await new jose.CompactEncrypt(new TextEncoder().encode(plaintext))
          .setProtectedHeader({ alg: c.alg, enc: c.enc }).encrypt(pub);
        const r = { roundtrip: dec((await jose.compactDecrypt(token, priv)).plaintext), token };
        const ext = await jose.compactDecrypt(c.token, priv);
        r.external = [dec(ext.plaintext), ext.protectedHeader.kid];
        if (c.alg === "ECDH-ES") {
          const kp = await jose.generateKeyPair("ECDH-ES", { crv: c.pub.crv });
          const t = await new jose.CompactEncrypt(new TextEncoder().encode(plaintext))
            .setProtectedHeader({ alg: "ECDH-ES", enc: c.enc }).encrypt(kp.publicKey);
          r.generated = dec((await jose.compactDecrypt(t, kp.privateKey)).plaintext);
        }
        out[name] = r;
      } catch (e) {
        out[name] = `${e.name}: ${e.message}`;
      }
    }
    return json(out);
  },

  // --- @tsndr/cloudflare-worker-jwt ---
  "POST /cfjwt": async (req) => {
    const { secret, token } = await req.json();
    const signed = await jwt.sign({ sub: "bob", iat: 1700000000 }, secret);
    const ok = await jwt.verify(token, secret);
    const bad = await jwt.verify(token, secret + "x");
    return json({ signed, ok: !!ok, payload: jwt.decode(token).payload, bad: !!bad });
  },

  // --- zod: request JSON validation ---
  "POST /signup": async (req) => {
    const Signup = z.object({
      email: z.string().email(),
      age: z.number().int().min(13),
      name: z.string().trim().min(1),
      tags: z.array(z.string()).default([]),
      plan: z.enum(["free", "pro"]).default("free"),
    });
    const r = Signup.safeParse(await req.json());
    if (!r.success)
      return json({ issues: r.error.issues.map((i) => ({ path: i.path.join("."), code: i.code })) }, 400);
    return json(r.data, 201);
  },

  // --- ids ---
  "GET /ids": async () => {
    const hex = customAlphabet("0123456789abcdef", 12);
    const v4 = uuidv4();
    const v7 = uuidv7();
    return json({
      nanoid: nanoid(),
      hex: hex(),
      v4,
      v4ok: uuidValidate(v4) && uuidVersion(v4),
      v7,
      v7ok: uuidValidate(v7) && uuidVersion(v7),
      v5: uuidv5("atoll.example", uuidv5.DNS),
      randomUUID: crypto.randomUUID().length,
    });
  },

  // --- cookie ---
  "GET /cookie": async (req) => {
    const got = parseCookie(req.headers.get("cookie") || "");
    const headers = new Headers({ "content-type": "application/json" });
    headers.append("set-cookie", stringifySetCookie({ name: "session", value: "a b;c", httpOnly: true, secure: true, sameSite: "strict", maxAge: 600, path: "/" }));
    headers.append("set-cookie", stringifySetCookie({ name: "seen", value: "1", expires: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) }));
    return new Response(JSON.stringify(got), { headers });
  },

  // --- date-fns (Workers run in UTC) ---
  "GET /dates": async () => {
    const d = parseISO("2024-02-27T10:30:00Z");
    const later = addDays(d, 3);
    return json({
      later: formatISO(later),
      formatted: format(later, "EEEE d MMMM yyyy, HH:mm"),
      days: differenceInCalendarDays(parseISO("2025-01-01T00:00:00Z"), d),
      before: isBefore(d, later),
      offset: new Date(0).getTimezoneOffset(),
    });
  },

  // --- marked ---
  "POST /markdown": async (req) =>
    new Response(await marked.parse(await req.text(), { async: true }), { headers: { "content-type": "text/html" } }),

  // --- superjson / devalue ---
  "GET /serialize": async () => {
    const value = {
      when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
      set: new Set([1, 2]),
      map: new Map([["k", 1n]]),
      re: /a+b/gi,
      nothing: undefined,
      url: new URL("https://example.com/a?b=c"),
    };
    const sj = superjson.stringify(value);
    const back = superjson.parse(sj);
    const dv = devalue.stringify({ when: value.when, set: value.set, map: value.map, big: 10n, nested: { self: null } });
    const dback = devalue.parse(dv);
    return json({
      superjson: JSON.parse(sj),
      roundtrip: [back.when.toISOString(), [...back.set], back.map.get("k").toString(), String(back.re), "nothing" in back, back.url.href],
      devalue: dv,
      devalueBack: [dback.when.getTime(), [...dback.set], dback.map.get("k").toString(), typeof dback.big],
    });
  },
};

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const route = routes[`${request.method} ${url.pathname}`];
    if (!route) return json({ error: "not found" }, 404);
    try {
      return await route(request);
    } catch (e) {
      return failure(e);
    }
  },
};
