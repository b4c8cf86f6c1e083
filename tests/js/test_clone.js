// structuredClone (HTML "structured serialize/deserialize").
import { test, eq, deq, throws, assert, run } from "./harness.js";

test("primitives and plain objects are deep-copied", () => {
  const o = { a: 1, b: { c: [1, "s", null, undefined, true] } };
  const c = structuredClone(o);
  deq(c, o);
  assert(c !== o && c.b !== o.b && c.b.c !== o.b.c);
  eq(structuredClone(-0), -0);
  eq(structuredClone(10n), 10n);
  assert(Number.isNaN(structuredClone(NaN)));
});

test("cycles and shared references survive", () => {
  const shared = { s: 1 };
  const o = { x: shared, y: shared };
  o.self = o;
  const c = structuredClone(o);
  eq(c.self, c);
  eq(c.x, c.y);
});

test("Date, RegExp, Map, Set, ArrayBuffer, typed arrays, wrappers, Error", () => {
  const d = structuredClone(new Date(5));
  eq(d.getTime(), 5);
  const r = structuredClone(/a+/gi);
  eq(r.source, "a+");
  eq(r.flags, "gi");
  const m = structuredClone(new Map([[{ k: 1 }, new Set([1])]]));
  eq([...m.values()][0].has(1), true);
  const u = new Uint16Array([1, 2]);
  const cu = structuredClone(u);
  assert(cu instanceof Uint16Array && cu.buffer !== u.buffer);
  deq(cu, u);
  eq(structuredClone(new String("s")).valueOf(), "s");
  const e = structuredClone(new RangeError("m"));
  assert(e instanceof RangeError);
  eq(e.message, "m");
});

test("views sharing a buffer still share it after cloning", () => {
  const buf = new ArrayBuffer(4);
  const [a, b] = structuredClone([new Uint8Array(buf), new Uint8Array(buf, 2)]);
  eq(a.buffer, b.buffer);
});

test("functions, symbols and platform objects throw DataCloneError", () => {
  for (const v of [() => 1, Symbol("s"), { f() {} }, new Request("https://x/"), new WeakMap()]) {
    const e = throws(() => structuredClone(v));
    eq(e.name, "DataCloneError", String(typeof v));
    assert(e instanceof DOMException);
  }
});

test("Blob, File, FormData and streams (JavaScript classes) throw DataCloneError too", () => {
  // They were copied as ordinary objects: husks whose methods threw
  // "not a function" later.
  const platform = [new Blob(["x"]), new File(["x"], "f.txt"), new FormData(), new ReadableStream(),
                    new WritableStream(), new TransformStream(), new TextEncoderStream(),
                    { nested: [new Blob(["y"])] }];
  for (const v of platform) {
    const e = throws(() => structuredClone(v));
    eq(e.name, "DataCloneError");
    assert(e instanceof DOMException);
  }
  assert(throws(() => structuredClone(new Blob(["x"]))).message.includes("Blob"));
  // A subclass of a user's own class still clones as a plain object.
  class Mine {}
  class Sub extends Mine { constructor() { super(); this.v = 1; } }
  deq(structuredClone(new Sub()), { v: 1 });
  deq(structuredClone(Object.create(null)), {});
});

test("getters are read, prototypes and non-enumerables dropped", () => {
  class K { constructor() { this.a = 1; } get g() { return 2; } }
  const c = structuredClone(new K());
  eq(Object.getPrototypeOf(c), Object.prototype);
  deq(c, { a: 1 });
  const o = {};
  Object.defineProperty(o, "hidden", { value: 1, enumerable: false });
  deq(structuredClone(o), {});
});

test("transfer detaches the ArrayBuffer", () => {
  const buf = new Uint8Array([1, 2, 3]).buffer;
  const c = structuredClone(buf, { transfer: [buf] });
  eq(buf.byteLength, 0);
  eq(c.byteLength, 3);
});

test("structuredClone() with no argument throws TypeError", () => {
  throws(() => structuredClone(), TypeError);
});

export default run();
