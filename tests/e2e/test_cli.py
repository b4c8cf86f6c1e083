"""End-to-end tests of the CLI: `atoll version`, `atoll run` and `atoll dev`
(serving, logging, reloading, draining on signals), run as a user would."""
import os
import signal
import socket
import tempfile
import threading
import time

from harness import ROOT, main, read_response, request, run_cli, Server, tempdir, test, write

HELLO = os.path.join(ROOT, "examples", "hello", "worker.js")
SW = os.path.join(ROOT, "examples", "service-worker", "worker.js")
TMP = tempdir("atoll-e2e-")

ECHO = """
export default {
  async fetch(request, env, ctx) {
    const body = await request.text();
    return new Response(JSON.stringify({
      method: request.method, url: request.url,
      xtest: request.headers.get("x-test"), body,
    }), { status: Number(request.headers.get("x-status") || 200),
          headers: { "content-type": "application/json", "x-echo": "yes" } });
  },
};
"""


@test
def version_prints_atoll_and_libraries():
    code, out, _ = run_cli("version")
    assert code == 0, code
    text = out.decode()
    assert text.startswith("atoll "), text
    assert "quickjs" in text and "libuv" in text and "llhttp" in text, text


@test
def help_documents_every_command():
    code, out, _ = run_cli("--help")
    assert code == 0
    for cmd in ("dev", "run", "version"):
        assert cmd in out.decode(), out
    for cmd, opts in (("dev", ["--port", "--ip"]), ("run", ["-X", "-H", "-d", "-i"])):
        code, out, _ = run_cli(cmd, "--help")
        assert code == 0, (cmd, code)
        for o in opts:
            assert o in out.decode(), (cmd, o)


@test
def unknown_command_is_a_usage_error():
    code, _, err = run_cli("frobnicate")
    assert code == 2, code
    assert "unknown command" in err


@test
def run_prints_the_body():
    code, out, err = run_cli("run", HELLO, "/")
    assert code == 0, (code, err)
    assert out == b"Hello from atoll!\n", out


@test
def run_include_prints_status_and_headers():
    code, out, err = run_cli("run", HELLO, "-i", "http://example.com/json")
    assert code == 0, err
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert b"application/json" in head.lower(), head
    assert body == b'{"hello":"atoll","method":"GET"}', body


@test
def run_sends_method_headers_and_body():
    path = os.path.join(TMP, "echo", "worker.js")
    write(path, ECHO)
    code, out, err = run_cli("run", path, "-X", "PUT", "-H", "X-Test: abc", "-d", "payload",
                             "http://example.org/p?q=1")
    assert code == 0, err
    assert b'"method":"PUT"' in out, out
    assert b'"url":"http://example.org/p?q=1"' in out, out
    assert b'"xtest":"abc"' in out and b'"body":"payload"' in out, out
    code, out, _ = run_cli("run", path, "-d", "@-", "/", input=b"from stdin")
    assert code == 0 and b'"method":"POST"' in out and b'"body":"from stdin"' in out, out


@test
def run_exit_status_follows_the_response_status():
    path = os.path.join(TMP, "echo", "worker.js")
    write(path, ECHO)
    code, _, _ = run_cli("run", path, "-H", "X-Status: 302", "/")
    assert code == 0, code
    code, _, _ = run_cli("run", path, "-H", "X-Status: 404", "/")
    assert code == 1, code


@test
def run_reports_load_errors_with_file_and_line():
    path = os.path.join(TMP, "broken", "worker.js")
    write(path, "export default {\n  fetch() { return new Response('x') }\n  oops(\n};\n")
    code, out, err = run_cli("run", path, "/")
    assert code == 2, code
    assert "worker.js" in err and ":" in err, err
    code, _, err = run_cli("run", os.path.join(TMP, "missing.js"), "/")
    assert code == 2 and "missing.js" in err, err
    code, _, err = run_cli("run", HELLO, "not-a-url")
    assert code == 2, code
    code, _, err = run_cli("run", HELLO)
    assert code == 2, code


@test
def run_answers_500_when_the_handler_throws():
    path = os.path.join(TMP, "throws", "worker.js")
    write(path, "export default {\n  fetch() {\n    throw new Error('boom');\n  }\n};\n")
    code, out, err = run_cli("run", path, "-i", "/")
    assert code == 1, code
    assert out.startswith(b"HTTP/1.1 500"), out
    assert "boom" in err and "worker.js:3" in err, err


@test
def run_serves_service_worker_scripts():
    code, out, err = run_cli("run", SW, "-d", "hi", "http://h.test/x")
    assert code == 0, err
    assert out == b"POST http://h.test/x\nhi", out


@test
def dev_serves_and_logs_each_request():
    with Server(HELLO) as srv:
        status, headers, body = request(srv, path="/some/path")
        assert status == 200 and body == b"Hello from atoll!\n", (status, body)
        assert "date" in headers, headers
        time.sleep(0.2)
        assert "GET /some/path 200" in srv.output(), srv.output()


@test
def dev_refuses_a_port_another_server_holds():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    code, _, err = run_cli("dev", HELLO, "--port", str(port), timeout=20)
    holder.close()
    assert code == 1 and "port %d: address already in use" % port in err, (code, err)


@test
def dev_keeps_serving_after_the_handler_throws():
    path = os.path.join(TMP, "flaky", "worker.js")
    write(path, "export default { fetch(r) { if (r.url.endsWith('/bad')) throw new TypeError('bad path');"
                " return new Response('fine'); } };\n")
    with Server(path) as srv:
        status, _, body = request(srv, path="/bad")
        assert status == 500, status
        status, _, body = request(srv, path="/good")
        assert status == 200 and body == b"fine", (status, body)
        assert "bad path" in srv.output()


@test
def dev_a_limit_hit_after_the_response_fails_no_later_request():
    # An endless microtask chain left behind by a handler that answered: the
    # isolate breaks with nothing in flight; the next request gets a new one.
    # (test_serve.py also covers a timer running on after the response.)
    path = os.path.join(TMP, "after", "worker.js")
    write(path, "export default { fetch(r) { if (r.url.endsWith('/spin')) { const f = () => Promise.resolve()"
                ".then(f); f(); } return new Response('fine'); } };\n")
    with Server(path) as srv:
        for _ in range(3):
            request(srv, path="/spin")
            status, _, body = request(srv, path="/good")
            assert (status, body) == (200, b"fine"), (status, body)


@test
def dev_reloads_when_the_worker_changes():
    path = os.path.join(TMP, "reload", "worker.js")
    write(path, "import { word } from './lib/word.js';\n"
                "export default { fetch() { return new Response(word); } };\n")
    write(os.path.join(TMP, "reload", "lib", "word.js"), "export const word = 'one';\n")
    with Server(path) as srv:
        assert request(srv)[2] == b"one"
        time.sleep(0.1)
        write(os.path.join(TMP, "reload", "lib", "word.js"), "export const word = 'two';\n")
        deadline = time.time() + 10
        while request(srv)[2] != b"two":
            assert time.time() < deadline, "no reload after an import changed:\n" + srv.output()
            time.sleep(0.1)
        # A broken edit is reported; the last good version keeps serving.
        write(path, "export default { fetch() { return new Response( } };\n")
        time.sleep(1)
        assert request(srv)[2] == b"two"
        assert "reload failed" in srv.output(), srv.output()


@test
def dev_drains_in_flight_requests_on_sigterm_and_sigint():
    path = os.path.join(TMP, "slow", "worker.js")
    write(path, "export default { async fetch() {"
                " await new Promise(r => setTimeout(r, 700)); return new Response('slow done'); } };\n")
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = Server(path)
        result = {}

        def client():
            result["r"] = request(srv)
        t = threading.Thread(target=client)
        t.start()
        time.sleep(0.3)
        srv.proc.send_signal(sig)
        t.join(10)
        assert result.get("r", (0, 0, b""))[2] == b"slow done", (sig, result, srv.output())
        assert srv.proc.wait(10) == 0, (sig, srv.output())
        srv.__exit__(None, None, None)


@test
def dev_keep_alive_and_pipelining():
    with Server(HELLO) as srv:
        with srv.connect() as s:
            req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(req)
            assert read_response(s)[2] == b"Hello from atoll!\n"
            s.sendall(req + b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n" + req)
            _, _, b1, rest = read_response(s)
            assert b1 == b"Hello from atoll!\n"
            s2 = _Prefixed(s, rest)
            _, _, b2, rest = read_response(s2)
            assert b2.startswith(b'{"hello"'), b2
            _, _, b3, _ = read_response(_Prefixed(s, rest))
            assert b3 == b"Hello from atoll!\n"


@test
def dev_rejects_bad_http_and_keeps_serving():
    with Server(HELLO) as srv:
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ]
        for raw, want in cases:
            with srv.connect() as s:
                s.sendall(raw)
                status, headers, _, _ = read_response(s)
                assert status == want, (raw[:40], status)
                assert headers.get("connection") == "close", headers
                s.settimeout(5)
                data = s.recv(100)
                while data:
                    data = s.recv(100)
        assert request(srv)[0] == 200


@test
def dev_chunked_request_head_and_expect_continue():
    path = os.path.join(TMP, "echo2", "worker.js")
    write(path, ECHO)
    with Server(path) as srv:
        with srv.connect() as s:
            s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            status, _, body, _ = read_response(s)
            assert status == 200 and b'"body":"hello world"' in body, body
        with srv.connect() as s:
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _, rest = read_response(s, head=True)
            assert status == 200 and int(headers["content-length"]) > 0, headers
            s.settimeout(0.5)
            try:
                extra = rest + s.recv(100)
            except socket.timeout:
                extra = rest
            assert extra == b"", extra
        with srv.connect() as s:
            s.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            status, _, _, _ = read_response(s)
            assert status == 100, status
            s.sendall(b"data")
            status, _, body, _ = read_response(s)
            assert status == 200 and b'"body":"data"' in body, body


class _Prefixed:
    """A socket whose first reads return bytes already received."""

    def __init__(self, sock, prefix):
        self.sock, self.prefix = sock, prefix

    def recv(self, n):
        if self.prefix:
            data, self.prefix = self.prefix, b""
            return data
        return self.sock.recv(n)


if __name__ == "__main__":
    main()
