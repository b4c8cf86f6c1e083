// A tiny test harness that runs inside atoll: each tests/js/*.js file is a
// worker module that imports this one, declares cases with
// `test("name", async (t) => …)` and exports `run()` as its default. The
// runner (tests/e2e/test_js.py) serves the file with `atoll dev`, asks for
// the list of cases (`?list`), then runs each case in a request of its own
// (`?only=NAME`, so each has the whole per-request CPU budget) and reads
// back a JSON report.
//
// `t` carries the request, env and ctx of that request and `t.upstream`, the
// base URL of a loopback HTTP server the runner started for fetch() tests;
// `t.expectLog(text)` asks the runner to find text in atoll's log (console).

const cases = [];

export function test(name, fn) {
  cases.push({ name, fn });
}

function show(v) {
  try {
    if (typeof v === "string") return JSON.stringify(v);
    if (v instanceof Uint8Array) return "Uint8Array[" + Array.from(v).join(",") + "]";
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed" + (msg ? ": " + msg : ""));
}

export function eq(actual, expected, msg) {
  if (!Object.is(actual, expected))
    throw new Error((msg ? msg + ": " : "") + "expected " + show(expected) + ", got " + show(actual));
}

function deepEqual(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!deepEqual(a[k], b[k])) return false;
  return true;
}

export function deq(actual, expected, msg) {
  if (!deepEqual(actual, expected))
    throw new Error((msg ? msg + ": " : "") + "expected " + show(expected) + ", got " + show(actual));
}

function checkError(e, type, what) {
  if (type === undefined) return;
  if (typeof type === "string") {
    if (!e || e.name !== type)
      throw new Error(what + " " + type + ", got " + (e && e.name) + ": " + (e && e.message));
  } else if (!(e instanceof type)) {
    throw new Error(what + " " + type.name + ", got " + (e && e.name) + ": " + (e && e.message));
  }
}

// throws(fn, TypeError) or throws(fn, "AbortError") (checked against e.name).
export function throws(fn, type) {
  try {
    fn();
  } catch (e) {
    checkError(e, type, "expected");
    return e;
  }
  throw new Error("expected " + (type ? (type.name || type) : "an exception") + ", nothing thrown");
}

export async function rejects(p, type) {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    checkError(e, type, "expected a rejection with");
    return e;
  }
  throw new Error("expected a rejection with " + (type ? (type.name || type) : "anything") + ", resolved");
}

export const bytes = (...b) => new Uint8Array(b);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function readAll(stream) {
  const out = [];
  for await (const chunk of stream) out.push(chunk);
  return out;
}

export function run() {
  return {
    async fetch(request, env, ctx) {
      const url = new URL(request.url);
      const only = url.searchParams.get("only");
      if (url.searchParams.has("list"))
        return Response.json(cases.map((c) => c.name));
      const results = [];
      for (const c of cases) {
        if (only && c.name !== only) continue;
        // t.expectLog(s): the runner checks that atoll's log holds s.
        const logs = [];
        const t = { request, env, ctx, upstream: url.searchParams.get("upstream"),
                    expectLog: (s) => logs.push(s) };
        try {
          await c.fn(t);
          results.push({ name: c.name, ok: true, logs });
        } catch (e) {
          results.push({
            name: c.name,
            ok: false,
            error: String(e && e.name) + ": " + String(e && e.message),
            stack: e && e.stack ? String(e.stack) : "",
          });
        }
      }
      return new Response(JSON.stringify({ results }), {
        headers: { "content-type": "application/json" },
      });
    },
  };
}
