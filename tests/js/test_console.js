// console: each case logs and asks the runner to find the text in atoll's
// log (t.expectLog), so this checks what an operator actually reads.
import { test, eq, assert, run } from "./harness.js";

test("strings bare, numbers, -0, bigint, symbol, null, undefined", (t) => {
  console.log("c1", "plain", 1.5, -0, 10n, Symbol("s"), null, undefined, true);
  t.expectLog("c1 plain 1.5 -0 10n Symbol(s) null undefined true");
});

test("objects and arrays, nested strings quoted, holes", (t) => {
  console.log("c2", { a: 1, "b-c": "x'y", d: [1, , "s"] });
  t.expectLog(`c2 { a: 1, 'b-c': "x'y", d: [ 1, <1 empty item>, 's' ] }`);
});

test("depth is limited and cycles are marked", (t) => {
  const o = { l1: { l2: { l3: { l4: 1 } } } };
  o.self = o;
  console.log("c3", o);
  t.expectLog("l3: [Object]");
  t.expectLog("self: [Circular *1]");
});

test("functions, classes, Map, Set, typed arrays, Date, RegExp", (t) => {
  console.log("c4", function named() {}, class K {}, new Map([["k", 1]]), new Set([2]), new Uint8Array([1, 2]), new Date(0), /x/g);
  t.expectLog("c4 [Function: named] [class K] Map(1) { 'k' => 1 } Set(1) { 2 } Uint8Array(2) [ 1, 2 ] 1970-01-01T00:00:00.000Z /x/g");
});

test("format specifiers %s %d %i %f %j %o %%", (t) => {
  console.log("c5 %s|%d|%i|%f|%j|%o|%%|%x", "str", "42", 3.9, "1.5", { j: 1 }, [1], "rest");
  t.expectLog('c5 str|42|3|1.5|{"j":1}|[ 1 ]|%|%x rest');
});

test("assert, count, time, trace, dir, table and group exist and print", async (t) => {
  // Workers code calls V8's whole console; a missing method was a TypeError.
  for (const m of ["assert", "count", "countReset", "time", "timeLog", "timeEnd", "trace", "dir",
                   "table", "group", "groupCollapsed", "groupEnd"])
    eq(typeof console[m], "function", m);
  console.assert(true, "c9 never printed");
  console.assert(false, "c9 assert %s", "fmt");
  t.expectLog("Assertion failed: c9 assert fmt");
  console.assert(0, { c9: "obj" });
  t.expectLog("Assertion failed: { c9: 'obj' }");
  console.count("c9count");
  console.count("c9count");
  t.expectLog("c9count: 2");
  console.countReset("c9count");
  console.count("c9count");
  t.expectLog("c9count: 1");
  console.time("c9t");
  await new Promise((r) => setTimeout(r, 5));
  console.timeLog("c9t", "half");
  t.expectLog("c9t: ");
  t.expectLog("ms half");
  console.timeEnd("c9t");
  console.timeEnd("c9t");
  t.expectLog("Timer 'c9t' does not exist");
  console.trace("c9 trace");
  t.expectLog("Trace: c9 trace\n    at ");
  console.dir({ c9dir: "s" });
  t.expectLog("{ c9dir: 's' }");
  console.table([{ c9table: 1 }]);
  t.expectLog("[ { c9table: 1 } ]");
  console.group("c9 group");
  console.log("c9 nested");
  console.groupEnd();
  console.groupEnd(); // one too many: no effect
  console.log("c9 after");
  t.expectLog("   c9 nested"); // indented two spaces after the tenant tag
  t.expectLog("] c9 after");
});

test("errors print with their stack", (t) => {
  console.error("c6", new TypeError("bad thing"));
  t.expectLog("c6 TypeError: bad thing\n    at ");
});

test("URL, Request, Response and Headers show their state, not {}", (t) => {
  console.log("c7", new URL("https://example.com/p?q=1"));
  t.expectLog("c7 URL {");
  t.expectLog("href: 'https://example.com/p?q=1'");
  console.log("c8", new Request("https://example.com/", { method: "POST", headers: { "x-h": "v" } }));
  t.expectLog("method: 'POST'");
  t.expectLog("Headers { 'x-h': 'v' }");
  console.log("c9", new Response("x", { status: 201 }));
  t.expectLog("status: 201");
  console.log("c10", new Blob(["ab"], { type: "text/plain" }), AbortSignal.abort("r"));
  t.expectLog("c10 Blob { size: 2, type: 'text/plain' } AbortSignal { aborted: true, reason: 'r' }");
});

test("log levels: info, warn, error, debug", (t) => {
  console.info("c11 info-line");
  console.warn("c11 warn-line");
  console.error("c11 error-line");
  console.debug("c11 debug-line");
  t.expectLog("warn  [test_console.js] c11 warn-line");
  t.expectLog("error [test_console.js] c11 error-line");
  t.expectLog("c11 info-line");
});

test("a throwing getter or toString does not break console.log", (t) => {
  const o = { get boom() { throw new Error("no"); } };
  const p = { toString() { throw new Error("no"); } };
  console.log("c12", o, Object.create(null));
  t.expectLog("c12 { boom: [Getter] } [Object: null prototype] {}");
});

test("console methods exist and return undefined", () => {
  for (const m of ["log", "info", "warn", "error", "debug"]) eq(console[m]("x"), undefined);
});

export default run();
