// Request and Response: constructors, init options, clone, bodyUsed and the
// static constructors.
import { test, eq, deq, throws, rejects, assert, run } from "./harness.js";

test("Request defaults", () => {
  const r = new Request("https://example.com/a?b#c");
  eq(r.method, "GET");
  eq(r.url, "https://example.com/a?b#c");
  eq(r.body, null);
  eq(r.bodyUsed, false);
  eq(r.redirect, "follow");
  assert(r.headers instanceof Headers);
  assert(r.signal instanceof AbortSignal, "signal is an AbortSignal");
  eq(r.signal.aborted, false);
});

test("Request URL is parsed and serialized; relative and invalid URLs throw", () => {
  eq(new Request("HTTPS://EXAMPLE.com:443/./x/../y").url, "https://example.com/y");
  throws(() => new Request("/relative"), TypeError);
  throws(() => new Request("http://[::1"), TypeError);
  eq(new Request(new URL("https://example.com/u")).url, "https://example.com/u");
});

test("Request method is normalized; forbidden and invalid methods throw", () => {
  eq(new Request("https://x/", { method: "post" }).method, "POST");
  eq(new Request("https://x/", { method: "patch" }).method, "patch", "only the six standard methods are upper-cased");
  eq(new Request("https://x/", { method: "Custom" }).method, "Custom");
  throws(() => new Request("https://x/", { method: "bad method" }), TypeError);
  throws(() => new Request("https://x/", { method: "CONNECT" }), TypeError);
  throws(() => new Request("https://x/", { method: "TRACE" }), TypeError);
});

test("GET/HEAD with a body throws", () => {
  throws(() => new Request("https://x/", { body: "a" }), TypeError);
  throws(() => new Request("https://x/", { method: "HEAD", body: "a" }), TypeError);
  eq(new Request("https://x/", { body: null }).body, null);
});

test("Request init: headers, body, redirect, signal", async () => {
  const ac = new AbortController();
  const r = new Request("https://x/", {
    method: "PUT", headers: [["X-A", "1"]], body: "data", redirect: "manual", signal: ac.signal,
  });
  eq(r.headers.get("x-a"), "1");
  eq(r.headers.get("content-type"), "text/plain;charset=UTF-8");
  eq(r.redirect, "manual");
  ac.abort();
  eq(r.signal.aborted, true, "request signal follows the init signal");
  eq(await r.text(), "data");
  throws(() => new Request("https://x/", { redirect: "nope" }), TypeError);
});

test("Request from a Request copies, and init overrides", async () => {
  const a = new Request("https://x/a", { method: "POST", headers: { "x-a": "1" }, body: "abc" });
  const b = new Request(a, { headers: { "x-b": "2" } });
  eq(b.url, "https://x/a");
  eq(b.method, "POST");
  eq(b.headers.get("x-a"), null);
  eq(b.headers.get("x-b"), "2");
  eq(await b.text(), "abc");
  eq(a.bodyUsed, true, "the source request's body was taken");
  const c = new Request("https://x/", { method: "POST", body: "z" });
  await c.text();
  throws(() => new Request(c), TypeError);
});

test("Request clone keeps body and headers; a used body cannot be cloned", async () => {
  const a = new Request("https://x/", { method: "POST", body: "hello" });
  const b = a.clone();
  eq(await a.text(), "hello");
  eq(await b.text(), "hello");
  throws(() => a.clone(), TypeError);
  b.headers.set("x", "1");
  eq(a.headers.get("x"), null);
});

test("Request properties are read-only accessors (a module is strict code)", () => {
  const r = new Request("https://x/");
  throws(() => { r.method = "POST"; }, TypeError);
  throws(() => { r.url = "https://y/"; }, TypeError);
  eq(r.method, "GET");
});

test("Request signal: from init, from the input Request, null means a fresh one", () => {
  const ac = new AbortController();
  const a = new Request("https://x/", { signal: ac.signal });
  const b = new Request(a);
  const c = new Request(a, { signal: null });
  ac.abort("why");
  eq(b.signal.aborted, true);
  eq(b.signal.reason, "why");
  eq(c.signal.aborted, false);
  eq(a.clone().signal.aborted, true);
  throws(() => new Request("https://x/", { signal: 5 }), TypeError);
});

test("incoming request: method, url, headers, body as a stream", async (t) => {
  const r = t.request;
  eq(r.method, "POST");
  assert(r.url.startsWith("http://"), r.url);
  assert(r.body instanceof ReadableStream);
  const chunks = [];
  for await (const c of r.body) chunks.push(new TextDecoder().decode(c));
  eq(chunks.join(""), "hello request body");
  eq(r.bodyUsed, true);
  await rejects(r.text(), TypeError);
});

test("Response defaults", async () => {
  const r = new Response();
  eq(r.status, 200);
  eq(r.statusText, "");
  eq(r.ok, true);
  eq(r.type, "default");
  eq(r.url, "");
  eq(r.redirected, false);
  eq(r.body, null);
  eq(await r.text(), "");
});

test("Response init: status, statusText, headers", () => {
  const r = new Response("x", { status: 404, statusText: "Nope", headers: { a: "b" } });
  eq(r.status, 404);
  eq(r.ok, false);
  eq(r.statusText, "Nope");
  eq(r.headers.get("a"), "b");
  eq(new Response(null, { status: 299 }).ok, true);
});

test("Response status range and null-body statuses", () => {
  throws(() => new Response("", { status: 199 }), RangeError);
  throws(() => new Response("", { status: 600 }), RangeError);
  throws(() => new Response("body", { status: 204 }), TypeError);
  throws(() => new Response("body", { status: 304 }), TypeError);
  eq(new Response(null, { status: 204 }).status, 204);
  throws(() => new Response("", { statusText: "a\nb" }), TypeError);
});

test("Response.error()", () => {
  const r = Response.error();
  eq(r.type, "error");
  eq(r.status, 0);
  eq(r.ok, false);
  eq(r.body, null);
});

test("Response.redirect parses its URL and checks the status", () => {
  const r = Response.redirect("https://example.com/a b?x", 301);
  eq(r.status, 301);
  eq(r.headers.get("location"), "https://example.com/a%20b?x");
  eq(Response.redirect(new URL("https://example.com/")).status, 302);
  for (const s of [301, 302, 303, 307, 308]) eq(Response.redirect("https://e.com/", s).status, s);
  throws(() => Response.redirect("https://e.com/", 200), RangeError);
  throws(() => Response.redirect("not a url"), TypeError);
  throws(() => Response.redirect("/relative"), TypeError);
});

test("Response.json()", async () => {
  const r = Response.json({ a: [1, "x"] }, { status: 201, headers: { "x-y": "z" } });
  eq(r.status, 201);
  eq(r.headers.get("content-type"), "application/json");
  eq(r.headers.get("x-y"), "z");
  deq(await r.json(), { a: [1, "x"] });
  const keep = Response.json(1, { headers: { "content-type": "application/vnd.x+json" } });
  eq(keep.headers.get("content-type"), "application/vnd.x+json");
  throws(() => Response.json(undefined), TypeError);
  throws(() => Response.json(1n), TypeError);
  throws(() => Response.json(1, { status: 204 }), TypeError);
});

test("Response clone: both bodies readable, body streams are distinct", async () => {
  const a = new Response("hello", { status: 202, headers: { a: "1" } });
  const b = a.clone();
  eq(b.status, 202);
  eq(b.headers.get("a"), "1");
  assert(a.body !== b.body);
  eq(await b.text(), "hello");
  eq(await a.text(), "hello");
  throws(() => a.clone(), TypeError);
});

test("Response clone of a stream body tees it", async () => {
  const s = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("ab")); c.enqueue(new TextEncoder().encode("cd")); c.close(); } });
  const a = new Response(s);
  const b = a.clone();
  eq(await a.text(), "abcd");
  eq(await b.text(), "abcd");
});

test("bodyUsed after each reader; second read rejects with TypeError", async () => {
  for (const m of ["text", "json", "arrayBuffer", "bytes", "blob", "formData"]) {
    const r = new Response(m === "json" ? "1" : m === "formData" ? "a=b" : "x",
      { headers: m === "formData" ? { "content-type": "application/x-www-form-urlencoded" } : {} });
    eq(r.bodyUsed, false, m);
    await r[m]();
    eq(r.bodyUsed, true, m);
    await rejects(r.text(), TypeError);
  }
});

test("a locked body cannot be read", async () => {
  const r = new Response("x");
  r.body.getReader();
  await rejects(r.text(), TypeError);
  throws(() => r.clone(), TypeError);
});

test("Response body getter returns the same stream", () => {
  const r = new Response("x");
  eq(r.body, r.body);
});

test("json() of invalid JSON rejects with SyntaxError", async () => {
  await rejects(new Response("{").json(), SyntaxError);
});

test("toStringTag", () => {
  eq(Object.prototype.toString.call(new Request("https://x/")), "[object Request]");
  eq(Object.prototype.toString.call(new Response()), "[object Response]");
});

test("Response can be returned from a service-worker-style clone chain", async () => {
  const r = new Response("abc", { headers: { "content-type": "text/x" } });
  const r2 = new Response(r.body, r);
  eq(r2.headers.get("content-type"), "text/x");
  eq(r2.status, 200);
  eq(await r2.text(), "abc");
});

export default run();
