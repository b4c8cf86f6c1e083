// A Hono app as a user would write it for Cloudflare Workers, bundled by
// esbuild at test time (tests/e2e/test_apps.py) from hono installed off the
// npm registry, and served unmodified by atoll.
import { Hono } from "hono";
import { getCookie, setCookie, deleteCookie } from "hono/cookie";
import { stream, streamText } from "hono/streaming";
import { HTTPException } from "hono/http-exception";
import { cors } from "hono/cors";
import { etag } from "hono/etag";
import { sign, verify } from "hono/jwt";
import { basicAuth } from "hono/basic-auth";
import { env, getRuntimeKey } from "hono/adapter";

const SECRET = "jwt-secret";

const app = new Hono();

// Middleware: timing header on every response, and a request id.
app.use("*", async (c, next) => {
  c.set("rid", crypto.randomUUID());
  await next();
  c.header("x-powered-by", "hono-on-atoll");
  c.header("x-request-id", c.get("rid"));
});

// Middleware scoped to a path: a bearer-token check.
app.use("/admin/*", async (c, next) => {
  if (c.req.header("authorization") !== "Bearer s3cret") return c.json({ error: "unauthorized" }, 401);
  await next();
});

app.get("/", (c) => c.text("Hello Hono!"));
// Hono tells runtimes apart by navigator.userAgent: on atoll it must see
// Workers ("workerd"), or env(c) hands the app {} instead of the bindings.
app.get("/runtime", (c) => c.json({ runtime: getRuntimeKey(), bindings: env(c) === c.env }));

// Built-in middleware: CORS, ETag, basic auth; JWT on crypto.subtle (HMAC).
app.use("/api/*", cors({ origin: "https://app.example", allowMethods: ["GET", "POST"] }));
app.get("/api/data", etag(), (c) => c.json({ data: [1, 2, 3] }));
app.get("/basic", basicAuth({ username: "u", password: "p" }), (c) => c.text("welcome"));
app.post("/token", async (c) => {
  const { sub } = await c.req.json();
  return c.json({ token: await sign({ sub, exp: Math.floor(Date.now() / 1000) + 60 }, SECRET) });
});
app.get("/me", async (c) => {
  const auth = c.req.header("authorization") ?? "";
  try {
    const payload = await verify(auth.replace(/^Bearer /, ""), SECRET, "HS256");
    return c.json({ sub: payload.sub });
  } catch (e) {
    return c.json({ error: e.name }, 401);
  }
});

// A sub-app mounted with route(), a redirect and HTML.
const books = new Hono();
books.get("/", (c) => c.json(["b1", "b2"]));
books.get("/:id{[0-9]+}", (c) => c.json({ book: Number(c.req.param("id")) }));
app.route("/books", books);
app.get("/old", (c) => c.redirect("/books", 301));
app.get("/page", (c) => c.html("<h1>Hi</h1>"));

app.get("/users/:id/posts/:postId", (c) => {
  const { id, postId } = c.req.param();
  return c.json({ id, postId, q: c.req.query("q") ?? null, tags: c.req.queries("tag") ?? [] });
});

app.post("/echo", async (c) => {
  const body = await c.req.json();
  return c.json({ got: body, ct: c.req.header("content-type") }, 201);
});

app.post("/form", async (c) => {
  const body = await c.req.parseBody({ all: true });
  const out = {};
  for (const [k, v] of Object.entries(body)) {
    const one = (x) => (typeof x === "string" ? x : { file: x.name, size: x.size, type: x.type, text: null });
    out[k] = Array.isArray(v) ? v.map(one) : one(v);
  }
  for (const [k, v] of Object.entries(body))
    if (v && typeof v === "object" && !Array.isArray(v)) out[k].text = await v.text();
  return c.json(out);
});

app.get("/cookies/set", (c) => {
  setCookie(c, "session", "abc 123", { path: "/", httpOnly: true, maxAge: 3600, sameSite: "Lax" });
  setCookie(c, "theme", "dark");
  return c.text("set");
});

app.get("/cookies/get", (c) => c.json({ all: getCookie(c), session: getCookie(c, "session") ?? null }));

app.get("/cookies/clear", (c) => {
  deleteCookie(c, "session", { path: "/" });
  return c.text("cleared");
});

app.get("/stream", (c) =>
  stream(c, async (s) => {
    for (let i = 0; i < 3; i++) {
      await s.write(new TextEncoder().encode("part" + i + "\n"));
      await s.sleep(200);
    }
  }));

app.get("/stream-text", (c) =>
  streamText(c, async (s) => {
    await s.writeln("line one");
    await s.sleep(10);
    await s.write("line two");
  }));

app.get("/admin/stats", (c) => c.json({ ok: true }));

app.get("/fail", () => {
  throw new HTTPException(418, { message: "teapot" });
});

app.get("/crash", () => {
  throw new Error("unexpected");
});

app.onError((err, c) => {
  if (err instanceof HTTPException) return err.getResponse();
  return c.json({ error: err.message }, 500);
});

app.notFound((c) => c.json({ error: "not found", path: c.req.path }, 404));

export default app;
