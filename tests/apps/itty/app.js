// An itty-router app as a user would write it for Cloudflare Workers,
// bundled by esbuild at test time (tests/e2e/test_apps.py) from itty-router
// installed off the npm registry, and served unmodified by atoll.
import { AutoRouter, error, json, status, withParams, withContent, cors } from "itty-router";

const { preflight, corsify } = cors({ origin: "*", allowMethods: ["GET", "POST", "DELETE"] });
const todos = new Map();
let next = 1;

const router = AutoRouter({
  before: [preflight],
  finally: [corsify, (res) => { res.headers.set("x-router", "itty"); return res; }],
});

router
  .get("/", () => "itty on atoll")
  .get("/hello/:name", ({ params, query }) => ({ hello: params.name, excited: query.excited === "1" }))
  .get("/files/:path+", ({ params }) => ({ path: params.path }))
  .post("/todos", withContent, ({ content }) => {
    if (!content || typeof content.title !== "string") return error(400, "title required");
    const todo = { id: next++, title: content.title, done: false };
    todos.set(todo.id, todo);
    return json(todo, { status: 201 });
  })
  .get("/todos", () => [...todos.values()])
  .get("/todos/:id", withParams, ({ id }) => todos.get(Number(id)) ?? error(404, "no such todo"))
  .delete("/todos/:id", ({ params }) => (todos.delete(Number(params.id)) ? status(204) : error(404)))
  .get("/text", () => new Response("plain response", { headers: { "content-type": "text/plain" } }))
  .get("/env", (req, env, ctx) => ({ hasWaitUntil: typeof ctx.waitUntil === "function", url: req.url }))
  .get("/throw", () => { throw new Error("boom"); });

export default router;
