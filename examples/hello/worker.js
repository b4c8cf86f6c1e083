// The smallest atoll worker: a Workers-style ES module.
export default {
  async fetch(request, env, ctx) {
    if (request.url.endsWith("/json")) {
      return Response.json({ hello: "atoll", method: request.method });
    }
    return new Response("Hello from atoll!\n", {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
