"""End-to-end tests of the URL, encoding and abort APIs through `atoll dev`:
a worker that routes on new URL(request.url), answers bytes from
TextEncoder, waits on AbortSignal.timeout over the real loop, and throws a
DOMException that is logged with its name, while the server keeps serving."""
import json
import os
import tempfile

from harness import main, request, Server, tempdir, test, write

TMP = tempdir("atoll-e2e-webapi-")
WORKER = os.path.join(TMP, "worker.js")
write(WORKER, r"""
export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/params":
        return Response.json({ href: url.href, q: url.searchParams.getAll("q"),
                               sorted: (url.searchParams.sort(), url.search) });
      case "/bytes":
        return new Response(new TextEncoder().encode(atob(url.searchParams.get("b64"))));
      case "/timeout": {
        const s = AbortSignal.timeout(20);
        const t0 = performance.now();
        await new Promise((resolve) => s.onabort = resolve);
        return new Response(`${s.reason.name} ${performance.now() - t0 >= 15}`);
      }
      case "/throw":
        atob("*");
      case "/big-headers": {
        // 129 KiB of headers: over the limit; 120 KiB: under it.
        const n = Number(url.searchParams.get("kib"));
        const h = new Headers();
        for (let i = 0; i < n; i++) h.set("x-h" + i, "v".repeat(1024 - 8 - String(i).length));
        return new Response("big", { headers: h });
      }
    }
    return new Response("not found", { status: 404 });
  },
};
""")


@test
def url_and_search_params_from_the_request():
    with Server(WORKER, "--quiet") as srv:
        status, _, body = request(srv, path="/x/../params?q=1&z=%20&q=%C3%A9", headers={"Host": "Example.TEST:8080"})
        assert status == 200, (status, body)
        got = json.loads(body)
        assert got == {"href": "http://example.test:8080/params?q=1&z=%20&q=%C3%A9",
                       "q": ["1", "\u00e9"], "sorted": "?q=1&q=%C3%A9&z=+"}, got


@test
def encoder_bytes_and_timeout_signal():
    with Server(WORKER, "--quiet") as srv:
        status, _, body = request(srv, path="/bytes?b64=6SE%3D")
        assert status == 200 and body == "\u00e9!".encode(), (status, body)
        status, _, body = request(srv, path="/timeout")
        assert status == 200 and body == b"TimeoutError true", (status, body)


@test
def response_headers_are_capped_at_128_kib():
    with Server(WORKER, "--quiet") as srv:
        status, headers, body = request(srv, path="/big-headers?kib=120")
        assert status == 200 and body == b"big" and len(headers) > 120, (status, len(headers))
        status, _, body = request(srv, path="/big-headers?kib=129")
        assert status == 500 and b"over 128 KiB" in body, (status, body[:200])
        assert request(srv, path="/nothing")[0] == 404


@test
def dom_exception_is_logged_by_name_and_serving_goes_on():
    with Server(WORKER) as srv:
        status, _, _ = request(srv, path="/throw")
        assert status == 500, status
        status, _, _ = request(srv, path="/nothing")
        assert status == 404, status
        srv.stop()
        out = srv.output()
        assert "InvalidCharacterError: atob" in out, out[-2000:]


if __name__ == "__main__":
    main()
