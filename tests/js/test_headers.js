// Headers: case-insensitive names, order, combining, getSetCookie, guards.
import { test, eq, deq, throws, assert, run } from "./harness.js";

test("names are case-insensitive, iteration is sorted and lower-cased", () => {
  const h = new Headers({ "X-B": "2", "x-a": "1" });
  eq(h.get("X-A"), "1");
  eq(h.has("x-b"), true);
  deq([...h], [["x-a", "1"], ["x-b", "2"]]);
  deq([...h.keys()], ["x-a", "x-b"]);
  deq([...h.values()], ["1", "2"]);
});

test("append combines values with comma-space", () => {
  const h = new Headers();
  h.append("Accept", "a");
  h.append("accept", "b");
  eq(h.get("accept"), "a, b");
  h.set("accept", "c");
  eq(h.get("accept"), "c");
  h.delete("ACCEPT");
  eq(h.get("accept"), null);
});

test("getSetCookie keeps each set-cookie apart; iteration yields them separately", () => {
  const h = new Headers([["set-cookie", "a=1"], ["Set-Cookie", "b=2; Path=/"]]);
  deq(h.getSetCookie(), ["a=1", "b=2; Path=/"]);
  eq(h.get("set-cookie"), "a=1, b=2; Path=/");
  deq([...h].filter(([k]) => k === "set-cookie"), [["set-cookie", "a=1"], ["set-cookie", "b=2; Path=/"]]);
  deq(new Headers().getSetCookie(), []);
});

test("values are normalized: leading/trailing whitespace stripped", () => {
  const h = new Headers({ a: "  x y \t" });
  eq(h.get("a"), "x y");
});

test("invalid names and values throw TypeError", () => {
  throws(() => new Headers({ "bad name": "x" }), TypeError);
  throws(() => new Headers({ "": "x" }), TypeError);
  throws(() => new Headers({ a: "x\ny" }), TypeError);
  throws(() => new Headers({ a: "x\0y" }), TypeError);
  throws(() => new Headers().append("a:b", "x"), TypeError);
});

test("init from sequence, record, and Headers; bad sequences throw", () => {
  const a = new Headers([["a", "1"], ["b", "2"]]);
  const b = new Headers(a);
  b.set("a", "9");
  eq(a.get("a"), "1");
  eq(b.get("b"), "2");
  throws(() => new Headers([["a"]]), TypeError);
  throws(() => new Headers([["a", "1", "2"]]), TypeError);
  throws(() => new Headers(5), TypeError);
});

test("init from any iterable of pairs: Map, entries(), generators, Set pairs", () => {
  // WebIDL converts an object with Symbol.iterator as a sequence, so these
  // are not records with no own properties (they were read as empty).
  deq([...new Headers(new Map([["X-A", "1"], ["b", "2"]]))], [["b", "2"], ["x-a", "1"]]);
  const src = new Headers({ a: "1", "set-cookie": "s=1" });
  deq([...new Headers(src.entries())], [["a", "1"], ["set-cookie", "s=1"]]);
  deq([...new Headers((function* () { yield ["g", "1"]; yield new Set(["h", "2"]); })())],
      [["g", "1"], ["h", "2"]]);
  deq([...new Headers(Object.entries({ k: "v" }))], [["k", "v"]]);
  const r = new Response("x", { headers: new Map([["x-m", "y"]]) });
  eq(r.headers.get("x-m"), "y");
  throws(() => new Headers(new Map([["a b", "1"]])), TypeError);
  throws(() => new Headers(new Set(["ab"])), TypeError);
  throws(() => new Headers({ [Symbol.iterator]: 5 }), TypeError);
});

test("forEach visits in sorted order with (value, name, headers)", () => {
  const h = new Headers({ b: "2", a: "1" });
  const seen = [];
  h.forEach(function (v, k, obj) { seen.push([k, v, obj === h]); });
  deq(seen, [["a", "1", true], ["b", "2", true]]);
});

test("Response.error() headers are immutable", () => {
  const h = Response.error().headers;
  throws(() => h.set("a", "b"), TypeError);
  throws(() => h.append("a", "b"), TypeError);
  throws(() => h.delete("a"), TypeError);
});

test("fetched response headers are immutable", async (t) => {
  const r = await fetch(t.upstream + "/echo");
  throws(() => r.headers.set("x", "y"), TypeError);
  deq(r.headers.getSetCookie(), ["a=1", "b=2"]);
  await r.text();
});

test("Response.redirect headers are immutable", () => {
  throws(() => Response.redirect("https://example.com/").headers.set("x", "y"), TypeError);
});

test("constructed Request headers stay mutable (Workers has no forbidden-header list)", () => {
  // Workers does not enforce the browser's forbidden header list; the
  // request headers stay mutable.
  const r = new Request("https://example.com/", { headers: { "x-a": "1" } });
  r.headers.set("x-b", "2");
  eq(r.headers.get("x-b"), "2");
});

test("incoming request headers are immutable", (t) => {
  throws(() => t.request.headers.set("x", "y"), TypeError);
  eq(t.request.headers.get("x-test"), "yes");
});

test("guards carry over: clones stay immutable, copies are mutable", (t) => {
  const mutable = (h) => { try { h.set("x-t", "1"); return true; } catch (e) { eq(e.name, "TypeError"); return false; } };
  eq(mutable(t.request.clone().headers), false, "clone of the incoming request");
  eq(mutable(new Request(t.request).headers), true, "new Request(incoming)");
  eq(mutable(Response.error().clone().headers), false, "clone of Response.error()");
  eq(mutable(Response.redirect("https://a/").clone().headers), false, "clone of a redirect");
  eq(mutable(new Response(null, Response.redirect("https://a/")).headers), true, "new Response(_, redirect)");
  eq(mutable(Response.json(1).headers), true, "Response.json");
  eq(mutable(new Headers(t.request.headers)), true, "new Headers(immutable)");
});

test("Symbol.toStringTag; the default iterator is entries()", () => {
  const h = new Headers({ b: "2", a: "1" });
  eq(Object.prototype.toString.call(h), "[object Headers]");
  deq([...h], [...h.entries()]);
  eq(Headers.prototype[Symbol.iterator], Headers.prototype.entries);
});

export default run();
