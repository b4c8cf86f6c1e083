// Event, EventTarget, CustomEvent, AbortController, AbortSignal, DOMException.
import { test, eq, deq, throws, rejects, assert, sleep, run } from "./harness.js";

test("Event init and flags", () => {
  const e = new Event("x", { bubbles: true, cancelable: true });
  eq(e.type, "x");
  eq(e.bubbles, true);
  eq(e.cancelable, true);
  eq(e.defaultPrevented, false);
  e.preventDefault();
  eq(e.defaultPrevented, true);
  const n = new Event("y");
  n.preventDefault();
  eq(n.defaultPrevented, false, "not cancelable");
  throws(() => new Event(), TypeError);
  assert(typeof e.timeStamp === "number");
});

test("listeners: order, dedup, once, removal, handleEvent objects", () => {
  const t = new EventTarget();
  const log = [];
  const f = (e) => log.push("f:" + e.type);
  t.addEventListener("a", f);
  t.addEventListener("a", f);
  t.addEventListener("a", { handleEvent(e) { log.push("obj"); } });
  t.addEventListener("a", () => log.push("once"), { once: true });
  eq(t.dispatchEvent(new Event("a")), true);
  t.dispatchEvent(new Event("a"));
  t.removeEventListener("a", f);
  t.dispatchEvent(new Event("a"));
  deq(log, ["f:a", "obj", "once", "f:a", "obj", "obj"]);
});

test("target/currentTarget, stopImmediatePropagation, dispatch return value", () => {
  const t = new EventTarget();
  const log = [];
  t.addEventListener("b", (e) => { log.push(e.target === t && e.currentTarget === t); e.stopImmediatePropagation(); });
  t.addEventListener("b", () => log.push("never"));
  t.addEventListener("c", (e) => e.preventDefault());
  t.dispatchEvent(new Event("b"));
  deq(log, [true]);
  eq(t.dispatchEvent(new Event("c", { cancelable: true })), false);
});

test("a listener that throws does not stop the others", () => {
  const t = new EventTarget();
  let second = false;
  t.addEventListener("x", () => { throw new Error("listener"); });
  t.addEventListener("x", () => { second = true; });
  t.dispatchEvent(new Event("x"));
  eq(second, true);
});

test("dispatching an event twice throws InvalidStateError", () => {
  const t = new EventTarget();
  const e = new Event("x");
  t.addEventListener("x", () => { eq(throws(() => t.dispatchEvent(e)).name, "InvalidStateError"); });
  t.dispatchEvent(e);
});

test("listener removed by an AbortSignal", () => {
  const t = new EventTarget();
  const ac = new AbortController();
  let n = 0;
  t.addEventListener("x", () => n++, { signal: ac.signal });
  t.dispatchEvent(new Event("x"));
  ac.abort();
  t.dispatchEvent(new Event("x"));
  eq(n, 1);
});

test("subclassing EventTarget and CustomEvent detail", () => {
  class Bus extends EventTarget {}
  const b = new Bus();
  let d;
  b.addEventListener("msg", (e) => { d = e.detail; });
  b.dispatchEvent(new CustomEvent("msg", { detail: { k: 1 } }));
  deq(d, { k: 1 });
});

test("AbortController: abort once, default reason AbortError, onabort and event", () => {
  const ac = new AbortController();
  const s = ac.signal;
  let events = 0, handler = 0;
  s.addEventListener("abort", () => events++);
  s.onabort = () => handler++;
  ac.abort();
  ac.abort("again");
  eq(s.aborted, true);
  eq(s.reason.name, "AbortError");
  assert(s.reason instanceof DOMException);
  eq(events, 1);
  eq(handler, 1);
  eq(throws(() => s.throwIfAborted()), s.reason);
});

test("AbortSignal.abort(reason) and the illegal constructor", () => {
  const s = AbortSignal.abort("why");
  eq(s.aborted, true);
  eq(s.reason, "why");
  throws(() => new AbortSignal(), TypeError);
});

test("AbortSignal.timeout aborts with TimeoutError", async () => {
  const s = AbortSignal.timeout(10);
  eq(s.aborted, false);
  await new Promise((r) => s.addEventListener("abort", r));
  eq(s.reason.name, "TimeoutError");
  throws(() => AbortSignal.timeout(-1), TypeError);
});

test("AbortSignal.any follows the first source to abort", async () => {
  const a = new AbortController(), b = new AbortController();
  const s = AbortSignal.any([a.signal, b.signal]);
  eq(s.aborted, false);
  b.abort("b first");
  eq(s.aborted, true);
  eq(s.reason, "b first");
  a.abort("a later");
  eq(s.reason, "b first");
  eq(AbortSignal.any([AbortSignal.abort("pre")]).reason, "pre");
  eq(AbortSignal.any([]).aborted, false);
  throws(() => AbortSignal.any([{}]), TypeError);
  const t = AbortSignal.any([AbortSignal.timeout(5)]);
  await sleep(30);
  eq(t.reason.name, "TimeoutError");
});

test("DOMException: name, code, message, instanceof Error", () => {
  const e = new DOMException("msg", "NotFoundError");
  eq(e.name, "NotFoundError");
  eq(e.code, 8);
  eq(e.message, "msg");
  assert(e instanceof Error);
  eq(new DOMException().name, "Error");
  eq(DOMException.ABORT_ERR, 20);
});

export default run();
