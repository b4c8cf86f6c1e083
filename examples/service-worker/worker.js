// A classic service-worker script: the older Workers format, still common.
addEventListener("fetch", (event) => {
  event.respondWith(handle(event.request));
});

async function handle(request) {
  const body = request.method === "POST" ? await request.text() : "";
  return new Response(`${request.method} ${request.url}\n${body}`, {
    headers: { "content-type": "text/plain" },
  });
}
