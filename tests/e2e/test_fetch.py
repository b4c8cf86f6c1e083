"""End-to-end tests of fetch() from workers run by the real binary (`atoll
dev`, and `atoll serve` with its sandboxed worker processes) against an
upstream HTTP server this test starts on loopback. Only loopback traffic."""
import http.server
import gzip
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import ATOLL, free_port, main, request, Server, tempdir, test, write

TMP = tempdir("atoll-fetch-")
os.chmod(TMP, 0o755)  # sandboxed workers run as nobody


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/echo":
            out = {"method": self.command, "body": body.decode(), "x": self.headers.get("x-test"),
                   "type": self.headers.get("content-type")}
            self.reply(200, json.dumps(out).encode(), [("Content-Type", "application/json")])
        elif self.path == "/see-other":
            self.reply(303, b"", [("Location", "/echo")])
        elif self.path == "/cookies":
            self.reply(200, b"c", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        elif self.path == "/gzip":
            # Compressed when asked for; says what was asked in a header.
            text = b"squeeze me " * 100
            asked = self.headers.get("accept-encoding") or ""
            if "gzip" in asked:
                self.reply(200, gzip.compress(text), [("Content-Encoding", "gzip"), ("X-Asked", asked)])
            else:
                self.reply(200, text, [("X-Asked", asked)])
        elif self.path == "/slow":
            time.sleep(3)
            self.reply(200, b"late")
        else:
            self.reply(404, b"no")

    do_GET = do_POST = do_PUT = do_HEAD = handle_any

    def log_message(self, *args):
        pass


class UpstreamServer:
    def __enter__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# The worker proxies to the upstream named in the x-upstream header.
PROXY = """
export default {
  async fetch(request) {
    const up = request.headers.get("x-upstream");
    const path = request.url.slice(request.url.indexOf("/", 8));
    try {
      if (path === "/post") {
        const r = await fetch(up + "/see-other", { method: "POST", body: "data", headers: { "x-test": "t" } });
        return new Response(`${r.status} ${r.redirected} ${await r.text()}`);
      }
      if (path === "/cookies") {
        const r = await fetch(up + "/cookies");
        return new Response(JSON.stringify(r.headers.getSetCookie()));
      }
      if (path === "/gz" || path === "/gz-identity") {
        const headers = path === "/gz-identity" ? { "accept-encoding": "identity" } : {};
        const r = await fetch(up + "/gzip", { headers });
        const text = await r.text();
        return Response.json({ asked: r.headers.get("x-asked"), encoding: r.headers.get("content-encoding"),
                               length: r.headers.get("content-length"), ok: text === "squeeze me ".repeat(100) });
      }
      if (path === "/gz-pass") return fetch(up + "/gzip");
      if (path === "/many") {
        const rs = await Promise.all(Array.from({ length: 20 }, () => fetch(up + "/echo").then((r) => r.json())));
        return new Response(String(rs.filter((j) => j.method === "GET").length));
      }
      const r = await fetch(up + path, { method: request.method, headers: { "x-test": "fwd" } });
      return new Response(await r.text(), { status: r.status });
    } catch (e) {
      return new Response(`${e.name}: ${e.message}`, { status: 502 });
    }
  },
};
"""


def get(port, path, up, method="GET"):
    return request(port, method=method, path=path, headers={"x-upstream": up})


@test
def dev_fetch_get_post_redirect_cookies():
    script = os.path.join(TMP, "proxy", "worker.js")
    write(script, PROXY)
    with UpstreamServer() as up, Server(script) as s:
        status, _, body = get(s, "/echo", up.base)
        assert status == 200, (status, body)
        assert json.loads(body) == {"method": "GET", "body": "", "x": "fwd", "type": None}, body
        status, _, body = get(s, "/post", up.base)
        assert status == 200 and body.startswith(b"200 true "), (status, body)
        assert json.loads(body.split(b" ", 2)[2])["method"] == "GET", body
        status, _, body = get(s, "/cookies", up.base)
        assert json.loads(body) == ["a=1", "b=2"], body
        status, _, body = get(s, "/many", up.base)
        assert (status, body) == (200, b"20"), (status, body)
        # Compressed responses are asked for and arrive decoded, as on Workers;
        # a response passed on unread reaches the client decoded and unlabelled.
        status, _, body = get(s, "/gz", up.base)
        got = json.loads(body)
        assert status == 200 and got["ok"] and got["encoding"] is None and got["length"] is None, body
        assert "gzip" in got["asked"], got
        status, _, body = get(s, "/gz-identity", up.base)
        got = json.loads(body)
        assert got == {"asked": "identity", "encoding": None, "length": "1100", "ok": True}, body
        status, headers, body = get(s, "/gz-pass", up.base)
        assert status == 200 and body == b"squeeze me " * 100, (status, body[:100])
        assert "content-encoding" not in {k.lower() for k in headers}, headers


@test
def dev_fetch_upstream_down_is_a_type_error():
    script = os.path.join(TMP, "proxy", "worker.js")
    write(script, PROXY)
    with Server(script) as s:
        status, _, body = get(s, "/echo", "http://127.0.0.1:%d" % free_port())
        assert status == 502 and body.startswith(b"TypeError: Network connection lost"), (status, body)


@test
def dev_fetch_refuses_hosts_outside_loopback():
    script = os.path.join(TMP, "proxy", "worker.js")
    write(script, PROXY)
    with Server(script) as s:
        status, _, body = get(s, "/echo", "http://example.com")
        assert status == 502 and b"TypeError" in body and b"example.com" in body and b"fetch_allow" in body, body
    # An explicit list replaces the loopback default.
    with UpstreamServer() as up, Server(script, "--fetch-allow", "*.example.test") as s:
        status, _, body = get(s, "/echo", up.base)
        assert status == 502 and b"'127.0.0.1' is not allowed" in body, body
    with UpstreamServer() as up, Server(script, "--fetch-allow", "*.example.test", "--fetch-allow", "localhost") as s:
        status, _, body = get(s, "/echo", up.base)
        assert status == 200, body


class Serve:
    """`atoll serve` with a config; sandboxed worker processes by default."""

    def __init__(self, config):
        self.port = free_port()
        config = dict(config, listen="127.0.0.1:%d" % self.port, processes=1)
        path = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        write(path, json.dumps(config))
        self.err = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # ptrace is sandboxed away
        self.proc = subprocess.Popen([ATOLL, "serve", "--config", path], stdout=subprocess.DEVNULL,
                                     stderr=self.err, env=env)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("atoll serve exited early: %s" % self.stderr())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("atoll serve did not listen: " + self.stderr())

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.stderr()
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err:
            raise AssertionError("sanitizer report:\n" + err[-4000:])


def serve_get(s, host, path, up):
    return request(s.port, path=path, headers={"Host": host, "x-upstream": up})


@test
def serve_sandboxed_fetch_with_limits_and_allow_list():
    main_js = os.path.join(TMP, "served", "worker.js")
    write(main_js, PROXY)
    cfg = {"workers": [
        {"name": "open", "main": main_js, "routes": ["open.test/*"], "limits": {"subrequests": 1}},
        {"name": "closed", "main": main_js, "routes": ["closed.test/*"], "fetch_allow": ["*.example.test"]},
        {"name": "slow", "main": main_js, "routes": ["slow.test/*"], "limits": {"wall_ms": 500}},
    ]}
    with UpstreamServer() as up, Serve(cfg) as s:
        status, _, body = serve_get(s, "open.test", "/echo", up.base)
        assert status == 200 and json.loads(body)["x"] == "fwd", (status, body, s.stderr()[-2000:])
        # One subrequest per request: the redirect of /see-other is the second.
        status, _, body = serve_get(s, "open.test", "/post", up.base)
        assert status == 502 and b"Too many subrequests" in body, (status, body)
        status, _, body = serve_get(s, "closed.test", "/echo", up.base)
        assert status == 502 and b"'127.0.0.1' is not allowed" in body, (status, body)
        t0 = time.time()
        status, _, body = serve_get(s, "slow.test", "/slow", up.base)
        assert status == 504 and b"wall time" in body and time.time() - t0 < 2.5, (status, body)


if __name__ == "__main__":
    main()
