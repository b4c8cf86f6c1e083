"""End-to-end tests of the admin API of `atoll serve`: authentication,
deploys (script or JSON with settings), replacing a worker under load with
no failed request, deletion, listing, persistence across restarts,
refused deploys, and the Prometheus metrics."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from harness import ATOLL, free_port, main, request, tempdir, test, write

TMP = tempdir("atoll-admin-")
os.chmod(TMP, 0o755)
TOKEN = "test-token-123"


def worker_js(text):
    return "export default { fetch() { return new Response(%s); } };\n" % json.dumps(text)


class Server:
    def __init__(self, config=None, state=None, processes=2, token=TOKEN):
        self.port, self.admin_port = free_port(), free_port()
        self.state = state or tempfile.mkdtemp(dir=TMP)
        cfg = dict(config or {"workers": []})
        cfg.update({"listen": "127.0.0.1:%d" % self.port, "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
                    "processes": processes, "state_dir": self.state})
        self.config_path = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        write(self.config_path, json.dumps(cfg))
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # sandboxed: no ptrace
        if token:
            env["ATOLL_ADMIN_TOKEN"] = token
        else:
            env.pop("ATOLL_ADMIN_TOKEN", None)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([ATOLL, "serve", "--config", self.config_path, "--no-access-log"],
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        wait_ports = [self.port] + ([self.admin_port] if token else [])
        deadline = time.time() + 20
        for port in wait_ports:
            while True:
                assert self.proc.poll() is None, "atoll serve exited: " + self.stderr()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.time() < deadline, "not listening on %d: %s" % (port, self.stderr())
                    time.sleep(0.05)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def admin(self, method, path, body=None, token=TOKEN, content_type=None):
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type or ("application/json" if not isinstance(body, str) else "application/javascript")
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get(self, host, path="/"):
        return request(self.port, path=path, headers={"Host": host})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(40)
        err = self.stderr()
        assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err[-3000:]
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.stop()
        if exc[0] is None:
            assert code == 0, (code, self.stderr()[-2000:])


def eventually(fn, timeout=5):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.time() < deadline, "condition not met in %ss" % timeout
        time.sleep(0.02)


@test
def calls_without_or_with_a_wrong_token_are_refused():
    with Server() as s:
        status, body = s.admin("GET", "/workers", token=None)
        assert status == 401, (status, body)
        status, _ = s.admin("GET", "/workers", token="wrong")
        assert status == 403, status
        status, _ = s.admin("PUT", "/workers/x", body=worker_js("x"), token="wrong")
        assert status == 403, status
        status, _ = s.admin("GET", "/metrics", token=None)
        assert status == 401, status
        assert s.admin("GET", "/workers")[0] == 200


@test
def no_admin_api_without_a_token():
    with Server(token=None) as s:
        try:
            socket.create_connection(("127.0.0.1", s.admin_port), timeout=1).close()
            assert False, "the admin port is open without ATOLL_ADMIN_TOKEN"
        except OSError:
            pass
        assert "admin API disabled" in s.stderr()


@test
def deploy_serves_at_once_and_lists():
    with Server() as s:
        status, body = s.admin("PUT", "/workers/hello",
                               body={"script": worker_js("v1"), "routes": ["hello.test/*"], "vars": {"A": "1"}})
        assert status == 201, (status, body)
        reply = json.loads(body)
        assert reply["version"] == 1 and reply["routes"] == ["hello.test/*"], reply
        assert s.get("hello.test")[2] == b"v1"
        status, body = s.admin("GET", "/workers")
        names = {w["name"]: w for w in json.loads(body)["workers"]}
        assert names["hello"]["version"] == 1 and names["hello"]["source"] == "deploy", names
        # A bare script replaces the code and keeps the settings.
        status, body = s.admin("PUT", "/workers/hello", body=worker_js("v2"))
        assert status == 200 and json.loads(body)["version"] == 2, body
        assert eventually(lambda: s.get("hello.test")[2] == b"v2")


@test
def bad_deploys_are_refused_and_change_nothing():
    with Server() as s:
        assert s.admin("PUT", "/workers/ok", body={"script": worker_js("ok"), "routes": ["ok.test/*"]})[0] == 201
        status, body = s.admin("PUT", "/workers/ok", body={"script": "export default { fetch( {", "routes": ["ok.test/*"]})
        assert status == 400 and (b"SyntaxError" in body or b"expect" in body), (status, body)
        status, body = s.admin("PUT", "/workers/ok", body={"script": worker_js("x"), "routes": ["/nohost"]})
        assert status == 400 and b"no host" in body, (status, body)
        status, body = s.admin("PUT", "/workers/ok", body={"script": worker_js("x"), "limits": {"cpu_ms": "lots"}})
        assert status == 400 and b"limits.cpu_ms" in body, (status, body)
        status, body = s.admin("PUT", "/workers/ok", body="not json", content_type="application/json")
        assert status == 400, status
        status, _ = s.admin("PUT", "/workers/bad%20name", body=worker_js("x"))
        assert status == 400, status
        assert s.get("ok.test")[2] == b"ok"
        assert json.loads(s.admin("GET", "/workers/ok")[1])["version"] == 1


@test
def a_deploy_may_not_take_another_workers_route():
    path = os.path.join(TMP, "cfg-route", "worker.js")
    write(path, worker_js("from config"))
    os.chmod(os.path.dirname(path), 0o755)
    cfg = {"workers": [{"name": "configured", "main": path, "routes": ["c.test/*"]}]}
    with Server(cfg) as s:
        # The same route as a config tenant's, written another way.
        status, body = s.admin("PUT", "/workers/intruder", body={"script": worker_js("x"), "routes": ["https://C.test/*"]})
        assert status == 409 and b"already routed to worker \\\"configured\\\"" in body, (status, body)
        assert s.admin("PUT", "/workers/first", body={"script": worker_js("1"), "routes": ["d.test/*"]})[0] == 201
        status, body = s.admin("PUT", "/workers/second", body={"script": worker_js("2"), "routes": ["e.test/*", "d.test/*"]})
        assert status == 409 and b"d.test/*" in body and b"first" in body, (status, body)
        assert s.admin("GET", "/workers/second")[0] == 404
        assert s.get("d.test")[2] == b"1" and s.get("c.test")[2] == b"from config"
        # A redeploy keeps its own routes; a deleted worker's routes are free again.
        assert s.admin("PUT", "/workers/first", body={"script": worker_js("1b"), "routes": ["d.test/*"]})[0] == 200
        assert s.admin("DELETE", "/workers/first")[0] == 200
        assert s.admin("PUT", "/workers/second", body={"script": worker_js("2"), "routes": ["d.test/*"]})[0] == 201
        assert eventually(lambda: s.get("d.test")[2] == b"2")
        # A config tenant replaced by a deploy of its name takes its routes along.
        assert s.admin("PUT", "/workers/configured", body={"script": worker_js("redeployed"), "routes": ["f.test/*"]})[0] == 200
        assert s.admin("PUT", "/workers/other", body={"script": worker_js("o"), "routes": ["c.test/*"]})[0] == 201
        assert eventually(lambda: s.get("c.test")[2] == b"o") and s.get("f.test")[2] == b"redeployed"


@test
def a_deploy_under_load_fails_no_request():
    with Server() as s:
        assert s.admin("PUT", "/workers/live", body={"script": worker_js("old"), "routes": ["live.test/*"]})[0] == 201
        results = []
        stop = threading.Event()

        def load():
            while not stop.is_set():
                status, _, body = s.get("live.test")
                results.append((status, body))
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        for i in range(5):
            assert s.admin("PUT", "/workers/live", body=worker_js("new%d" % i))[0] == 200
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        bad = [r for r in results if r[0] != 200]
        assert not bad, "failed during deploys: %r" % bad[:5]
        bodies = {b for _, b in results}
        assert b"old" in bodies and b"new4" in bodies, bodies
        assert s.get("live.test")[2] == b"new4"


@test
def delete_removes_the_route():
    with Server() as s:
        assert s.admin("PUT", "/workers/gone", body={"script": worker_js("here"), "routes": ["gone.test/*"]})[0] == 201
        assert s.get("gone.test")[2] == b"here"
        status, _ = s.admin("DELETE", "/workers/gone")
        assert status == 200, status
        assert eventually(lambda: s.get("gone.test")[0] == 404)
        assert s.admin("DELETE", "/workers/gone")[0] == 404
        assert s.admin("GET", "/workers/gone")[0] == 404


@test
def deploys_survive_a_restart():
    state = tempfile.mkdtemp(dir=TMP)
    with Server(state=state) as s:
        assert s.admin("PUT", "/workers/keep", body={"script": worker_js("kept"), "routes": ["keep.test/*"]})[0] == 201
        assert s.admin("PUT", "/workers/keep", body=worker_js("kept v2"))[0] == 200
    with Server(state=state) as s:
        assert s.get("keep.test")[2] == b"kept v2"
        assert json.loads(s.admin("GET", "/workers/keep")[1])["version"] == 2


@test
def metrics_count_requests_errors_and_cold_starts():
    with Server(processes=1) as s:
        s.admin("PUT", "/workers/m", body={"script": "export default { fetch(r) { if (r.url.endsWith('/boom'))"
                                                     " throw new Error('x'); return new Response('m'); } };",
                                           "routes": ["m.test/*"]})
        for _ in range(3):
            assert s.get("m.test")[0] == 200
        assert s.get("m.test", "/boom")[0] == 500

        def scraped():
            status, body = s.admin("GET", "/metrics")
            text = body.decode()
            ok = 'atoll_requests_total{tenant="m",class="2xx"} 3' in text
            return text if ok else None
        text = eventually(scraped, timeout=5)
        assert 'atoll_requests_total{tenant="m",class="5xx"} 1' in text, text
        assert 'atoll_errors_total{tenant="m",kind="exception"} 1' in text, text
        assert 'atoll_cold_starts_total{tenant="m"} 1' in text, text
        assert "atoll_worker_processes 1" in text, text
        assert "# TYPE atoll_requests_total counter" in text


if __name__ == "__main__":
    main()
