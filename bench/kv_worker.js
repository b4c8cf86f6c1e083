// The worker bench/kv_serve.sh measures: a hello-world path with no KV, a
// get of one existing key, and a put of a new key per request (answered
// after the put is durable).
let n = 0;
export default {
  async fetch(request, env) {
    const path = request.url.replace(/^[a-z]+:\/\/[^/]*/, "");
    if (path === "/get") return new Response(await env.KV.get("bench-key"));
    if (path === "/put") {
      await env.KV.put("k-" + (n++) + "-" + Math.random(), "a value of some thirty-two bytes");
      return new Response("ok");
    }
    if (path === "/seed") { await env.KV.put("bench-key", "hello from kv"); return new Response("seeded"); }
    return new Response("hello");
  },
};
