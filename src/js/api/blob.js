// Blob, File and FormData (with multipart/form-data and urlencoded
// parsing, and multipart serialization) for atoll isolates. Compiled to
// bytecode at build time like streams.js and loaded by streams.c on first
// use of one of these globals, or when a body is a Blob/FormData/
// URLSearchParams or is read with blob() or formData(). Blob.stream() asks
// C for the streams bundle (N.streams()) only when it is called.
(function (N) {
  'use strict';
  const P = Promise;
  const TE = (m) => new TypeError(m);
  const resolved = (v) => P.resolve(v);
  const rejected = (e) => P.reject(e);
  let blobBytes, fdOf;
  function bytesOf(v) {
    if (v instanceof Uint8Array) return v;
    if (v instanceof ArrayBuffer) return new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return null;
  }
  const copyBytes = (u) => new Uint8Array(u);

  // -------------------------------------------------------------- Blob, File
  function concat(list, total) {
    const out = new Uint8Array(total);
    let off = 0;
    for (const u of list) { out.set(u, off); off += u.length; }
    return out;
  }
  class Blob {
    #b; #type;
    constructor(parts = undefined, opts = undefined) {
      const list = [];
      let total = 0;
      if (parts !== undefined) {
        if (parts === null || typeof parts !== 'object' || typeof parts[Symbol.iterator] !== 'function')
          throw TE('Blob parts must be a sequence');
        const endings = opts && opts.endings !== undefined ? String(opts.endings) : 'transparent';
        if (endings !== 'transparent' && endings !== 'native') throw TE('invalid endings');
        for (const p of parts) {
          let u;
          if (p !== null && typeof p === 'object' && #b in p) u = p.#b;
          else if ((u = bytesOf(p))) u = copyBytes(u);
          else u = N.encode(endings === 'native' ? String(p).replace(/\r\n|\r/g, '\n') : String(p));
          list.push(u);
          total += u.length;
        }
      }
      this.#b = list.length === 1 ? list[0] : concat(list, total);
      let t = opts && opts.type !== undefined ? String(opts.type) : '';
      this.#type = /^[\x20-\x7e]*$/.test(t) ? t.toLowerCase() : '';
    }
    static { blobBytes = (o) => (o !== null && typeof o === 'object' && #b in o ? o.#b : null); }
    get size() { return bb(this).length; }
    get type() { bb(this); return this.#type; }
    slice(start = undefined, end = undefined, type = undefined) {
      const b = bb(this), n = b.length;
      const rel = (x, d) => { if (x === undefined) return d; x = Math.trunc(Number(x)) || 0; return x < 0 ? Math.max(n + x, 0) : Math.min(x, n); };
      const s = rel(start, 0), e = rel(end, n);
      const out = new Blob([], { type: type === undefined ? '' : type });
      out.#b = b.subarray(s, Math.max(s, e));
      return out;
    }
    text() { try { return resolved(N.decode(bb(this), false)); } catch (e) { return rejected(e); } }
    arrayBuffer() { try { return resolved(copyBytes(bb(this)).buffer); } catch (e) { return rejected(e); } }
    bytes() { try { return resolved(copyBytes(bb(this))); } catch (e) { return rejected(e); } }
    stream() { return N.streams().fromBytes(bb(this)); }
  }
  function bb(o) { const b = blobBytes(o); if (!b) throw TE('not a Blob'); return b; }
  Object.defineProperty(Blob.prototype, Symbol.toStringTag, { value: 'Blob', configurable: true });
  class File extends Blob {
    #name; #lastModified;
    constructor(parts, name, opts = undefined) {
      if (arguments.length < 2) throw TE('File requires bits and a name');
      super(parts, opts);
      this.#name = String(name);
      this.#lastModified = opts && opts.lastModified !== undefined ? Number(opts.lastModified) : Date.now();
    }
    get name() { return this.#name; }
    get lastModified() { return this.#lastModified; }
  }
  Object.defineProperty(File.prototype, Symbol.toStringTag, { value: 'File', configurable: true });
  const isFile = (v) => { try { return v instanceof File; } catch (e) { return false; } };

  // ---------------------------------------------------------------- FormData
  function entryValue(value, filename) {
    if (blobBytes(value)) {
      if (isFile(value) && filename === undefined) return value;
      const f = new File([value], filename === undefined ? (isFile(value) ? value.name : 'blob') : String(filename), { type: value.type });
      return f;
    }
    return String(value);
  }
  class FormData {
    #e = [];
    constructor(form = undefined) { if (form !== undefined) throw TE('FormData from an HTML form is not supported'); }
    static { fdOf = (o) => { if (o === null || typeof o !== 'object' || !(#e in o)) throw TE('not a FormData'); return o.#e; }; }
    append(name, value, filename = undefined) {
      if (arguments.length < 2) throw TE('FormData.append requires a name and a value');
      fdOf(this).push([String(name), entryValue(value, filename)]);
    }
    delete(name) { const e = fdOf(this); name = String(name); for (let i = e.length - 1; i >= 0; i--) if (e[i][0] === name) e.splice(i, 1); }
    get(name) { name = String(name); const x = fdOf(this).find((p) => p[0] === name); return x ? x[1] : null; }
    getAll(name) { name = String(name); return fdOf(this).filter((p) => p[0] === name).map((p) => p[1]); }
    has(name) { name = String(name); return fdOf(this).some((p) => p[0] === name); }
    set(name, value, filename = undefined) {
      if (arguments.length < 2) throw TE('FormData.set requires a name and a value');
      const e = fdOf(this); name = String(name);
      const entry = [name, entryValue(value, filename)];
      const i = e.findIndex((p) => p[0] === name);
      if (i < 0) { e.push(entry); return; }
      e[i] = entry;
      for (let k = e.length - 1; k > i; k--) if (e[k][0] === name) e.splice(k, 1);
    }
    *entries() { const e = fdOf(this); for (let i = 0; i < e.length; i++) yield [e[i][0], e[i][1]]; }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(cb, thisArg = undefined) { for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
  }
  Object.defineProperty(FormData.prototype, Symbol.toStringTag, { value: 'FormData', configurable: true });

  const escName = (s) => s.replace(/\n/g, '%0A').replace(/\r/g, '%0D').replace(/"/g, '%22');
  function serializeForm(fd) {
    const e = fdOf(fd);
    let boundary = '----atollFormBoundary';
    for (let i = 0; i < 16; i++) boundary += 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(Math.random() * 36)];
    const list = [];
    let total = 0;
    const push = (u) => { list.push(u); total += u.length; };
    for (const [name, v] of e) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escName(name)}"`;
      if (typeof v === 'string') {
        push(N.encode(head + '\r\n\r\n'));
        push(N.encode(v.replace(/\r\n|\r|\n/g, '\r\n')));
      } else {
        head += `; filename="${escName(v.name)}"\r\nContent-Type: ${v.type || 'application/octet-stream'}\r\n\r\n`;
        push(N.encode(head));
        push(blobBytes(v));
      }
      push(N.encode('\r\n'));
    }
    push(N.encode(`--${boundary}--\r\n`));
    return [concat(list, total), `multipart/form-data; boundary=${boundary}`];
  }

  // Parses a body as FormData by its Content-Type; malformed input is a TypeError.
  function indexOf(u, pat, from) {
    const first = pat[0], last = u.length - pat.length;
    outer: for (let i = from; i <= last; i++) {
      if (u[i] !== first) continue;
      for (let k = 1; k < pat.length; k++) if (u[i + k] !== pat[k]) continue outer;
      return i;
    }
    return -1;
  }
  function param(header, name) {
    const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i');
    const m = re.exec(header);
    if (!m) return undefined;
    return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
  }
  const unesc = (s) => s.replace(/%22/g, '"').replace(/%0D/gi, '\r').replace(/%0A/gi, '\n');
  function parseMultipart(u, boundary) {
    const bad = () => TE('malformed multipart/form-data body');
    if (!boundary || boundary.length > 200) throw TE('multipart/form-data without a valid boundary');
    const fd = new FormData();
    const delim = N.encode('--' + boundary), hdrEnd = N.encode('\r\n\r\n');
    let pos = indexOf(u, delim, 0);
    if (pos < 0) throw bad();
    pos += delim.length;
    for (;;) {
      if (u[pos] === 0x2d && u[pos + 1] === 0x2d) return fd; // closing delimiter
      if (u[pos] !== 0x0d || u[pos + 1] !== 0x0a) throw bad();
      pos += 2;
      const he = indexOf(u, hdrEnd, pos);
      if (he < 0) throw bad();
      const headers = N.decode(u.subarray(pos, he), false).split('\r\n');
      let disp, type = '';
      for (const h of headers) {
        const i = h.indexOf(':');
        if (i < 0) throw bad();
        const k = h.slice(0, i).trim().toLowerCase(), v = h.slice(i + 1).trim();
        if (k === 'content-disposition') disp = v;
        else if (k === 'content-type') type = v;
      }
      if (!disp || !/^form-data\s*(;|$)/i.test(disp)) throw bad();
      const name = param(disp, 'name');
      if (name === undefined) throw bad();
      const filename = param(disp, 'filename');
      const start = he + 4;
      const end = indexOf(u, N.encode('\r\n--' + boundary), start);
      if (end < 0) throw bad();
      const body = u.subarray(start, end);
      if (filename !== undefined) fd.append(unesc(name), new File([body], unesc(filename), { type }));
      else fd.append(unesc(name), N.decode(body, false));
      pos = end + 2 + delim.length;
    }
  }
  function formDecode(s) {
    const bytes = [];
    const out = [];
    for (let i = 0; i < s.length; i++) {
      const ch = s[i];
      if (ch === '+') out.push(' ');
      else if (ch === '%' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
        bytes.length = 0;
        while (s[i] === '%' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) { bytes.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 3; }
        i--;
        out.push(N.decode(new Uint8Array(bytes), false));
      } else out.push(ch);
    }
    return out.join('');
  }
  function parseForm(u, contentType) {
    const ct = contentType === null || contentType === undefined ? '' : String(contentType);
    const essence = ct.split(';')[0].trim().toLowerCase();
    if (essence === 'multipart/form-data') return parseMultipart(u, param(ct, 'boundary'));
    if (essence === 'application/x-www-form-urlencoded') {
      const fd = new FormData();
      for (const part of N.decode(u, false).split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        fd.append(formDecode(i < 0 ? part : part.slice(0, i)), formDecode(i < 0 ? '' : part.slice(i + 1)));
      }
      return fd;
    }
    throw TE(`cannot parse a body of type '${ct}' as FormData`);
  }

  // [bytes, content type or undefined] for a Blob, FormData or
  // URLSearchParams body; undefined for anything else.
  function extract(v) {
    const b = blobBytes(v);
    if (b) return [b, v.type || undefined];
    try { fdOf(v); return serializeForm(v); } catch (e) { /* not a FormData */ }
    if (Object.prototype.toString.call(v) === '[object URLSearchParams]')
      return [N.encode(String(v)), 'application/x-www-form-urlencoded;charset=UTF-8'];
    return undefined;
  }

  return {
    globals: { Blob, File, FormData },
    extract, blob: (u, type) => new Blob([u], { type: type || '' }), parseForm,
  };
})
