// WHATWG streams: ReadableStream, WritableStream, TransformStream, the
// encoding streams and the queuing strategies.
import { test, eq, deq, throws, rejects, assert, readAll, sleep, run } from "./harness.js";

const enc = new TextEncoder();

test("underlying source: start, pull on demand, cancel with reason", async () => {
  const log = [];
  let n = 0;
  const s = new ReadableStream({
    start() { log.push("start"); },
    pull(c) { log.push("pull"); c.enqueue(n++); if (n === 3) c.close(); },
    cancel(r) { log.push("cancel:" + r); },
  }, { highWaterMark: 0 });
  const rd = s.getReader();
  deq(await rd.read(), { value: 0, done: false });
  deq(await rd.read(), { value: 1, done: false });
  await rd.cancel("enough");
  deq(log, ["start", "pull", "pull", "cancel:enough"]);
});

test("getReader locks; a second reader throws; releaseLock unlocks", () => {
  const s = new ReadableStream();
  const r = s.getReader();
  eq(s.locked, true);
  throws(() => s.getReader(), TypeError);
  r.releaseLock();
  eq(s.locked, false);
  s.getReader();
});

test("read after close is done; closed promise resolves", async () => {
  const s = new ReadableStream({ start(c) { c.enqueue("a"); c.close(); } });
  const r = s.getReader();
  deq(await r.read(), { value: "a", done: false });
  deq(await r.read(), { value: undefined, done: true });
  await r.closed;
});

test("an errored stream rejects reads and closed with its error", async () => {
  const err = new Error("e");
  const s = new ReadableStream({ start(c) { c.error(err); } });
  const r = s.getReader();
  eq(await rejects(r.read()), err);
  eq(await rejects(r.closed), err);
});

test("enqueue after close throws TypeError", () => {
  new ReadableStream({ start(c) { c.close(); throws(() => c.enqueue("x"), TypeError); } });
});

test("desiredSize follows highWaterMark and the size function", () => {
  new ReadableStream({
    start(c) {
      eq(c.desiredSize, 10);
      c.enqueue("abcd");
      eq(c.desiredSize, 6);
    },
  }, { highWaterMark: 10, size: (ch) => ch.length });
});

test("tee: both branches see every chunk; cancel of both cancels the source", async () => {
  let reason;
  const s = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); }, cancel(r) { reason = r; } });
  const [a, b] = s.tee();
  deq(await readAll(a), [1, 2]);
  deq(await readAll(b), [1, 2]);
  const s2 = new ReadableStream({ cancel(r) { reason = r; } });
  const [c, d] = s2.tee();
  c.cancel("x");
  await d.cancel("y");
  deq(reason, ["x", "y"]);
});

test("async iteration, and breaking out cancels the stream", async () => {
  let cancelled = false;
  let i = 0;
  const s = new ReadableStream({ pull(c) { c.enqueue(i++); }, cancel() { cancelled = true; } });
  for await (const v of s) if (v === 2) break;
  eq(cancelled, true);
  eq(s.locked, false);
});

test("values({ preventCancel: true }) keeps the stream alive", async () => {
  let cancelled = false;
  const s = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); }, cancel() { cancelled = true; } });
  for await (const v of s.values({ preventCancel: true })) break;
  eq(cancelled, false);
  deq(await s.getReader().read(), { value: 2, done: false });
});

test("ReadableStream.from an async iterable and an array", async () => {
  async function* gen() { yield "a"; yield "b"; }
  deq(await readAll(ReadableStream.from(gen())), ["a", "b"]);
  deq(await readAll(ReadableStream.from([1, 2, 3])), [1, 2, 3]);
  throws(() => ReadableStream.from(5), TypeError);
});

test("WritableStream: write order, close, and backpressure via ready", async () => {
  const got = [];
  const ws = new WritableStream({
    async write(chunk) { await sleep(1); got.push(chunk); },
    close() { got.push("closed"); },
  }, { highWaterMark: 1 });
  const w = ws.getWriter();
  eq(w.desiredSize, 1);
  w.write("a");
  eq(w.desiredSize, 0);
  await w.ready;
  await w.write("b");
  await w.close();
  deq(got, ["a", "b", "closed"]);
});

test("WritableStream: a failing sink errors the stream; abort rejects pending writes", async () => {
  const ws = new WritableStream({ write() { throw new TypeError("sink"); } });
  const w = ws.getWriter();
  await rejects(w.write("x"), TypeError);
  await rejects(w.closed, TypeError);
  let aborted;
  const ws2 = new WritableStream({ abort(r) { aborted = r; } });
  await ws2.getWriter().abort("stop");
  eq(aborted, "stop");
});

test("TransformStream: transform and flush", async () => {
  const ts = new TransformStream({
    transform(chunk, c) { c.enqueue(chunk.toUpperCase()); },
    flush(c) { c.enqueue("!"); },
  });
  const out = new ReadableStream({ start(c) { c.enqueue("a"); c.enqueue("b"); c.close(); } }).pipeThrough(ts);
  deq(await readAll(out), ["A", "B", "!"]);
});

test("identity TransformStream passes chunks through", async () => {
  const { readable, writable } = new TransformStream();
  const w = writable.getWriter();
  w.write(1);
  w.close();
  deq(await readAll(readable), [1]);
});

test("pipeTo: all chunks, closes the destination; preventClose keeps it open", async () => {
  const got = [];
  let closed = false;
  const src = () => new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); } });
  await src().pipeTo(new WritableStream({ write(c) { got.push(c); }, close() { closed = true; } }));
  deq(got, [1, 2]);
  eq(closed, true);
  closed = false;
  await src().pipeTo(new WritableStream({ close() { closed = true; } }), { preventClose: true });
  eq(closed, false);
});

test("pipeTo: a source error aborts the destination", async () => {
  let aborted;
  const src = new ReadableStream({ start(c) { c.error("bad"); } });
  eq(await rejects(src.pipeTo(new WritableStream({ abort(r) { aborted = r; } }))), "bad");
  eq(aborted, "bad");
});

test("pipeTo with an AbortSignal stops the pipe", async () => {
  const ac = new AbortController();
  const src = new ReadableStream({ pull(c) { c.enqueue(1); } });
  const p = src.pipeTo(new WritableStream(), { signal: ac.signal });
  ac.abort();
  eq((await rejects(p)).name, "AbortError");
});

test("pipeTo a locked stream rejects with TypeError", async () => {
  const s = new ReadableStream();
  s.getReader();
  await rejects(s.pipeTo(new WritableStream()), TypeError);
});

test("TextEncoderStream and TextDecoderStream round-trip split code points", async () => {
  const bytes = enc.encode("h\u00e9\u{1F600}");
  const s = new ReadableStream({
    start(c) { for (const b of bytes) c.enqueue(new Uint8Array([b])); c.close(); },
  });
  const text = (await readAll(s.pipeThrough(new TextDecoderStream()))).join("");
  eq(text, "h\u00e9\u{1F600}");
  const back = await readAll(ReadableStream.from(["a", "\u00e9"]).pipeThrough(new TextEncoderStream()));
  deq(back.map((u) => Array.from(u)).flat(), [0x61, 0xc3, 0xa9]);
});

test("TextDecoderStream fatal rejects on invalid bytes", async () => {
  const s = ReadableStream.from([new Uint8Array([0xff])]).pipeThrough(new TextDecoderStream("utf-8", { fatal: true }));
  await rejects(readAll(s), TypeError);
});

test("queuing strategies", () => {
  eq(new CountQueuingStrategy({ highWaterMark: 3 }).size("anything"), 1);
  eq(new ByteLengthQueuingStrategy({ highWaterMark: 3 }).size(new Uint8Array(5)), 5);
  eq(new CountQueuingStrategy({ highWaterMark: 3 }).highWaterMark, 3);
});

test("a bad highWaterMark throws RangeError", () => {
  throws(() => new ReadableStream({}, { highWaterMark: -1 }), RangeError);
  throws(() => new ReadableStream({}, { highWaterMark: NaN }), RangeError);
});

test("a streamed Response body reaches text() through a TransformStream", async () => {
  const { readable, writable } = new TransformStream();
  const w = writable.getWriter();
  (async () => { await w.write(enc.encode("x")); await sleep(5); await w.write(enc.encode("y")); await w.close(); })();
  eq(await new Response(readable).text(), "xy");
});

test("toStringTag of the stream classes", () => {
  eq(Object.prototype.toString.call(new ReadableStream()), "[object ReadableStream]");
  eq(Object.prototype.toString.call(new WritableStream()), "[object WritableStream]");
  eq(Object.prototype.toString.call(new TransformStream()), "[object TransformStream]");
});

export default run();
