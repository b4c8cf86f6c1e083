// fetch() against the loopback upstream the runner started.
import { test, eq, deq, throws, rejects, assert, sleep, run } from "./harness.js";

const enc = new TextEncoder();

test("GET: status, headers, json body, url", async (t) => {
  const r = await fetch(t.upstream + "/echo?x=1");
  eq(r.status, 200);
  eq(r.ok, true);
  eq(r.url, t.upstream + "/echo?x=1");
  eq(r.redirected, false);
  eq(r.headers.get("content-type"), "application/json");
  const j = await r.json();
  eq(j.method, "GET");
  eq(j.path, "/echo?x=1");
});

test("method, headers and a string body go out", async (t) => {
  const r = await fetch(t.upstream + "/echo", {
    method: "PUT", headers: { "X-Custom": "v", "content-type": "text/x" }, body: "payload",
  });
  const j = await r.json();
  eq(j.method, "PUT");
  eq(j.headers["x-custom"], "v");
  eq(j.headers["content-type"], "text/x");
  eq(j.body, "payload");
});

test("bytes, URLSearchParams, Blob and FormData bodies", async (t) => {
  const send = async (body) => (await (await fetch(t.upstream + "/echo", { method: "POST", body })).json());
  eq((await send(new Uint8Array([104, 105]))).body, "hi");
  const p = await send(new URLSearchParams({ a: "b c" }));
  eq(p.body, "a=b+c");
  eq(p.headers["content-type"], "application/x-www-form-urlencoded;charset=UTF-8");
  eq((await send(new Blob(["blob!"]))).body, "blob!");
  const fd = new FormData();
  fd.append("k", "v");
  const m = await send(fd);
  assert(m.headers["content-type"].startsWith("multipart/form-data; boundary="));
  assert(m.body.includes('name="k"') && m.body.includes("v"), m.body);
});

test("a ReadableStream request body streams (chunked) and arrives whole", async (t) => {
  const body = new ReadableStream({
    async start(c) { c.enqueue(enc.encode("part1,")); await sleep(5); c.enqueue(enc.encode("part2")); c.close(); },
  });
  const j = await (await fetch(t.upstream + "/echo", { method: "POST", body })).json();
  eq(j.body, "part1,part2");
  eq(j.chunked, true);
  eq(j.headers["content-length"], undefined);
});

test("a request body stream is read as the upload goes (pull), not all at once", async (t) => {
  let pulls = 0;
  const big = new Uint8Array(256 * 1024).fill(0x61);
  const body = new ReadableStream({
    pull(c) { pulls++; if (pulls > 8) c.close(); else c.enqueue(big); },
  }, { highWaterMark: 0 });
  const j = await (await fetch(t.upstream + "/echo", { method: "PUT", body })).json();
  eq(j.body.length, 8 * 256 * 1024);
  eq(pulls, 9);
});

test("a request body stream that errors rejects the fetch with its error", async (t) => {
  const body = new ReadableStream({
    async pull(c) { await sleep(5); c.error(new RangeError("source failed")); },
  });
  await rejects(fetch(t.upstream + "/echo", { method: "POST", body }), RangeError);
});

test("a 307 cannot be followed with a streamed body; a 303 drops it", async (t) => {
  const mk = () => new ReadableStream({ start(c) { c.enqueue(enc.encode("x")); c.close(); } });
  const to = encodeURIComponent("/echo");
  await rejects(fetch(t.upstream + "/redirect?status=307&to=" + to, { method: "POST", body: mk() }), TypeError);
  const j = await (await fetch(t.upstream + "/redirect?status=303&to=" + to, { method: "POST", body: mk() })).json();
  eq(j.method, "GET");
  eq(j.body, "");
});

test("fetch(request) uses the Request's method, headers, body", async (t) => {
  const req = new Request(t.upstream + "/echo", { method: "POST", headers: { "x-r": "1" }, body: "rb" });
  const j = await (await fetch(req)).json();
  eq(j.method, "POST");
  eq(j.headers["x-r"], "1");
  eq(j.body, "rb");
  eq(req.bodyUsed, true);
});

test("fetch(request) with an aborted signal rejects with its reason", async (t) => {
  const ac = new AbortController();
  ac.abort(new RangeError("stop"));
  const req = new Request(t.upstream + "/echo", { signal: ac.signal });
  await rejects(fetch(req), RangeError);
});

test("fetch(request) is aborted by the Request's signal mid-flight", async (t) => {
  const ac = new AbortController();
  const req = new Request(t.upstream + "/slow?s=5", { signal: ac.signal });
  const p = fetch(req);
  setTimeout(() => ac.abort(), 20);
  eq((await rejects(p)).name, "AbortError");
});

test("AbortSignal.timeout aborts a slow fetch with TimeoutError", async (t) => {
  const e = await rejects(fetch(t.upstream + "/slow?s=5", { signal: AbortSignal.timeout(50) }));
  eq(e.name, "TimeoutError");
});

test("redirects: follow, manual, error", async (t) => {
  const to = encodeURIComponent("/echo?after");
  const f = await fetch(t.upstream + "/redirect?status=302&to=" + to);
  eq(f.status, 200);
  eq(f.redirected, true);
  eq(f.url, t.upstream + "/echo?after");
  await f.text();
  const m = await fetch(t.upstream + "/redirect?status=301&to=" + to, { redirect: "manual" });
  eq(m.status, 301);
  eq(m.headers.get("location"), "/echo?after");
  await rejects(fetch(t.upstream + "/redirect?to=" + to, { redirect: "error" }), TypeError);
});

test("303 turns POST into GET without a body; 307 keeps both", async (t) => {
  const to = encodeURIComponent("/echo");
  const a = await (await fetch(t.upstream + "/redirect?status=303&to=" + to, { method: "POST", body: "x" })).json();
  eq(a.method, "GET");
  eq(a.body, "");
  const b = await (await fetch(t.upstream + "/redirect?status=307&to=" + to, { method: "POST", body: "x" })).json();
  eq(b.method, "POST");
  eq(b.body, "x");
});

test("non-2xx statuses resolve, ok is false", async (t) => {
  const r = await fetch(t.upstream + "/status/418");
  eq(r.status, 418);
  eq(r.ok, false);
  eq(await r.text(), "status body");
  const n = await fetch(t.upstream + "/status/204");
  eq(n.body, null);
});

test("HEAD has no body", async (t) => {
  const r = await fetch(t.upstream + "/echo", { method: "HEAD" });
  eq(r.status, 200);
  eq(await r.text(), "");
});

test("the response body is a stream that yields before the upstream is done", async (t) => {
  const r = await fetch(t.upstream + "/chunks?n=3&delay=0.3");
  const reader = r.body.getReader();
  const first = await reader.read();
  const seen = Date.now();
  assert(!first.done);
  const line = new TextDecoder().decode(first.value);
  assert(line.startsWith("chunk0"), line);
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  assert(rest.includes("chunk2"), rest);
  // The first chunk came ~0.6 s before the last was written upstream.
  const lastWritten = parseFloat(rest.trim().split("\n").pop().split(" ")[1]) * 1000;
  assert(lastWritten - seen > 300, "first chunk read at " + seen + ", last written at " + lastWritten);
});

test("fetch resolves at the head, before the body is complete", async (t) => {
  const r = await fetch(t.upstream + "/chunks?n=2&delay=0.3");
  eq(r.status, 200);
  eq(r.bodyUsed, false);
  eq((await r.text()).split("\n").filter(Boolean).length, 2);
});

test("aborting while the body streams errors the stream with the reason", async (t) => {
  const ac = new AbortController();
  const r = await fetch(t.upstream + "/chunks?n=5&delay=0.2", { signal: ac.signal });
  const reader = r.body.getReader();
  await reader.read();
  ac.abort(new RangeError("enough"));
  await rejects(reader.read(), RangeError);
});

test("cancelling the body stream stops the transfer; later fetches still work", async (t) => {
  const r = await fetch(t.upstream + "/chunks?n=5&delay=0.2");
  const reader = r.body.getReader();
  await reader.read();
  await reader.cancel("no more");
  deq(await reader.read(), { value: undefined, done: true });
  eq((await (await fetch(t.upstream + "/echo")).json()).method, "GET");
});

test("a large body streams through with backpressure, bytes intact", async (t) => {
  const payload = "0123456789abcdef".repeat(64 * 1024); // 1 MiB
  const r = await fetch(t.upstream + "/echo", { method: "POST", body: payload });
  let n = 0, chunks = 0;
  for await (const c of r.body) { n += c.byteLength; chunks++; }
  assert(n > payload.length, "got " + n);
  assert(chunks > 1, "chunks " + chunks);
});

test("fetched response can be cloned and both read", async (t) => {
  const r = await fetch(t.upstream + "/echo");
  const c = r.clone();
  eq((await r.json()).method, "GET");
  eq((await c.json()).method, "GET");
});

test("a fetched Response passed through as the handler's response works", async (t) => {
  const r = await fetch(t.upstream + "/echo");
  const wrapped = new Response(r.body, r);
  eq(wrapped.status, 200);
  eq((await wrapped.json()).method, "GET");
});

test("refused and failed fetches reject with TypeError", async (t) => {
  await rejects(fetch("https://example.com/"), TypeError);
  await rejects(fetch("ftp://127.0.0.1/"), TypeError);
  await rejects(fetch("/relative"), TypeError);
  await rejects(fetch("http://127.0.0.1:1/"), TypeError);
  await rejects(fetch(t.upstream + "/echo", { method: "GET", body: "x" }), TypeError);
});

test("fetch never throws synchronously", (t) => {
  const p = fetch("not a url");
  assert(p instanceof Promise);
  p.catch(() => {});
});

export default run();
