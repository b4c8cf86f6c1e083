// TextEncoder, TextDecoder, atob and btoa.
import { test, eq, deq, throws, assert, run } from "./harness.js";

const u8 = (...b) => new Uint8Array(b);

test("TextEncoder: utf-8 only, lone surrogates as U+FFFD", () => {
  const e = new TextEncoder();
  eq(e.encoding, "utf-8");
  deq(e.encode("\u00e9\u{1F600}"), u8(0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80));
  deq(e.encode("\ud800"), u8(0xef, 0xbf, 0xbd));
  deq(e.encode(), u8());
});

test("TextEncoder.encodeInto reports read and written", () => {
  const dst = new Uint8Array(4);
  deq(new TextEncoder().encodeInto("a\u00e9\u{1F600}", dst), { read: 2, written: 3 });
  deq(dst, u8(0x61, 0xc3, 0xa9, 0));
});

test("TextDecoder utf-8: replacement, fatal, BOM handling", () => {
  eq(new TextDecoder().decode(u8(0x61, 0xff, 0x62)), "a\ufffdb");
  throws(() => new TextDecoder("utf-8", { fatal: true }).decode(u8(0xff)), TypeError);
  eq(new TextDecoder().decode(u8(0xef, 0xbb, 0xbf, 0x61)), "a");
  eq(new TextDecoder("utf-8", { ignoreBOM: true }).decode(u8(0xef, 0xbb, 0xbf, 0x61)), "\ufeffa");
  eq(new TextDecoder("utf-8", { fatal: true }).fatal, true);
});

test("TextDecoder streaming keeps split sequences", () => {
  const d = new TextDecoder();
  eq(d.decode(u8(0xe2, 0x82), { stream: true }), "");
  eq(d.decode(u8(0xac)), "\u20ac");
  eq(new TextDecoder().decode(u8(0xe2, 0x82)), "\ufffd");
});

test("TextDecoder labels: utf-16le, latin1 → windows-1252, unknown throws RangeError", () => {
  eq(new TextDecoder("utf-16le").decode(u8(0x61, 0, 0x3d, 0xd8, 0, 0xde)), "a\u{1F600}");
  eq(new TextDecoder("UTF8").encoding, "utf-8");
  eq(new TextDecoder("latin1").encoding, "windows-1252");
  eq(new TextDecoder("latin1").decode(u8(0x80, 0xe9)), "\u20ac\u00e9");
  eq(new TextDecoder(" unicode-1-1-utf-8 ").encoding, "utf-8");
  throws(() => new TextDecoder("no-such-encoding"), RangeError);
});

test("TextDecoder accepts ArrayBuffer, views and DataView", () => {
  const d = new TextDecoder();
  eq(d.decode(u8(0x68, 0x69).buffer), "hi");
  eq(d.decode(new DataView(u8(0x68, 0x69).buffer, 1)), "i");
  eq(d.decode(new Uint16Array([0x6968])), "hi");
  throws(() => d.decode("string"), TypeError);
});

test("btoa and atob, forgiving base64", () => {
  eq(btoa("hello"), "aGVsbG8=");
  eq(btoa("\xff\xfe"), "//4=");
  eq(atob("aGVsbG8="), "hello");
  eq(atob(" aGVs bG8 "), "hello");
  eq(atob("aGVsbG8"), "hello");
  eq(atob(""), "");
});

test("atob of a long binary string (bytes above 0x7f take two UTF-8 bytes inside)", () => {
  // 256 bytes, all >= 0x80, as an RS256 signature mostly is: the decoder
  // once bounded its output by the input's length and threw "out of memory".
  let bin = "";
  for (let i = 0; i < 256; i++) bin += String.fromCharCode(0x80 + (i % 128));
  const b64 = btoa(bin);
  eq(b64.length, 344);
  eq(atob(b64), bin);
  eq(atob(b64.replace(/=+$/, "")), bin);
  const all = atob(btoa("\xff".repeat(3000)));
  eq(all.length, 3000);
  eq(all.charCodeAt(2999), 0xff);
});

test("btoa of non-latin1 and atob of bad input throw InvalidCharacterError", () => {
  eq(throws(() => btoa("\u0100")).name, "InvalidCharacterError");
  eq(throws(() => atob("a")).name, "InvalidCharacterError");
  eq(throws(() => atob("ab=c")).name, "InvalidCharacterError");
  eq(throws(() => atob("*")).name, "InvalidCharacterError");
  assert(throws(() => atob("a")) instanceof DOMException);
});

export default run();
