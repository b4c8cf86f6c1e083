// Blob, File and FormData.
import { test, eq, deq, throws, rejects, assert, readAll, run } from "./harness.js";

test("Blob from parts of every kind; size and type lower-cased", async () => {
  const b = new Blob(["a", new Uint8Array([98]), new Uint8Array([99]).buffer, new Blob(["d"])], { type: "Text/Plain" });
  eq(b.size, 4);
  eq(b.type, "text/plain");
  eq(await b.text(), "abcd");
  eq(new Blob(["x"], { type: "bad\u00e9" }).type, "");
  eq(new Blob().size, 0);
});

test("Blob endings: native converts line endings", async () => {
  eq(await new Blob(["a\r\nb\rc\n"], { endings: "native" }).text(), "a\nb\nc\n");
  eq(await new Blob(["a\r\n"]).text(), "a\r\n");
});

test("slice with negative and out-of-range bounds, and a content type", async () => {
  const b = new Blob(["hello world"]);
  eq(await b.slice(-5).text(), "world");
  eq(await b.slice(0, -6).text(), "hello");
  eq(await b.slice(20).text(), "");
  eq(b.slice(0, 1, "text/x").type, "text/x");
});

test("arrayBuffer, bytes, stream", async () => {
  const b = new Blob(["ab"]);
  deq(new Uint8Array(await b.arrayBuffer()), new Uint8Array([97, 98]));
  deq(await b.bytes(), new Uint8Array([97, 98]));
  const chunks = await readAll(b.stream());
  eq(new TextDecoder().decode(chunks[0]), "ab");
});

test("Blob text decodes UTF-8; parts are USVStrings", async () => {
  eq(await new Blob(["\u00e9\ud800"]).text(), "\u00e9\ufffd");
});

test("File: name, lastModified, instanceof Blob", () => {
  const f = new File(["x"], "a/b.txt", { type: "text/plain", lastModified: 42 });
  eq(f.name, "a/b.txt");
  eq(f.lastModified, 42);
  assert(f instanceof Blob);
  eq(Object.prototype.toString.call(f), "[object File]");
  throws(() => new File(["x"]), TypeError);
});

test("FormData: append/set/get/getAll/has/delete and order", () => {
  const fd = new FormData();
  fd.append("a", "1");
  fd.append("b", "2");
  fd.append("a", "3");
  deq(fd.getAll("a"), ["1", "3"]);
  fd.set("a", "4");
  deq([...fd], [["a", "4"], ["b", "2"]]);
  eq(fd.has("b"), true);
  fd.delete("b");
  eq(fd.get("b"), null);
  deq([...fd.keys()], ["a"]);
});

test("FormData: Blob values become Files named 'blob' or the filename", () => {
  const fd = new FormData();
  fd.append("f", new Blob(["x"]));
  fd.append("g", new Blob(["y"]), "y.bin");
  fd.append("h", new File(["z"], "orig.txt"), "renamed.txt");
  eq(fd.get("f").name, "blob");
  eq(fd.get("g").name, "y.bin");
  eq(fd.get("h").name, "renamed.txt");
  assert(fd.get("f") instanceof File);
  throws(() => fd.append("x", "v", "filename-only-for-blobs"), TypeError);
});

test("FormData values: strings normalized, non-strings stringified", () => {
  const fd = new FormData();
  fd.append("n", 5);
  fd.append("s", "a\ud800");
  eq(fd.get("n"), "5");
  eq(fd.get("s"), "a\ufffd");
});

test("multipart serialization escapes names and round-trips", async () => {
  const fd = new FormData();
  fd.append('q"uote', "v\r\nline");
  fd.append("file", new File(["\x00\x01bin"], 'na"me.bin', { type: "application/octet-stream" }));
  const r = new Response(fd);
  const text = await r.clone().text();
  assert(text.includes('name="q%22uote"'), text);
  const back = await r.formData();
  eq(back.get('q"uote'), "v\r\nline");
  eq(back.get("file").name, 'na"me.bin');
  eq(back.get("file").size, 5);
});

test("urlencoded round trip through a Request", async () => {
  const body = new URLSearchParams([["a", "1 2"], ["\u00e9", "&"]]);
  const fd = await new Request("https://x/", { method: "POST", body }).formData();
  eq(fd.get("a"), "1 2");
  eq(fd.get("\u00e9"), "&");
});

export default run();
