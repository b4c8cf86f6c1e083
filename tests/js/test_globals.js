// The global scope: the frozen clock, ctx.waitUntil/passThroughOnException,
// navigator, performance, what is absent, and what must not leak in.
import { test, eq, deq, throws, rejects, assert, sleep, run } from "./harness.js";

function spin(ms) {
  // Burns real CPU time without I/O: the clock JavaScript sees must not move.
  const end = Date.now.call(Date) + 0; // frozen; count iterations instead
  let x = 0;
  for (let i = 0; i < ms * 20000; i++) x += i;
  return x + end * 0;
}

test("Date.now, new Date and performance.now stand still while JavaScript runs", () => {
  const d0 = Date.now(), p0 = performance.now(), n0 = new Date().getTime();
  spin(20);
  eq(Date.now(), d0);
  eq(performance.now(), p0);
  eq(new Date().getTime(), n0);
  eq(n0, d0);
});

test("the clock advances across I/O (a timer)", async () => {
  const d0 = Date.now(), p0 = performance.now();
  await sleep(15);
  assert(Date.now() - d0 >= 10, "Date.now moved by " + (Date.now() - d0));
  assert(performance.now() - p0 >= 10, "performance.now moved by " + (performance.now() - p0));
});

test("Date keeps its other behaviour", () => {
  eq(new Date(0).toISOString(), "1970-01-01T00:00:00.000Z");
  eq(Date.UTC(2020, 0, 1), 1577836800000);
  eq(typeof Date(), "string");
  assert(new Date() instanceof Date);
  eq(Date.parse("2020-01-01T00:00:00Z"), 1577836800000);
});

test("performance: now() from timeOrigin, toStringTag", () => {
  assert(performance.now() >= 0);
  assert(Math.abs(performance.timeOrigin + performance.now() - Date.now()) < 1000);
});

test("ctx.waitUntil keeps work alive after the response; bad arguments are tolerated", async (t) => {
  assert(typeof t.ctx.waitUntil === "function");
  let done = false;
  t.ctx.waitUntil(sleep(5).then(() => { done = true; console.log("waitUntil work finished"); }));
  t.ctx.waitUntil(Promise.reject(new Error("ignored rejection")).catch(() => {}));
  t.expectLog("waitUntil work finished");
});

test("ctx.passThroughOnException exists and can be called", (t) => {
  eq(typeof t.ctx.passThroughOnException, "function");
  t.ctx.passThroughOnException();
});

test("globalThis.caches is absent, not half-present", () => {
  eq("caches" in globalThis, false);
  eq(typeof caches, "undefined");
  eq(typeof Cache, "undefined");
  eq(typeof CacheStorage, "undefined");
});

test("navigator.userAgent", () => {
  eq(typeof navigator.userAgent, "string");
  assert(navigator.userAgent.length > 0);
});

test("no ambient authority: no require, process, Deno, SharedArrayBuffer, eval-free host hooks", () => {
  for (const name of ["require", "process", "Deno", "Bun", "SharedArrayBuffer", "Atomics", "std", "os", "scriptArgs"])
    eq(typeof globalThis[name], "undefined", name);
});

test("every documented global is a function or object", () => {
  const names = ["Request", "Response", "Headers", "fetch", "URL", "URLSearchParams", "TextEncoder", "TextDecoder",
    "atob", "btoa", "console", "crypto", "CryptoKey", "setTimeout", "setInterval", "clearTimeout", "clearInterval",
    "queueMicrotask", "structuredClone", "Event", "EventTarget", "CustomEvent", "AbortController", "AbortSignal",
    "DOMException", "Blob", "File", "FormData", "ReadableStream", "WritableStream", "TransformStream",
    "TextEncoderStream", "TextDecoderStream", "CountQueuingStrategy", "ByteLengthQueuingStrategy", "navigator",
    "performance", "self", "globalThis"];
  for (const n of names) assert(["function", "object"].includes(typeof globalThis[n]), n + " is " + typeof globalThis[n]);
  eq(self, globalThis);
});

test("globals are configurable and writable: a polyfill may replace one", () => {
  const saved = globalThis.structuredClone;
  globalThis.structuredClone = () => "mine";
  eq(structuredClone(1), "mine");
  globalThis.structuredClone = saved;
  eq(structuredClone(1), 1);
});

test("the request's env is an object", (t) => {
  eq(typeof t.env, "object");
});

export default run();
