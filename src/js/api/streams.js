// WHATWG Streams (ReadableStream, WritableStream, TransformStream, the
// queuing strategies, TextEncoderStream/TextDecoderStream) for atoll
// isolates. Blob, File and FormData are in blob.js, a bundle of their own,
// so that a worker that only parses a form does not load streams.
//
// Why JavaScript and not C: these are promise state machines whose every
// step calls back into user code; written in C they would be several times
// longer and harder to get right. This file is compiled to QuickJS bytecode
// at build time (scripts/jsc.c) and loaded by streams.c only when a worker
// first names one of these globals or uses a stream body, so
// an isolate that never touches them pays nothing at start.
//
// The script's value is a function taking the C natives (N: utf-8 encode
// and decode) and returning the classes plus the helpers that body.c uses.
// Byte streams (type: "bytes") are accepted as default streams; BYOB
// readers are not implemented.
(function (N) {
  'use strict';
  const P = Promise;
  // Internal-state accessors, set by each class's static block (private
  // fields give brand checks and hide the state from user code).
  let rsOf, ctrlOf, readerOf, wsOf, wcOf, writerOf, tsOf, tcOf;
  const ctorKey = {};
  const TE = (m) => new TypeError(m);
  const noop = () => {};
  const resolved = (v) => P.resolve(v);
  const rejected = (e) => P.reject(e);
  function deferred() {
    const d = {};
    d.p = new P((a, b) => { d.res = a; d.rej = b; });
    return d;
  }
  // A promise nobody may look at must not count as an unhandled rejection.
  const handled = (p) => { p.then(undefined, noop); return p; };
  // Calls obj[name](...args) as a promise; a missing method resolves.
  function method(obj, name) {
    if (obj === undefined || obj === null) return undefined;
    const m = obj[name];
    if (m === undefined || m === null) return undefined;
    if (typeof m !== 'function') throw TE(`${name} must be a function`);
    return m;
  }
  function promiseCall(m, obj, args) {
    if (!m) return resolved();
    try { return resolved(m.apply(obj, args)); } catch (e) { return rejected(e); }
  }
  function strategy(s, defHwm) {
    let hwm = defHwm, size;
    if (s !== undefined && s !== null) {
      if (s.highWaterMark !== undefined) {
        hwm = Number(s.highWaterMark);
        if (Number.isNaN(hwm) || hwm < 0) throw new RangeError('highWaterMark must be a non-negative number');
      }
      size = s.size;
      if (size !== undefined && typeof size !== 'function') throw TE('size must be a function');
    }
    return { hwm, size };
  }
  function chunkSize(size, chunk) {
    if (!size) return 1;
    const n = Number(size(chunk));
    if (Number.isNaN(n) || n < 0 || n === Infinity) throw new RangeError('size must return a finite non-negative number');
    return n;
  }

  // ---------------------------------------------------------------- readable
    class ReadableStream {
    #s;
    constructor(source = undefined, strat = undefined) {
      if (source === null) throw TE('underlying source cannot be null');
      const type = source === undefined ? undefined : source.type;
      if (type !== undefined && String(type) !== 'bytes') throw new RangeError(`invalid type ${type}`);
      const { hwm, size } = strategy(strat, type === undefined ? 1 : 0);
      if (type !== undefined && size) throw new RangeError('a byte stream cannot have a size function');
      this.#s = { state: 'readable', reader: null, error: undefined, disturbed: false, c: null };
      const start = method(source, 'start');
      const pull = method(source, 'pull'), cancel = method(source, 'cancel');
      setupController(this.#s, this, source, start, pull, cancel, hwm, size);
    }
    static { rsOf = (o) => { if (o === null || typeof o !== 'object' || !(#s in o)) return null; return o.#s; }; }
    get locked() { return !!st(this).reader; }
    cancel(reason) {
      const s = rsOf(this);
      if (!s) return rejected(TE('not a ReadableStream'));
      if (s.reader) return rejected(TE('the stream is locked'));
      return rsCancel(s, reason);
    }
    getReader(opts = undefined) {
      const s = st(this);
      if (opts !== undefined && opts !== null && opts.mode !== undefined) {
        if (String(opts.mode) === 'byob') throw TE('BYOB readers are not supported');
        throw new RangeError(`invalid reader mode ${opts.mode}`);
      }
      return new ReadableStreamDefaultReader(this);
    }
    tee() { return tee(st(this), this); }
    pipeTo(dest, opts = {}) {
      const s = rsOf(this), w = wsOf(dest);
      if (!s) return rejected(TE('not a ReadableStream'));
      if (!w) return rejected(TE('pipeTo destination must be a WritableStream'));
      if (s.reader) return rejected(TE('the source stream is locked'));
      if (w.writer) return rejected(TE('the destination stream is locked'));
      return pipe(this, dest, opts || {});
    }
    pipeThrough(pair, opts = {}) {
      st(this);
      if (!pair || !rsOf(pair.readable) || !wsOf(pair.writable)) throw TE('pipeThrough needs { writable, readable }');
      if (this.locked) throw TE('the source stream is locked');
      if (pair.writable.locked) throw TE('the destination stream is locked');
      handled(pipe(this, pair.writable, opts || {}));
      return pair.readable;
    }
    values(opts = undefined) { st(this); return iterate(this, !!(opts && opts.preventCancel)); }
    [Symbol.asyncIterator](opts = undefined) { return this.values(opts); }
    static from(it) {
      if (rsOf(it)) return it;
      let iter;
      const am = it == null ? undefined : it[Symbol.asyncIterator];
      if (am != null) iter = am.call(it);
      else {
        const sm = it == null ? undefined : it[Symbol.iterator];
        if (sm == null) throw TE('ReadableStream.from needs an iterable');
        iter = sm.call(it);
      }
      if (iter === null || typeof iter !== 'object') throw TE('the iterator is not an object');
      return new ReadableStream({
        pull(c) {
          return resolved(iter.next()).then((r) => {
            if (r === null || typeof r !== 'object') throw TE('iterator result is not an object');
            if (r.done) c.close();
            else return resolved(r.value).then((v) => c.enqueue(v));
          });
        },
        cancel(reason) {
          const m = iter.return;
          if (m == null) return;
          return resolved(m.call(iter, reason)).then((r) => {
            if (r === null || typeof r !== 'object') throw TE('iterator return() result is not an object');
          });
        },
      }, { highWaterMark: 0 });
    }
  }
  Object.defineProperty(ReadableStream.prototype, Symbol.toStringTag, { value: 'ReadableStream', configurable: true });
  function st(o) { const s = rsOf(o); if (!s) throw TE('not a ReadableStream'); return s; }

  class ReadableStreamDefaultController {
    #c;
    constructor(key, c) { if (key !== ctorKey) throw TE('Illegal constructor'); this.#c = c; }
    static { ctrlOf = (o) => (o !== null && typeof o === 'object' && #c in o ? o.#c : null); }
    get desiredSize() { return desiredSize(cc(this)); }
    close() {
      const c = cc(this);
      if (!canCloseOrEnqueue(c)) throw TE('the stream is closed or closing');
      ctrlClose(c);
    }
    enqueue(chunk) {
      const c = cc(this);
      if (!canCloseOrEnqueue(c)) throw TE('the stream is closed or closing');
      ctrlEnqueue(c, chunk);
    }
    error(e) { ctrlError(cc(this), e); }
  }
  function cc(o) { const c = ctrlOf(o); if (!c) throw TE('not a ReadableStreamDefaultController'); return c; }
  Object.defineProperty(ReadableStreamDefaultController.prototype, Symbol.toStringTag, { value: 'ReadableStreamDefaultController', configurable: true });

  function setupController(s, stream, source, start, pull, cancel, hwm, size) {
    const c = { s, stream, queue: [], qsize: 0, hwm, size, started: false, pulling: false, pullAgain: false,
      closeRequested: false, pull: pull ? () => promiseCall(pull, source, [c.obj]) : () => resolved(),
      cancel: cancel ? (r) => promiseCall(cancel, source, [r]) : () => resolved(), obj: null };
    c.obj = new ReadableStreamDefaultController(ctorKey, c);
    s.c = c;
    const r = start ? start.call(source, c.obj) : undefined;
    resolved(r).then(() => { c.started = true; callPull(c); }, (e) => ctrlError(c, e));
  }
  function desiredSize(c) {
    if (c.s.state === 'errored') return null;
    if (c.s.state === 'closed') return 0;
    return c.hwm - c.qsize;
  }
  const canCloseOrEnqueue = (c) => !c.closeRequested && c.s.state === 'readable';
  function shouldPull(c) {
    if (!canCloseOrEnqueue(c) || !c.started) return false;
    const r = c.s.reader;
    if (r && r.requests.length > 0) return true;
    return desiredSize(c) > 0;
  }
  function callPull(c) {
    if (!shouldPull(c)) return;
    if (c.pulling) { c.pullAgain = true; return; }
    c.pulling = true;
    c.pull().then(() => {
      c.pulling = false;
      if (c.pullAgain) { c.pullAgain = false; callPull(c); }
    }, (e) => ctrlError(c, e));
  }
  function clearAlgorithms(c) { c.pull = () => resolved(); c.cancel = () => resolved(); c.size = undefined; }
  function ctrlClose(c) {
    if (!canCloseOrEnqueue(c)) return;
    c.closeRequested = true;
    if (c.queue.length === 0) { clearAlgorithms(c); rsClose(c.s); }
  }
  function ctrlEnqueue(c, chunk) {
    if (!canCloseOrEnqueue(c)) return;
    const r = c.s.reader;
    if (r && r.requests.length > 0) {
      r.requests.shift().res({ value: chunk, done: false });
    } else {
      let n;
      try { n = chunkSize(c.size, chunk); } catch (e) { ctrlError(c, e); throw e; }
      c.queue.push({ chunk, n });
      c.qsize += n;
    }
    callPull(c);
  }
  function ctrlError(c, e) {
    if (c.s.state !== 'readable') return;
    c.queue = [];
    c.qsize = 0;
    clearAlgorithms(c);
    rsError(c.s, e);
  }
  function rsClose(s) {
    s.state = 'closed';
    const r = s.reader;
    if (!r) return;
    for (const q of r.requests.splice(0)) q.res({ value: undefined, done: true });
    r.closed.res();
  }
  function rsError(s, e) {
    s.state = 'errored';
    s.error = e;
    const r = s.reader;
    if (!r) return;
    for (const q of r.requests.splice(0)) q.rej(e);
    r.closed.rej(e);
  }
  function rsCancel(s, reason) {
    s.disturbed = true;
    if (s.state === 'closed') return resolved();
    if (s.state === 'errored') return rejected(s.error);
    rsClose(s);
    const c = s.c;
    c.queue = [];
    c.qsize = 0;
    const p = c.cancel(reason);
    clearAlgorithms(c);
    return p.then(noop);
  }
  // One read: a chunk from the queue, or a pending request the next enqueue fulfils.
  function rsRead(s) {
    s.disturbed = true;
    if (s.state === 'closed') return resolved({ value: undefined, done: true });
    if (s.state === 'errored') return rejected(s.error);
    const c = s.c;
    if (c.queue.length > 0) {
      const { chunk, n } = c.queue.shift();
      c.qsize = c.queue.length ? Math.max(0, c.qsize - n) : 0;
      if (c.closeRequested && c.queue.length === 0) { clearAlgorithms(c); rsClose(s); } else callPull(c);
      return resolved({ value: chunk, done: false });
    }
    const d = deferred();
    s.reader.requests.push(d);
    callPull(c);
    return d.p;
  }

  class ReadableStreamDefaultReader {
    #r;
    constructor(stream) {
      const s = st(stream);
      if (s.reader) throw TE('the stream is locked to a reader');
      const r = { s, requests: [], closed: deferred() };
      handled(r.closed.p);
      if (s.state === 'closed') r.closed.res();
      else if (s.state === 'errored') r.closed.rej(s.error);
      s.reader = r;
      this.#r = r;
    }
    static { readerOf = (o) => { if (o === null || typeof o !== 'object' || !(#r in o)) throw TE('not a ReadableStreamDefaultReader'); return o.#r; }; }
    get closed() { return readerOf(this).closed.p; }
    read() {
      let r;
      try { r = readerOf(this); } catch (e) { return rejected(e); }
      if (!r.s) return rejected(TE('the reader has been released'));
      return rsRead(r.s);
    }
    cancel(reason) {
      let r;
      try { r = readerOf(this); } catch (e) { return rejected(e); }
      if (!r.s) return rejected(TE('the reader has been released'));
      return rsCancel(r.s, reason);
    }
    releaseLock() {
      const r = readerOf(this);
      if (!r.s) return;
      const e = TE('the reader has been released');
      if (r.s.state === 'readable') r.closed.rej(e);
      else { r.closed = deferred(); handled(r.closed.p); r.closed.rej(e); }
      for (const q of r.requests.splice(0)) q.rej(e);
      r.s.reader = null;
      r.s = null;
    }
  }
  Object.defineProperty(ReadableStreamDefaultReader.prototype, Symbol.toStringTag, { value: 'ReadableStreamDefaultReader', configurable: true });

  function tee(s, stream) {
    const reader = new ReadableStreamDefaultReader(stream);
    let reading = false, readAgain = false, canceled1 = false, canceled2 = false, reason1, reason2;
    const cancelled = deferred();
    let b1, b2;
    function pull() {
      if (reading) { readAgain = true; return resolved(); }
      reading = true;
      reader.read().then(({ value, done }) => {
        readAgain = false;
        if (done) {
          reading = false;
          if (!canceled1) ctrlClose(rsOf(b1).c);
          if (!canceled2) ctrlClose(rsOf(b2).c);
          if (!canceled1 || !canceled2) cancelled.res();
          return;
        }
        queueMicrotask(() => {
          reading = false;
          if (!canceled1) ctrlEnqueue(rsOf(b1).c, value);
          if (!canceled2) ctrlEnqueue(rsOf(b2).c, value);
          if (readAgain) pull();
        });
      }, noop);
      return resolved();
    }
    function cancel(which, reason) {
      if (which === 1) { canceled1 = true; reason1 = reason; } else { canceled2 = true; reason2 = reason; }
      if (canceled1 && canceled2) cancelled.res(rsCancel(s, [reason1, reason2]));
      return cancelled.p;
    }
    b1 = new ReadableStream({ pull, cancel: (r) => cancel(1, r) }, { highWaterMark: 0 });
    b2 = new ReadableStream({ pull, cancel: (r) => cancel(2, r) }, { highWaterMark: 0 });
    reader.closed.then(undefined, (e) => {
      ctrlError(rsOf(b1).c, e);
      ctrlError(rsOf(b2).c, e);
      if (!canceled1 || !canceled2) cancelled.res();
    });
    return [b1, b2];
  }

  // The async iterator of values(): next() reads, return() (a `break` in
  // for await) cancels the stream at once unless preventCancel, and both
  // release the lock when the iteration ends.
  const AsyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
  function iterate(stream, preventCancel) {
    const reader = new ReadableStreamDefaultReader(stream);
    let done = false;
    const it = Object.create(AsyncIteratorPrototype);
    const end = (value) => { done = true; reader.releaseLock(); return { value, done: true }; };
    it.next = () => {
      if (done) return resolved({ value: undefined, done: true });
      return reader.read().then((r) => (r.done ? end(undefined) : { value: r.value, done: false }),
        (e) => { end(); throw e; });
    };
    it.return = (value) => {
      if (done) return resolved({ value, done: true });
      if (preventCancel) return resolved(end(value));
      const p = reader.cancel(value);
      end(value);
      return p.then(() => ({ value, done: true }));
    };
    return it;
  }

  function pipe(source, dest, o) {
    const preventClose = !!o.preventClose, preventAbort = !!o.preventAbort, preventCancel = !!o.preventCancel;
    const signal = o.signal;
    const reader = new ReadableStreamDefaultReader(source);
    const writer = new WritableStreamDefaultWriter(dest);
    const ws = wsOf(dest);
    rsOf(source).disturbed = true;
    const d = deferred();
    let shuttingDown = false, currentWrite = resolved();
    let onAbort;
    function finish(isErr, err) {
      writer.releaseLock();
      reader.releaseLock();
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
      if (isErr) d.rej(err); else d.res();
    }
    function shutdown(action, isErr, err) {
      if (shuttingDown) return;
      shuttingDown = true;
      const wait = ws.state === 'writable' && !closeQueuedOrInFlight(ws) ? currentWrite.then(noop, noop) : resolved();
      wait.then(() => (action ? action() : undefined))
        .then(() => finish(isErr, err), (e) => finish(true, e));
    }
    if (signal !== undefined) {
      onAbort = () => {
        const e = signal.reason;
        const acts = [];
        shutdown(() => {
          if (!preventAbort && ws.state === 'writable') acts.push(wsAbort(ws, e));
          if (!preventCancel && rsOf(source).state === 'readable') acts.push(rsCancel(rsOf(source), e));
          return P.all(acts);
        }, true, e);
      };
      if (signal.aborted) { onAbort(); return d.p; }
      signal.addEventListener('abort', onAbort);
    }
    reader.closed.then(undefined, (e) => {
      if (!preventAbort) shutdown(() => wsAbort(ws, e), true, e); else shutdown(null, true, e);
    });
    writer.closed.then(() => {
      const e = TE('the destination stream closed');
      if (!preventCancel) shutdown(() => rsCancel(rsOf(source), e), true, e); else shutdown(null, true, e);
    }, (e) => {
      if (!preventCancel) shutdown(() => rsCancel(rsOf(source), e), true, e); else shutdown(null, true, e);
    });
    function step() {
      if (shuttingDown) return;
      writer.ready.then(() => {
        if (shuttingDown) return;
        return reader.read().then(({ value, done }) => {
          if (shuttingDown) return;
          if (done) {
            if (!preventClose) shutdown(() => { if (closeQueuedOrInFlight(ws) || ws.state === 'closed') return; return writer.close(); });
            else shutdown(null);
            return;
          }
          currentWrite = handled(writer.write(value));
          step();
        });
      }).then(undefined, noop);
    }
    step();
    return d.p;
  }

  // ---------------------------------------------------------------- writable
  const CLOSE = {};
  class WritableStream {
    #s;
    constructor(sink = undefined, strat = undefined) {
      if (sink === null) throw TE('underlying sink cannot be null');
      if (sink !== undefined && sink.type !== undefined) throw new RangeError('invalid type');
      const { hwm, size } = strategy(strat, 1);
      const s = this.#s = { state: 'writable', writer: null, error: undefined, inFlightWrite: null, inFlightClose: null,
        closeRequest: null, pendingAbort: null, backpressure: false, writeRequests: [], c: null };
      const start = method(sink, 'start'), write = method(sink, 'write'), close = method(sink, 'close'), abort = method(sink, 'abort');
      const c = { s, queue: [], qsize: 0, hwm, size, started: false, obj: null, ac: null,
        write: write ? (ch) => promiseCall(write, sink, [ch, c.obj]) : () => resolved(),
        close: close ? () => promiseCall(close, sink, []) : () => resolved(),
        abort: abort ? (r) => promiseCall(abort, sink, [r]) : () => resolved() };
      if (typeof AbortController === 'function') c.ac = new AbortController();
      c.obj = new WritableStreamDefaultController(ctorKey, c);
      s.c = c;
      updateBackpressure(s, wcBackpressure(c));
      const r = start ? start.call(sink, c.obj) : undefined;
      resolved(r).then(() => { c.started = true; advanceQueue(c); },
        (e) => { c.started = true; dealWithRejection(s, e); });
    }
    static { wsOf = (o) => (o !== null && typeof o === 'object' && #s in o ? o.#s : null); }
    get locked() { return !!ws(this).writer; }
    abort(reason) {
      const s = wsOf(this);
      if (!s) return rejected(TE('not a WritableStream'));
      if (s.writer) return rejected(TE('the stream is locked'));
      return wsAbort(s, reason);
    }
    close() {
      const s = wsOf(this);
      if (!s) return rejected(TE('not a WritableStream'));
      if (s.writer) return rejected(TE('the stream is locked'));
      if (closeQueuedOrInFlight(s)) return rejected(TE('the stream is already closing'));
      return wsClose(s);
    }
    getWriter() { return new WritableStreamDefaultWriter(this); }
  }
  Object.defineProperty(WritableStream.prototype, Symbol.toStringTag, { value: 'WritableStream', configurable: true });
  function ws(o) { const s = wsOf(o); if (!s) throw TE('not a WritableStream'); return s; }

  class WritableStreamDefaultController {
    #c;
    constructor(key, c) { if (key !== ctorKey) throw TE('Illegal constructor'); this.#c = c; }
    static { wcOf = (o) => { if (o === null || typeof o !== 'object' || !(#c in o)) throw TE('not a WritableStreamDefaultController'); return o.#c; }; }
    get signal() { const c = wcOf(this); return c.ac ? c.ac.signal : undefined; }
    error(e) { const c = wcOf(this); if (c.s.state === 'writable') wcError(c, e); }
  }
  Object.defineProperty(WritableStreamDefaultController.prototype, Symbol.toStringTag, { value: 'WritableStreamDefaultController', configurable: true });

  const closeQueuedOrInFlight = (s) => !!(s.closeRequest || s.inFlightClose);
  const inFlight = (s) => !!(s.inFlightWrite || s.inFlightClose);
  function wsAbort(s, reason) {
    if (s.state === 'closed' || s.state === 'errored') return resolved();
    if (s.c.ac) { try { s.c.ac.abort(reason); } catch (e) { /* a listener threw */ } }
    if (s.state === 'closed' || s.state === 'errored') return resolved();
    if (s.pendingAbort) return s.pendingAbort.d.p;
    const already = s.state === 'erroring';
    const d = deferred();
    s.pendingAbort = { d, reason: already ? undefined : reason, already };
    if (!already) startErroring(s, reason);
    return d.p;
  }
  function wsClose(s) {
    if (s.state === 'closed' || s.state === 'errored') return rejected(TE('the stream is closed or errored'));
    const d = deferred();
    s.closeRequest = d;
    if (s.writer && s.backpressure && s.state === 'writable') s.writer.ready.res();
    s.c.queue.push({ chunk: CLOSE, n: 0 });
    advanceQueue(s.c);
    return d.p;
  }
  function dealWithRejection(s, e) {
    if (s.state === 'writable') startErroring(s, e); else finishErroring(s);
  }
  function startErroring(s, reason) {
    s.state = 'erroring';
    s.error = reason;
    if (s.writer) rejectReady(s.writer, reason);
    if (!inFlight(s) && s.c.started) finishErroring(s);
  }
  function finishErroring(s) {
    s.state = 'errored';
    s.c.queue = [];
    s.c.qsize = 0;
    for (const q of s.writeRequests.splice(0)) q.rej(s.error);
    const pa = s.pendingAbort;
    if (!pa) { rejectCloseAndClosed(s); return; }
    s.pendingAbort = null;
    if (pa.already) { pa.d.rej(s.error); rejectCloseAndClosed(s); return; }
    s.c.abort(pa.reason).then(() => { pa.d.res(); rejectCloseAndClosed(s); },
      (e) => { pa.d.rej(e); rejectCloseAndClosed(s); });
  }
  function rejectCloseAndClosed(s) {
    if (s.closeRequest) { s.closeRequest.rej(s.error); s.closeRequest = null; }
    if (s.writer) s.writer.closed.rej(s.error);
  }
  function updateBackpressure(s, bp) {
    const w = s.writer;
    if (w && bp !== s.backpressure) {
      if (bp) newReady(w); else w.ready.res();
    }
    s.backpressure = bp;
  }
  const wcDesired = (c) => c.hwm - c.qsize;
  const wcBackpressure = (c) => wcDesired(c) <= 0;
  function wcError(c, e) { startErroring(c.s, e); }
  function advanceQueue(c) {
    const s = c.s;
    if (!c.started || s.inFlightWrite) return;
    if (s.state === 'erroring') { finishErroring(s); return; }
    if (c.queue.length === 0) return;
    const { chunk } = c.queue[0];
    if (chunk === CLOSE) {
      s.inFlightClose = s.closeRequest;
      s.closeRequest = null;
      c.queue.shift();
      c.close().then(() => {
        s.inFlightClose.res();
        s.inFlightClose = null;
        if (s.state === 'erroring') {
          s.error = undefined;
          if (s.pendingAbort) { s.pendingAbort.d.res(); s.pendingAbort = null; }
        }
        s.state = 'closed';
        if (s.writer) s.writer.closed.res();
      }, (e) => {
        s.inFlightClose.rej(e);
        s.inFlightClose = null;
        if (s.pendingAbort) { s.pendingAbort.d.rej(e); s.pendingAbort = null; }
        dealWithRejection(s, e);
      });
      return;
    }
    s.inFlightWrite = s.writeRequests.shift();
    c.write(chunk).then(() => {
      s.inFlightWrite.res();
      s.inFlightWrite = null;
      const q = c.queue.shift();
      c.qsize = c.queue.length ? Math.max(0, c.qsize - q.n) : 0;
      if (!closeQueuedOrInFlight(s) && s.state === 'writable') updateBackpressure(s, wcBackpressure(c));
      advanceQueue(c);
    }, (e) => {
      s.inFlightWrite.rej(e);
      s.inFlightWrite = null;
      dealWithRejection(s, e);
    });
  }
  // writer.ready is replaced when backpressure returns; a rejection
  // replaces it only if it has already settled.
  function newReady(w) {
    const d = deferred();
    handled(d.p);
    const res = d.res, rej = d.rej;
    d.res = (v) => { w.readySettled = true; res(v); };
    d.rej = (e) => { w.readySettled = true; rej(e); };
    w.ready = d;
    w.readySettled = false;
  }
  function rejectReady(w, e) {
    if (!w.readySettled) w.ready.rej(e);
    else { newReady(w); w.ready.rej(e); }
  }

  class WritableStreamDefaultWriter {
    #w;
    constructor(stream) {
      const s = ws(stream);
      if (s.writer) throw TE('the stream is locked to a writer');
      const w = { s, ready: null, readySettled: false, closed: deferred() };
      handled(w.closed.p);
      newReady(w);
      if (s.state === 'writable') {
        if (!closeQueuedOrInFlight(s) && s.backpressure) { /* pending */ } else w.ready.res();
      } else if (s.state === 'erroring') {
        w.ready.rej(s.error);
      } else if (s.state === 'closed') {
        w.ready.res();
        w.closed.res();
      } else {
        w.ready.rej(s.error);
        w.closed.rej(s.error);
      }
      s.writer = w;
      this.#w = w;
    }
    static { writerOf = (o) => { if (o === null || typeof o !== 'object' || !(#w in o)) throw TE('not a WritableStreamDefaultWriter'); return o.#w; }; }
    get closed() { return writerOf(this).closed.p; }
    get ready() { return writerOf(this).ready.p; }
    get desiredSize() {
      const w = writerOf(this);
      if (!w.s) throw TE('the writer has been released');
      const s = w.s;
      if (s.state === 'errored' || s.state === 'erroring') return null;
      if (s.state === 'closed') return 0;
      return wcDesired(s.c);
    }
    abort(reason) {
      let w;
      try { w = writerOf(this); } catch (e) { return rejected(e); }
      if (!w.s) return rejected(TE('the writer has been released'));
      return wsAbort(w.s, reason);
    }
    close() {
      let w;
      try { w = writerOf(this); } catch (e) { return rejected(e); }
      const s = w.s;
      if (!s) return rejected(TE('the writer has been released'));
      if (closeQueuedOrInFlight(s)) return rejected(TE('the stream is already closing'));
      return wsClose(s);
    }
    write(chunk) {
      let w;
      try { w = writerOf(this); } catch (e) { return rejected(e); }
      const s = w.s;
      if (!s) return rejected(TE('the writer has been released'));
      const c = s.c;
      let n = 1;
      try { n = chunkSize(c.size, chunk); } catch (e) { if (s.state === 'writable') wcError(c, e); }
      if (s.state === 'errored' || s.state === 'erroring') return rejected(s.error);
      if (closeQueuedOrInFlight(s) || s.state === 'closed') return rejected(TE('the stream is closing or closed'));
      const d = deferred();
      s.writeRequests.push(d);
      c.queue.push({ chunk, n });
      c.qsize += n;
      if (!closeQueuedOrInFlight(s) && s.state === 'writable') updateBackpressure(s, wcBackpressure(c));
      advanceQueue(c);
      return d.p;
    }
    releaseLock() {
      const w = writerOf(this);
      const s = w.s;
      if (!s) return;
      const e = TE('the writer has been released');
      rejectReady(w, e);
      if (s.state === 'writable' || s.state === 'erroring') w.closed.rej(e);
      else { w.closed = deferred(); handled(w.closed.p); w.closed.rej(e); }
      s.writer = null;
      w.s = null;
    }
  }
  Object.defineProperty(WritableStreamDefaultWriter.prototype, Symbol.toStringTag, { value: 'WritableStreamDefaultWriter', configurable: true });

  // --------------------------------------------------------------- transform
  class TransformStream {
    #t;
    constructor(transformer = undefined, wstrat = undefined, rstrat = undefined) {
      if (transformer === null) throw TE('transformer cannot be null');
      if (transformer !== undefined && (transformer.readableType !== undefined || transformer.writableType !== undefined))
        throw new RangeError('invalid readableType or writableType');
      const t = this.#t = { backpressure: undefined, bpChange: null, readable: null, writable: null, obj: null };
      const startD = deferred();
      const transform = method(transformer, 'transform'), flush = method(transformer, 'flush');
      const cancel = method(transformer, 'cancel'), start = method(transformer, 'start');
      t.transform = transform ? (ch) => promiseCall(transform, transformer, [ch, t.obj])
        : (ch) => { try { tcEnqueue(t, ch); return resolved(); } catch (e) { return rejected(e); } };
      t.flush = flush ? () => promiseCall(flush, transformer, [t.obj]) : () => resolved();
      t.cancel = cancel ? (r) => promiseCall(cancel, transformer, [r]) : () => resolved();
      const ws0 = strategy(wstrat, 1), rs0 = strategy(rstrat, 0);
      t.writable = new WritableStream({
        start: () => startD.p,
        write: (ch) => tsSinkWrite(t, ch),
        abort: (r) => { const p = t.cancel(r); tsClear(t); return p.then(() => { tsError(t, r); }); },
        close: () => tsSinkClose(t),
      }, { highWaterMark: ws0.hwm, size: ws0.size });
      t.readable = new ReadableStream({
        start: () => startD.p,
        pull: () => { setBackpressure(t, false); return t.bpChange.p; },
        cancel: (r) => { const p = t.cancel(r); tsClear(t); return p.then(() => errorWritableAndUnblock(t, r)); },
      }, { highWaterMark: rs0.hwm, size: rs0.size });
      setBackpressure(t, true);
      t.obj = new TransformStreamDefaultController(ctorKey, t);
      startD.res(start ? start.call(transformer, t.obj) : undefined);
    }
    static { tsOf = (o) => { if (o === null || typeof o !== 'object' || !(#t in o)) throw TE('not a TransformStream'); return o.#t; }; }
    get readable() { return tsOf(this).readable; }
    get writable() { return tsOf(this).writable; }
  }
  Object.defineProperty(TransformStream.prototype, Symbol.toStringTag, { value: 'TransformStream', configurable: true });

  class TransformStreamDefaultController {
    #t;
    constructor(key, t) { if (key !== ctorKey) throw TE('Illegal constructor'); this.#t = t; }
    static { tcOf = (o) => { if (o === null || typeof o !== 'object' || !(#t in o)) throw TE('not a TransformStreamDefaultController'); return o.#t; }; }
    get desiredSize() { return desiredSize(rsOf(tcOf(this).readable).c); }
    enqueue(chunk) { tcEnqueue(tcOf(this), chunk); }
    error(e) { tsError(tcOf(this), e); }
    terminate() {
      const t = tcOf(this);
      ctrlClose(rsOf(t.readable).c);
      errorWritableAndUnblock(t, TE('the TransformStream was terminated'));
    }
  }
  Object.defineProperty(TransformStreamDefaultController.prototype, Symbol.toStringTag, { value: 'TransformStreamDefaultController', configurable: true });

  function tsClear(t) { t.transform = () => resolved(); t.flush = () => resolved(); t.cancel = () => resolved(); }
  function tcEnqueue(t, chunk) {
    const c = rsOf(t.readable).c;
    if (!canCloseOrEnqueue(c)) throw TE('the readable side is closed or errored');
    try { ctrlEnqueue(c, chunk); } catch (e) { errorWritableAndUnblock(t, e); throw rsOf(t.readable).error; }
    const bp = !shouldPull(c);
    if (bp !== t.backpressure && bp) setBackpressure(t, true);
  }
  function tsError(t, e) {
    ctrlError(rsOf(t.readable).c, e);
    errorWritableAndUnblock(t, e);
  }
  function errorWritableAndUnblock(t, e) {
    tsClear(t);
    const s = wsOf(t.writable);
    if (s.state === 'writable') wcError(s.c, e);
    if (t.backpressure) setBackpressure(t, false);
  }
  function setBackpressure(t, b) {
    if (t.bpChange) t.bpChange.res();
    t.bpChange = deferred();
    t.backpressure = b;
  }
  function perform(t, ch) {
    return t.transform(ch).then(undefined, (r) => { tsError(t, r); throw r; });
  }
  function tsSinkWrite(t, ch) {
    if (t.backpressure) {
      return t.bpChange.p.then(() => {
        const s = wsOf(t.writable);
        if (s.state === 'erroring') throw s.error;
        return perform(t, ch);
      });
    }
    return perform(t, ch);
  }
  function tsSinkClose(t) {
    const p = t.flush();
    tsClear(t);
    const rs = rsOf(t.readable);
    return p.then(() => {
      if (rs.state === 'errored') throw rs.error;
      ctrlClose(rs.c);
    }, (r) => { tsError(t, r); throw rs.error; });
  }

  // -------------------------------------------------------------- strategies
  class CountQueuingStrategy {
    #h;
    constructor(init) { if (init == null || init.highWaterMark === undefined) throw TE('highWaterMark is required'); this.#h = Number(init.highWaterMark); }
    get highWaterMark() { return this.#h; }
    get size() { return countSize; }
  }
  const countSize = function size() { return 1; };
  class ByteLengthQueuingStrategy {
    #h;
    constructor(init) { if (init == null || init.highWaterMark === undefined) throw TE('highWaterMark is required'); this.#h = Number(init.highWaterMark); }
    get highWaterMark() { return this.#h; }
    get size() { return byteSize; }
  }
  const byteSize = function size(chunk) { return chunk.byteLength; };

  // ---------------------------------------------------------------- encoding
  // Bytes of a BufferSource as a Uint8Array (a view, not a copy), or null.
  function bytesOf(v) {
    if (v instanceof Uint8Array) return v;
    if (v instanceof ArrayBuffer) return new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return null;
  }
  const copyBytes = (u) => new Uint8Array(u);
  class TextEncoderStream {
    #t;
    constructor() {
      let pending = '';
      this.#t = new TransformStream({
        transform(chunk, c) {
          let s = pending + String(chunk);
          pending = '';
          const last = s.charCodeAt(s.length - 1);
          if (last >= 0xd800 && last <= 0xdbff) { pending = s[s.length - 1]; s = s.slice(0, -1); }
          if (s.length) c.enqueue(N.encode(s));
        },
        flush(c) { if (pending) c.enqueue(new Uint8Array([0xef, 0xbf, 0xbd])); },
      });
    }
    get encoding() { return 'utf-8'; }
    get readable() { return this.#t.readable; }
    get writable() { return this.#t.writable; }
  }
  // Length of an incomplete UTF-8 sequence at the end of u (0 if none).
  function utf8Tail(u) {
    const n = u.length;
    for (let k = 1; k <= 3 && k <= n; k++) {
      const b = u[n - k];
      if ((b & 0xc0) === 0x80) continue;
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      return need > k ? k : 0;
    }
    return 0;
  }
  class TextDecoderStream {
    #t; #fatal; #ignoreBOM;
    constructor(label = 'utf-8', opts = {}) {
      const l = String(label).trim().toLowerCase();
      if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8') throw new RangeError(`unsupported encoding ${label} (only utf-8)`);
      const fatal = this.#fatal = !!(opts && opts.fatal), ignoreBOM = this.#ignoreBOM = !!(opts && opts.ignoreBOM);
      let carry = null, bomSeen = ignoreBOM;
      const decode = (u, c) => {
        if (!bomSeen && u.length) {
          if (u.length < 3 && u[0] === 0xef && (u.length < 2 || u[1] === 0xbb)) { carry = u; return; }
          bomSeen = true;
          if (u[0] === 0xef && u[1] === 0xbb && u[2] === 0xbf) u = u.subarray(3);
        }
        if (u.length) { const s = N.decode(u, fatal); if (s.length) c.enqueue(s); }
      };
      this.#t = new TransformStream({
        transform(chunk, c) {
          let u = bytesOf(chunk);
          if (!u) throw TE('TextDecoderStream chunks must be ArrayBuffer or ArrayBufferView');
          if (carry) { const m = new Uint8Array(carry.length + u.length); m.set(carry); m.set(u, carry.length); u = m; carry = null; }
          const tail = utf8Tail(u);
          if (tail) { carry = copyBytes(u.subarray(u.length - tail)); u = u.subarray(0, u.length - tail); }
          decode(u, c);
        },
        flush(c) { if (carry) { const u = carry; carry = null; bomSeen = true; decode(u, c); } },
      });
    }
    get encoding() { return 'utf-8'; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    get readable() { return this.#t.readable; }
    get writable() { return this.#t.writable; }
  }

  // ------------------------------------------------- helpers for the C side
  function concat(list, total) {
    const out = new Uint8Array(total);
    let off = 0;
    for (const u of list) { out.set(u, off); off += u.length; }
    return out;
  }
  function fromBytes(u) {
    return new ReadableStream({
      type: 'bytes',
      pull(c) { if (u.length) c.enqueue(copyBytes(u)); c.close(); },
    });
  }
  // All of a body stream's bytes; chunks must be BufferSources (Fetch).
  function readAll(stream) {
    const reader = new ReadableStreamDefaultReader(stream);
    const list = [];
    let total = 0;
    const next = () => reader.read().then(({ value, done }) => {
      if (done) return concat(list, total);
      const u = bytesOf(value);
      if (!u) {
        const e = TE('a body stream chunk is not an ArrayBuffer or ArrayBufferView');
        return reader.cancel(e).then(() => { throw e; });
      }
      list.push(copyBytes(u));
      total += u.length;
      return next();
    });
    return next();
  }
  const disturbed = (s) => { const x = rsOf(s); return !!(x && (x.disturbed || x.reader)); };

  return {
    globals: {
      ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController,
      WritableStream, WritableStreamDefaultWriter, WritableStreamDefaultController,
      TransformStream, TransformStreamDefaultController,
      CountQueuingStrategy, ByteLengthQueuingStrategy, TextEncoderStream, TextDecoderStream,
    },
    isStream: (v) => !!rsOf(v), disturbed, fromBytes, readAll, tee: (s) => tee(st(s), s),
  };
})
