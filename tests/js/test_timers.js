// Timers and microtasks.
import { test, eq, deq, assert, throws, sleep, run } from "./harness.js";

test("setTimeout fires with its extra arguments, returns a positive id", async () => {
  const got = await new Promise((r) => { const id = setTimeout((a, b) => r([a, b]), 1, "x", 2); assert(id > 0); });
  deq(got, ["x", 2]);
});

test("clearTimeout cancels; clearing unknown ids is harmless", async () => {
  let fired = false;
  const id = setTimeout(() => { fired = true; }, 5);
  clearTimeout(id);
  clearTimeout(123456);
  clearTimeout(undefined);
  await sleep(20);
  eq(fired, false);
});

test("setInterval repeats until cleared", async () => {
  let n = 0;
  await new Promise((r) => { const id = setInterval(() => { if (++n === 3) { clearInterval(id); r(); } }, 1); });
  await sleep(10);
  eq(n, 3);
});

test("timers fire in order of due time, ties in order of creation", async () => {
  const order = [];
  setTimeout(() => order.push("b"), 10);
  setTimeout(() => order.push("a1"), 1);
  setTimeout(() => order.push("a2"), 1);
  await sleep(30);
  deq(order, ["a1", "a2", "b"]);
});

test("microtasks run before timers; queueMicrotask order", async () => {
  const order = [];
  setTimeout(() => order.push("timeout"), 0);
  queueMicrotask(() => order.push("micro1"));
  Promise.resolve().then(() => order.push("promise"));
  queueMicrotask(() => order.push("micro2"));
  await sleep(5);
  deq(order, ["micro1", "promise", "micro2", "timeout"]);
});

test("non-function callbacks throw TypeError", () => {
  throws(() => queueMicrotask("x"), TypeError);
  throws(() => setTimeout("code string", 1), TypeError);
});

test("negative and NaN delays are 0", async () => {
  await new Promise((r) => setTimeout(r, -5));
  await new Promise((r) => setTimeout(r, NaN));
});

export default run();
