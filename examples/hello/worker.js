// The hello-world tenant: `atoll dev examples/hello/worker.js`.
export default {
  async fetch(request, env, ctx) {
    return new Response("Hello from atoll!\n", {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
