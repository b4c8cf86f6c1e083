// console's formatting for atoll isolates, in the spirit of Node's
// util.inspect (which is also what Workers' logs look like): printf-style
// %s %d %i %f %o %O %j %c %%, strings bare at the top level and quoted
// inside objects, Map/Set/typed arrays/ArrayBuffer/Date/RegExp/Error/
// class/function/symbol/bigint forms, [Circular *n], depth 2, and Web API
// objects (URL, Request, Response, Blob, AbortSignal …) by the values of
// their prototype's getters instead of `{}`. Compiled to bytecode at build
// time and loaded by console.c on the first console call, so an idle
// isolate pays nothing for it; console.c falls back to its small C
// formatter if this fails.
(function (N) {
  'use strict';
  const MAX_ITEMS = 100, MAX_STRING = 10000, DEPTH = 2, STACK_LINES = 10;
  const OP = Object.prototype;
  const tag = (v) => OP.toString.call(v).slice(8, -1);
  const ident = /^[A-Za-z_$][\w$]*$/;

  function quote(s) {
    if (s.length > MAX_STRING) s = s.slice(0, MAX_STRING) + '... ' + (s.length - MAX_STRING) + ' more characters';
    const q = s.includes("'") && !s.includes('"') ? '"' : "'";
    return q + s.replace(/[\\\n\r\t\b\f\v\0]/g, (c) => ({ '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f', '\v': '\\v', '\0': '\\0' })[c])
      .replace(q === "'" ? /'/g : /"/g, '\\' + q) + q;
  }
  const key = (k) => typeof k === 'symbol' ? '[' + k.toString() + ']' : ident.test(k) ? k : quote(k);

  function ctorName(v) {
    try {
      let p = Object.getPrototypeOf(v);
      while (p) {
        const d = Object.getOwnPropertyDescriptor(p, 'constructor');
        if (d && typeof d.value === 'function' && d.value.name) return d.value.name;
        p = Object.getPrototypeOf(p);
      }
    } catch {}
    return null;
  }

  function errorText(e) {
    let head;
    try { head = String(e); } catch { head = '[Error]'; }
    let stack = '';
    try { stack = typeof e.stack === 'string' ? e.stack : ''; } catch {}
    const lines = stack.split('\n').filter((l) => l.length);
    let out = head;
    for (const l of lines.slice(0, STACK_LINES)) out += '\n' + l;
    if (lines.length > STACK_LINES) out += '\n    ... ' + (lines.length - STACK_LINES) + ' more';
    return out;
  }

  // Getter-backed state of a platform object: the accessors of its
  // prototypes (below Object.prototype), read on the object.
  function getters(v) {
    const out = [];
    const seen = new Set();
    let p = Object.getPrototypeOf(v);
    while (p && p !== OP) {
      for (const k of Object.getOwnPropertyNames(p)) {
        // `body` would turn a buffered body into a stream: not worth a log line.
        if (seen.has(k) || k === 'constructor' || k === 'body' || k.startsWith('on')) continue;
        const d = Object.getOwnPropertyDescriptor(p, k);
        if (!d || typeof d.get !== 'function') continue;
        seen.add(k);
        let val;
        try { val = v[k]; } catch { continue; }
        if (typeof val === 'function') continue;
        out.push([k, val]);
      }
      p = Object.getPrototypeOf(p);
    }
    return out;
  }

  function fmt(v, depth, seen, top) {
    switch (typeof v) {
      case 'string': return top ? v : quote(v);
      case 'number': return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint': return v + 'n';
      case 'symbol': return v.toString();
      case 'undefined': return 'undefined';
      case 'boolean': return String(v);
      case 'function': {
        let src = '';
        try { src = Function.prototype.toString.call(v); } catch {}
        const name = v.name;
        if (/^class\b/.test(src)) return '[class ' + (name || '(anonymous)') + ']';
        const kind = tag(v) === 'AsyncFunction' ? 'AsyncFunction' : tag(v) === 'GeneratorFunction' ? 'GeneratorFunction' : 'Function';
        return '[' + kind + (name ? ': ' + name : ' (anonymous)') + ']';
      }
    }
    if (v === null) return 'null';
    return fmtObject(v, depth, seen);
  }

  function wrap(prefix, items, open, close) {
    if (!items.length) return (prefix ? prefix + ' ' : '') + open + close;
    const body = items.join(', ');
    const start = (prefix ? prefix + ' ' : '') + open;
    if (body.length + start.length > 72 || body.includes('\n'))
      return start + '\n  ' + items.join(',\n').replace(/\n/g, '\n  ') + '\n' + close;
    return start + ' ' + body + ' ' + close;
  }

  function fmtObject(v, depth, seen) {
    if (v instanceof Error || tag(v) === 'Error' || tag(v) === 'DOMException') return seen.size ? '[' + errorText(v).split('\n')[0] + ']' : errorText(v);
    const t = tag(v);
    if (t === 'Date') { const d = +v; return Number.isNaN(d) ? 'Invalid Date' : new Date(d).toISOString(); }
    if (t === 'RegExp') return String(v);
    if (t === 'Promise') return 'Promise { <unknown> }';
    if (t === 'WeakMap' || t === 'WeakSet') return t + ' { <items unknown> }';
    if (v instanceof Boolean || v instanceof Number || v instanceof String)
      return '[' + t + ': ' + fmt(v.valueOf(), depth, seen, false) + ']';
    if (seen.has(v)) return '[Circular *1]';
    const name = ctorName(v);
    if (t === 'ArrayBuffer') {
      const u = new Uint8Array(v);
      const hex = Array.from(u.subarray(0, 50), (b) => b.toString(16).padStart(2, '0')).join(' ');
      return 'ArrayBuffer { [Uint8Contents]: <' + hex + (u.length > 50 ? ' ... ' + (u.length - 50) + ' more bytes' : '') + '>, byteLength: ' + u.length + ' }';
    }
    const isArr = Array.isArray(v);
    const isTyped = ArrayBuffer.isView(v) && !(v instanceof DataView);
    if (depth > DEPTH) return isArr ? '[Array]' : '[' + (name || 'Object') + ']';
    seen.add(v);
    try {
      const items = [];
      let prefix = name && name !== 'Object' ? name : '';
      if (isArr || isTyped) {
        const n = v.length;
        let holes = 0;
        const flush = () => { if (holes) { items.push('<' + holes + ' empty item' + (holes > 1 ? 's' : '') + '>'); holes = 0; } };
        for (let i = 0; i < n && items.length < MAX_ITEMS; i++) {
          if (isArr && !Object.prototype.hasOwnProperty.call(v, i)) { holes++; continue; }
          flush();
          items.push(fmt(v[i], depth + 1, seen, false));
        }
        flush();
        if (n > MAX_ITEMS) items.push('... ' + (n - MAX_ITEMS) + ' more items');
        if (isTyped) prefix = (name || t) + '(' + n + ')';
        else if (prefix === 'Array') prefix = '';
        else if (prefix) prefix += '(' + n + ')';
        if (isArr) for (const k of Object.keys(v)) if (!/^\d+$/.test(k)) items.push(key(k) + ': ' + fmt(v[k], depth + 1, seen, false));
        return wrap(prefix, items, '[', ']');
      }
      if (t === 'Map') {
        for (const [k, val] of v) {
          if (items.length >= MAX_ITEMS) { items.push('... ' + (v.size - MAX_ITEMS) + ' more items'); break; }
          items.push(fmt(k, depth + 1, seen, false) + ' => ' + fmt(val, depth + 1, seen, false));
        }
        return wrap((prefix || 'Map') + '(' + v.size + ')', items, '{', '}');
      }
      if (t === 'Set') {
        for (const k of v) {
          if (items.length >= MAX_ITEMS) { items.push('... ' + (v.size - MAX_ITEMS) + ' more items'); break; }
          items.push(fmt(k, depth + 1, seen, false));
        }
        return wrap((prefix || 'Set') + '(' + v.size + ')', items, '{', '}');
      }
      if (t === 'Headers') { // as the C formatter has always shown them
        for (const [k, val] of v) items.push(quote(k) + ': ' + fmt(val, depth + 1, seen, false));
        return wrap(t, items, '{', '}');
      }
      if (t === 'URLSearchParams' || t === 'FormData') {
        for (const [k, val] of v) items.push(quote(k) + ' => ' + fmt(val, depth + 1, seen, false));
        return wrap(t, items, '{', '}');
      }
      const own = Object.keys(v);
      for (const k of own) {
        if (items.length >= MAX_ITEMS) { items.push('... ' + (own.length - MAX_ITEMS) + ' more properties'); break; }
        let val;
        const d = Object.getOwnPropertyDescriptor(v, k);
        if (d && d.get && !('value' in d)) { items.push(key(k) + ': [Getter' + (d.set ? '/Setter' : '') + ']'); continue; }
        try { val = v[k]; } catch { val = undefined; }
        items.push(key(k) + ': ' + fmt(val, depth + 1, seen, false));
      }
      for (const s of Object.getOwnPropertySymbols(v))
        if (Object.getOwnPropertyDescriptor(v, s).enumerable) items.push(key(s) + ': ' + fmt(v[s], depth + 1, seen, false));
      // A platform object (URL, Request, Blob …) keeps its state behind
      // getters: show them.
      if (!own.length && prefix && Object.getPrototypeOf(v) !== OP)
        for (const [k, val] of getters(v)) items.push(key(k) + ': ' + fmt(val, depth + 1, seen, false));
      if (!prefix && Object.getPrototypeOf(v) === null) prefix = '[Object: null prototype]';
      else if (!prefix && t !== 'Object') prefix = 'Object [' + t + ']';
      return wrap(prefix, items, '{', '}');
    } finally {
      seen.delete(v);
    }
  }

  function inspect(v) { return fmt(v, 0, new Set(), false); }

  // console.log(...args): a first string argument may hold format specifiers.
  function format(args) {
    const out = [];
    let i = 0;
    if (typeof args[0] === 'string' && args.length > 1 && args[0].includes('%')) {
      const f = args[0];
      i = 1;
      let s = '';
      for (let k = 0; k < f.length; k++) {
        const c = f[k];
        if (c !== '%' || k + 1 >= f.length) { s += c; continue; }
        const n = f[++k];
        if (n === '%') { s += '%'; continue; }
        if (!'sdifoOjc'.includes(n)) { s += '%' + n; continue; }
        if (i >= args.length) { s += '%' + n; continue; }
        const a = args[i++];
        switch (n) {
          case 's': s += typeof a === 'string' ? a : typeof a === 'bigint' ? a + 'n' : typeof a === 'symbol' ? a.toString() : (a !== null && typeof a === 'object') ? fmt(a, 1, new Set(), false) : String(a); break;
          case 'd': case 'i': {
            if (typeof a === 'bigint') { s += a + 'n'; break; }
            if (typeof a === 'symbol') { s += 'NaN'; break; }
            const x = Number(a);
            s += n === 'i' ? String(Math.trunc(x)) : Object.is(x, -0) ? '-0' : String(x);
            break;
          }
          case 'f': s += typeof a === 'symbol' ? 'NaN' : String(parseFloat(a)); break;
          case 'j': try { s += JSON.stringify(a); } catch { s += '[Circular]'; } break;
          case 'c': break;
          default: s += inspect(a);
        }
      }
      out.push(s);
    }
    for (; i < args.length; i++) out.push(fmt(args[i], 0, new Set(), true));
    return out.join(' ');
  }

  // console's other methods, as V8's console (and so Workers) has them:
  // assert, count/countReset, time/timeLog/timeEnd, trace, dir and table
  // (printed like log). console.c calls extra(name, args) and prints the
  // [level, text] it returns; null prints nothing. The counters and timers
  // live here, one set per isolate; group indentation is console.c's.
  const counts = new Map(), timers = new Map();
  const label = (args) => (args.length && args[0] !== undefined ? String(args[0]) : 'default');
  function extra(name, args) {
    switch (name) {
      case 'assert': {
        if (args[0]) return null;
        const rest = args.slice(1);
        if (!rest.length) return ['error', 'Assertion failed'];
        if (typeof rest[0] === 'string') rest[0] = 'Assertion failed: ' + rest[0];
        else rest.unshift('Assertion failed:');
        return ['error', format(rest)];
      }
      case 'count': {
        const l = label(args), n = (counts.get(l) || 0) + 1;
        counts.set(l, n);
        return ['info', l + ': ' + n];
      }
      case 'countReset': {
        const l = label(args);
        if (!counts.has(l)) return ['warn', "Count for '" + l + "' does not exist"];
        counts.set(l, 0);
        return null;
      }
      case 'time': {
        const l = label(args);
        if (timers.has(l)) return ['warn', "Timer '" + l + "' already exists"];
        timers.set(l, performance.now());
        return null;
      }
      case 'timeLog': case 'timeEnd': {
        const l = label(args), t = timers.get(l);
        if (t === undefined) return ['warn', "Timer '" + l + "' does not exist"];
        if (name === 'timeEnd') timers.delete(l);
        // The clock stands still while JavaScript runs (the timing defence):
        // only time across I/O shows.
        let s = l + ': ' + (performance.now() - t).toFixed(3) + 'ms';
        if (name === 'timeLog' && args.length > 1) s += ' ' + format(args.slice(1));
        return ['info', s];
      }
      case 'trace': {
        // Frames after console.trace's own (native) one: the caller's.
        const st = String(new Error().stack || '').split('\n');
        const frames = st.slice(st.findIndex((l) => l.includes('(native)')) + 1).filter((l) => l).join('\n');
        return ['info', 'Trace' + (args.length ? ': ' + format(args) : '') + (frames ? '\n' + frames : '')];
      }
      case 'dir': return ['info', inspect(args[0])];
      default: return ['info', format(args)]; // table
    }
  }

  return { globals: {}, format, inspect, extra };
})
