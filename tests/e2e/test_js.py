"""Runs the JavaScript test files (tests/js/test_*.js) inside atoll: each one
is served by `atoll dev`; each of its cases runs in a POST request of its
own and answers with a JSON report (tests/js/harness.js). Every case is printed as its own
"ok"/"not ok" line, so tests/run.sh counts them one by one.

A loopback upstream (a small threaded HTTP server here) gives the fetch()
tests something to talk to; its base URL reaches the worker as
`?upstream=`, and it serves the WPT URL data under /wpt/."""
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

JS_DIR = os.path.join(harness.ROOT, "tests", "js")


def conformance_dir():
    for d in (os.environ.get("ATOLL_CONFORMANCE"),
              os.path.join(harness.ROOT, "..", "shared", "conformance")):
        if d and os.path.isdir(os.path.join(d, "wpt-url")):
            return os.path.join(d, "wpt-url")
    return None


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def read_body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return body, True
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n), False

    def send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        body, chunked = self.read_body()
        if u.path == "/echo":
            out = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
                "chunked": chunked,
            }
            self.send(200, json.dumps(out).encode(), extra=[("set-cookie", "a=1"), ("set-cookie", "b=2")])
        elif u.path.startswith("/status/"):
            self.send(int(u.path[8:]), b"status body", "text/plain")
        elif u.path == "/redirect":
            self.send(int(q.get("status", "302")), b"", "text/plain",
                      extra=[("location", q.get("to", "/echo"))])
        elif u.path == "/chunks":
            # A chunked body produced slowly: the worker must see the first
            # chunk before the last one is written.
            n = int(q.get("n", "3"))
            delay = float(q.get("delay", "0.1"))
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(n):
                data = ("chunk%d %.3f\n" % (i, time.time())).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
        elif u.path == "/slow":
            time.sleep(float(q.get("s", "2")))
            self.send(200, b"slow", "text/plain")
        elif u.path.startswith("/wpt/"):
            d = conformance_dir()
            name = os.path.basename(u.path)
            if not d or not os.path.exists(os.path.join(d, name)):
                self.send(404, b"no conformance data", "text/plain")
                return
            with open(os.path.join(d, name), "rb") as f:
                self.send(200, f.read())
        else:
            self.send(404, b"not found", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a fetch cancelled mid-body closes the connection: not an error here


def main():
    upstream = QuietServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % upstream.server_address[1]

    only = sys.argv[1:]
    passed = failed = 0
    files = sorted(f for f in os.listdir(JS_DIR) if f.startswith("test_") and f.endswith(".js"))
    for name in files:
        if only and name not in only:
            continue
        label = name[len("test_"):-3]
        try:
            with harness.Server(os.path.join(JS_DIR, name), "--quiet") as srv:
                up = "upstream=" + urllib.parse.quote(base, safe="")
                status, _, body = harness.request(srv, "GET", "/?list=1&" + up)
                if status != 200:
                    raise AssertionError("status %d: %s\n%s" % (status, body[:2000], srv.output()[-3000:]))
                names = json.loads(body)
                if not names:
                    raise AssertionError("no test cases")
                results = []
                for case in names:
                    # One request per case: each gets the whole CPU budget,
                    # and a case that breaks its isolate breaks only itself.
                    status, _, body = harness.request(
                        srv, "POST", "/?only=%s&%s" % (urllib.parse.quote(case, safe=""), up),
                        headers={"Content-Type": "text/plain", "X-Test": "yes"},
                        body=b"hello request body")
                    if status != 200:
                        results.append({"name": case, "ok": False, "error": "status %d: %s" % (status, body[:300]),
                                        "stack": srv.output()[-2000:]})
                    else:
                        results.extend(json.loads(body)["results"])
                time.sleep(0.2)  # let the log lines of the request land
                log = srv.output()
                for r in results:
                    missing = [s for s in r.get("logs", []) if s not in log]
                    if r["ok"] and missing:
                        r["ok"] = False
                        r["error"] = "not in the log: %r" % missing
                        r["stack"] = log[-3000:]
                    if r["ok"]:
                        passed += 1
                        print("ok - %s: %s" % (label, r["name"]), flush=True)
                    else:
                        failed += 1
                        print("not ok - %s: %s: %s" % (label, r["name"], r["error"]), flush=True)
                        print("   " + r.get("stack", "").replace("\n", "\n   "), flush=True)
                for line in log.splitlines():
                    if "through tests/js:" in line:  # the WPT URL counts
                        print("# " + line.split("] ", 1)[-1], flush=True)
                print("# %s: %d cases" % (label, len(results)), flush=True)
        except Exception as e:
            failed += 1
            print("not ok - %s: %s" % (label, e), flush=True)
            traceback.print_exc(file=sys.stdout)
    # A worker that returns fetch()'s Response: the upstream's chunks must
    # reach the client as they are produced, not once the upstream is done.
    label = "proxy: a fetched body streams through to the client as produced"
    try:
        path = os.path.join(tempfile.mkdtemp(prefix="atoll-js-"), "proxy.js")
        harness.write(path, "export default { fetch(r) { const u = new URL(r.url).searchParams.get('up');"
                            " return fetch(u + '/chunks?n=3&delay=0.4'); } };\n")
        with harness.Server(path, "--quiet") as srv:
            with srv.connect() as sock:
                sock.sendall(("GET /?up=%s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                              % urllib.parse.quote(base, safe="")).encode())
                t0 = time.time()
                seen = []
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    for k in range(3):
                        if b"chunk%d " % k in data and k not in [x for x, _ in seen]:
                            seen.append((k, time.time() - t0))
            assert [k for k, _ in seen] == [0, 1, 2], data
            assert seen[2][1] - seen[0][1] > 0.5, seen
        passed += 1
        print("ok - %s" % label, flush=True)
    except Exception as e:
        failed += 1
        print("not ok - %s: %s" % (label, e), flush=True)
        traceback.print_exc(file=sys.stdout)

    upstream.shutdown()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
