// Bodies of every kind, read every way.
import { test, eq, deq, throws, rejects, assert, run } from "./harness.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

test("string body: text/plain;charset=UTF-8, UTF-8 bytes", async () => {
  const r = new Response("h\u00e9\u{1F600}");
  eq(r.headers.get("content-type"), "text/plain;charset=UTF-8");
  deq(new Uint8Array(await r.clone().arrayBuffer()), enc.encode("h\u00e9\u{1F600}"));
  eq(await r.text(), "h\u00e9\u{1F600}");
});

test("lone surrogates in a string body become U+FFFD", async () => {
  eq(await new Response("a\ud800b").text(), "a\ufffdb");
});

test("ArrayBuffer body is copied, no content type", async () => {
  const buf = new Uint8Array([1, 2, 3]).buffer;
  const r = new Response(buf);
  new Uint8Array(buf)[0] = 9;
  eq(r.headers.get("content-type"), null);
  deq(await r.bytes(), new Uint8Array([1, 2, 3]));
});

test("typed-array views: only the view's bytes", async () => {
  const big = new Uint8Array([0, 1, 2, 3, 4, 5]);
  deq(await new Response(big.subarray(2, 4)).bytes(), new Uint8Array([2, 3]));
  deq(await new Response(new DataView(big.buffer, 1, 2)).bytes(), new Uint8Array([1, 2]));
  deq(await new Response(new Uint16Array([0x0201])).bytes(), new Uint8Array([1, 2]));
});

test("bytes() returns a Uint8Array, arrayBuffer() an ArrayBuffer", async () => {
  assert((await new Response("a").bytes()) instanceof Uint8Array);
  assert((await new Response("a").arrayBuffer()) instanceof ArrayBuffer);
});

test("Blob body takes the blob's type", async () => {
  const r = new Response(new Blob(["ab", "cd"], { type: "text/x-custom" }));
  eq(r.headers.get("content-type"), "text/x-custom");
  eq(await r.text(), "abcd");
  eq(new Response(new Blob(["x"])).headers.get("content-type"), null);
});

test("URLSearchParams body: urlencoded type and serialization", async () => {
  const r = new Response(new URLSearchParams({ a: "1 2", b: "&=" }));
  eq(r.headers.get("content-type"), "application/x-www-form-urlencoded;charset=UTF-8");
  eq(await r.text(), "a=1+2&b=%26%3D");
});

test("FormData body: multipart with a boundary, parses back", async () => {
  const fd = new FormData();
  fd.append("name", "value");
  fd.append("file", new Blob(["content"], { type: "text/plain" }), "f.txt");
  const r = new Response(fd);
  const ct = r.headers.get("content-type");
  assert(/^multipart\/form-data; boundary=/.test(ct), ct);
  const back = await r.formData();
  eq(back.get("name"), "value");
  const f = back.get("file");
  assert(f instanceof File, "a File");
  eq(f.name, "f.txt");
  eq(f.type, "text/plain");
  eq(await f.text(), "content");
});

test("explicit content-type wins over the body's", async () => {
  const r = new Response("x", { headers: { "content-type": "application/custom" } });
  eq(r.headers.get("content-type"), "application/custom");
});

test("ReadableStream body: bytes chunks read as text", async () => {
  const s = new ReadableStream({
    start(c) { c.enqueue(enc.encode("he")); c.enqueue(enc.encode("llo")); c.close(); },
  });
  const r = new Response(s);
  eq(r.headers.get("content-type"), null);
  eq(r.body, s);
  eq(await r.text(), "hello");
});

test("ReadableStream body that errors rejects the read", async () => {
  const s = new ReadableStream({ pull(c) { c.error(new RangeError("boom")); } });
  await rejects(new Response(s).text(), RangeError);
});

test("ReadableStream body with non-bytes chunks rejects with TypeError", async () => {
  const s = new ReadableStream({ start(c) { c.enqueue("a string"); c.close(); } });
  await rejects(new Response(s).text(), TypeError);
});

test("other values count by their string value", async () => {
  eq(await new Response(12).text(), "12");
  eq(await new Response({ toString() { return "obj"; } }).text(), "obj");
  eq(await new Response(undefined).text(), "");
});

test("text() decodes UTF-8 with replacement and strips a BOM", async () => {
  eq(await new Response(new Uint8Array([0xef, 0xbb, 0xbf, 0x61, 0xff])).text(), "a\ufffd");
});

test("json() parses, strips a BOM; invalid JSON is a SyntaxError", async () => {
  deq(await new Response('{"a":[1]}').json(), { a: [1] });
  deq(await new Response(new Uint8Array([0xef, 0xbb, 0xbf, 0x31])).json(), 1);
  await rejects(new Response("").json(), SyntaxError);
});

test("blob() carries the content type", async () => {
  const b = await new Response("abc", { headers: { "content-type": "text/html" } }).blob();
  eq(b.type, "text/html");
  eq(b.size, 3);
  eq(await b.text(), "abc");
});

test("formData() of urlencoded", async () => {
  const fd = await new Response("a=1&b=x+y&a=2", {
    headers: { "content-type": "application/x-www-form-urlencoded" },
  }).formData();
  deq(fd.getAll("a"), ["1", "2"]);
  eq(fd.get("b"), "x y");
});

test("formData() of multipart built by hand, quoted names and a filename", async () => {
  const body =
    "--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nv1\r\n" +
    "--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a b.bin\"\r\n" +
    "Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--XyZ--\r\n";
  const fd = await new Response(body, { headers: { "content-type": "multipart/form-data; boundary=XyZ" } }).formData();
  eq(fd.get("field"), "v1");
  const f = fd.get("up");
  eq(f.name, "a b.bin");
  eq(f.size, 2);
});

test("formData() with a wrong or missing content type rejects with TypeError", async () => {
  await rejects(new Response("a=1").formData(), TypeError);
  await rejects(new Response("junk", { headers: { "content-type": "multipart/form-data; boundary=q" } }).formData(), TypeError);
});

test("Request bodies: every kind through a Request", async () => {
  const mk = (body) => new Request("https://x/", { method: "POST", body });
  eq(await mk("s").text(), "s");
  deq(await mk(new Uint8Array([7])).bytes(), new Uint8Array([7]));
  eq(await mk(new URLSearchParams("q=1")).text(), "q=1");
  eq(await mk(new Blob(["blob"])).text(), "blob");
  const s = new ReadableStream({ start(c) { c.enqueue(enc.encode("st")); c.close(); } });
  eq(await mk(s).text(), "st");
  eq(dec.decode(await mk("ab").arrayBuffer()), "ab");
});

test("the incoming request body reads once, as text", async (t) => {
  const c = t.request.clone();
  eq(await c.text(), "hello request body");
});

test("body of a null-body response is null; reading gives empty", async () => {
  const r = new Response(null, { status: 204 });
  eq(r.body, null);
  eq(await r.text(), "");
  eq(r.bodyUsed, false, "a null body is never disturbed");
});

export default run();
