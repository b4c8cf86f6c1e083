// URL and URLSearchParams: the WPT URL data (served by the runner from
// ../shared/conformance/wpt-url, the same files tests/unit/test_webapi.c
// runs) and spec edge cases.
import { test, eq, deq, throws, assert, run } from "./harness.js";

async function wpt(t, name) {
  const r = await fetch(t.upstream + "/wpt/" + name);
  eq(r.status, 200, "conformance data " + name + " (set ATOLL_CONFORMANCE)");
  return r.json();
}

test("WPT urltestdata.json: every case", async (t) => {
  const data = await wpt(t, "urltestdata.json");
  let passed = 0, total = 0;
  const failures = [];
  for (const c of data) {
    if (typeof c === "string") continue;
    total++;
    try {
      if (c.failure) {
        let threw = false;
        try { new URL(c.input, c.base ?? undefined); } catch (e) { threw = e instanceof TypeError; }
        if (!threw) throw new Error("should have failed");
        if (URL.canParse(c.input, c.base ?? undefined)) throw new Error("canParse true");
      } else {
        const u = new URL(c.input, c.base ?? undefined);
        for (const k of ["href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"])
          if (u[k] !== c[k]) throw new Error(k + ": " + u[k] + " != " + c[k]);
        if (c.origin !== undefined && u.origin !== c.origin) throw new Error("origin " + u.origin);
        if (c.searchParams !== undefined && u.searchParams.toString() !== c.searchParams) throw new Error("searchParams");
      }
      passed++;
    } catch (e) {
      if (failures.length < 5) failures.push(JSON.stringify(c.input) + ": " + e.message);
    }
  }
  console.log("wpt-url urltestdata.json through tests/js: " + passed + "/" + total + " passed");
  eq(passed, total, failures.join("; "));
});

test("WPT setters_tests.json: every case", async (t) => {
  const data = await wpt(t, "setters_tests.json");
  let passed = 0, total = 0;
  const failures = [];
  for (const [setter, cases] of Object.entries(data)) {
    if (setter === "comment") continue;
    for (const c of cases) {
      total++;
      const u = new URL(c.href);
      u[setter] = c.new_value;
      const bad = Object.entries(c.expected).filter(([k, v]) => u[k] !== v);
      if (bad.length === 0) passed++;
      else if (failures.length < 5) failures.push(setter + " " + c.href + ": " + bad[0][0]);
    }
  }
  console.log("wpt-url setters_tests.json through tests/js: " + passed + "/" + total + " passed");
  eq(passed, total, failures.join("; "));
});

test("WPT toascii.json: every case", async (t) => {
  const data = await wpt(t, "toascii.json");
  let passed = 0, total = 0;
  for (const c of data) {
    if (typeof c === "string") continue;
    total++;
    let host = null;
    try { host = new URL("https://" + c.input + "/x").host; } catch {}
    if (host === c.output) passed++;
  }
  console.log("wpt-url toascii.json through tests/js: " + passed + "/" + total + " passed");
  eq(passed, total);
});

test("URL basics and toJSON/toString", () => {
  const u = new URL("https://user:pa ss@EXAMPLE.com:8080/a/../b?q=1#frag");
  eq(u.href, "https://user:pa%20ss@example.com:8080/b?q=1#frag");
  eq(u.origin, "https://example.com:8080");
  eq(String(u), u.href);
  eq(JSON.stringify({ u }), '{"u":"' + u.href + '"}');
});

test("relative resolution and invalid input", () => {
  eq(new URL("../c?x", "https://h/a/b/").href, "https://h/a/c?x");
  eq(new URL("//other/p", "https://h/").href, "https://other/p");
  throws(() => new URL("nope"), TypeError);
  throws(() => new URL("https://exa mple.com/"), TypeError);
  eq(URL.canParse("a", "https://h/"), true);
  eq(URL.canParse("a"), false);
  eq(URL.parse("a"), null);
  eq(URL.parse("/p", "https://h").href, "https://h/p");
});

test("IDNA: unicode hosts become punycode", () => {
  eq(new URL("https://b\u00fccher.example/").hostname, "xn--bcher-kva.example");
  eq(new URL("https://\u0441\u0430\u0439\u0442.\u0440\u0444").host, "xn--80aswg.xn--p1ai");
});

test("special-scheme defaults: port dropped, backslashes, IPv4 and IPv6 hosts", () => {
  eq(new URL("http://h:80/").port, "");
  eq(new URL("http:\\\\h\\p").href, "http://h/p");
  eq(new URL("http://0x7f.1/").hostname, "127.0.0.1");
  eq(new URL("http://[0:0::1]/").hostname, "[::1]");
});

test("searchParams is live both ways", () => {
  const u = new URL("https://h/?a=1&b=2");
  u.searchParams.append("c", "3 4");
  eq(u.search, "?a=1&b=2&c=3+4");
  u.search = "?z=9";
  eq(u.searchParams.get("z"), "9");
  eq(u.searchParams.get("a"), null);
  u.searchParams.delete("z");
  eq(u.href, "https://h/");
});

test("URLSearchParams: init forms, sort, has/delete with value, size", () => {
  deq([...new URLSearchParams("?a=1&a=2&b")], [["a", "1"], ["a", "2"], ["b", ""]]);
  deq([...new URLSearchParams([["x", "1"]])], [["x", "1"]]);
  deq([...new URLSearchParams({ y: "2" })], [["y", "2"]]);
  const p = new URLSearchParams("c=3&a=2&b=1&a=1");
  p.sort();
  eq(p.toString(), "a=2&a=1&b=1&c=3");
  eq(p.size, 4);
  eq(p.has("a", "1"), true);
  p.delete("a", "2");
  eq(p.getAll("a").join(), "1");
  throws(() => new URLSearchParams([["only-one"]]), TypeError);
});

test("URLSearchParams encoding: + and %20, unpaired surrogates", () => {
  eq(new URLSearchParams("a=b+c%20d").get("a"), "b c d");
  eq(new URLSearchParams({ k: "\u00e9 *-._~" }).toString(), "k=%C3%A9+*-._%7E");
  eq(new URLSearchParams({ k: "\ud800" }).toString(), "k=%EF%BF%BD");
});

test("setters ignore invalid values", () => {
  const u = new URL("https://h/p");
  u.protocol = "not a scheme";
  eq(u.protocol, "https:");
  u.port = "99999";
  eq(u.port, "");
  u.host = "";
  eq(u.host, "h");
});

export default run();
