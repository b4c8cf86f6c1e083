"""The WebAssembly tier end to end: WASI modules (C built with clang
--target=wasm32-wasi) as tenants of the real `atoll serve` — the CGI round
trip of headers, query, body and vars; bodies of several MB both ways; each
trap kind answered and logged by kind; runaway modules stopped by the CPU
and wall limits while a JavaScript tenant keeps serving steady load without
a single failure; limits counted in /metrics; invalid modules refused at
deploy (config file and admin API); concurrent requests to one module each
in their own memory. And `atoll run MODULE.wasm`, the one-shot CLI."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from harness import ATOLL, ROOT, free_port, main, request, run_cli, tempdir, test, write

TMP = tempdir("atoll-serve-wasm-")
os.chmod(TMP, 0o755)  # sandboxed workers read the modules as the config's owner or nobody
TOKEN = "serve-wasm-token"
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "wasm")


def note(msg):
    print("# " + msg, flush=True)


_built = {}


def module(name, *flags):
    """tests/fixtures/wasm/NAME.c built once with clang for WASI."""
    key = (name,) + flags
    if key not in _built:
        out = os.path.join(TMP, "%s%s.wasm" % (name, "-".join(("",) + flags).replace("=", "")))
        subprocess.run(["clang", "--target=wasm32-wasi", "-O2", *flags, "-o", out,
                        os.path.join(FIXTURES, name + ".c")], check=True)
        os.chmod(out, 0o644)
        _built[key] = out
    return _built[key]


def js(name, body):
    path = os.path.join(TMP, "js", name + ".js")
    write(path, body)
    os.chmod(path, 0o644)
    return path


class Serve:
    """`atoll serve` with the admin API on free ports (sandboxed, as in production)."""

    def __init__(self, workers, processes=1, wait=True):
        self.port, self.admin_port = free_port(), free_port()
        self.state = tempfile.mkdtemp(dir=TMP)
        cfg = {"listen": "127.0.0.1:%d" % self.port, "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
               "processes": processes, "state_dir": self.state, "workers": workers}
        self.config_path = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        write(self.config_path, json.dumps(cfg, indent=1))
        env = dict(os.environ, ATOLL_ADMIN_TOKEN=TOKEN)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # the sandbox forbids ptrace
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([ATOLL, "serve", "--config", self.config_path, "--no-access-log"],
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        if not wait:
            return
        deadline = time.time() + 180  # the first start compiles the modules (ASan build: slow)
        for port in (self.port, self.admin_port):
            while True:
                assert self.proc.poll() is None, "atoll serve exited: " + self.stderr()[-3000:]
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.time() < deadline, "not listening on %d: %s" % (port, self.stderr()[-3000:])
                    time.sleep(0.05)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def admin(self, method, path, data=None, headers=None, timeout=180):
        h = {"Authorization": "Bearer " + TOKEN}
        h.update(headers or {})
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), data=data,
                                     method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self):
        status, body = self.admin("GET", "/metrics")
        assert status == 200, status
        values = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key] = float(value)
        return values

    def wait_metrics(self, expected, timeout=20):
        """Waits until every metric in `expected` has its value (workers publish each second)."""
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            got = {k: m.get(k, 0) for k in expected}
            if got == expected:
                return m
            assert time.time() < deadline, "metrics: got %r, expected %r" % (got, expected)
            time.sleep(0.3)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.stderr()
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err:
            raise AssertionError("sanitizer report:\n" + err[-4000:])
        if exc[0] is None and self.proc.returncode != 0:
            raise AssertionError("atoll serve exited %s:\n%s" % (self.proc.returncode, err[-3000:]))


def get(port, host, path, method="GET", headers=None, body=b""):
    h = {"Host": host}
    h.update(headers or {})
    return request(port, method=method, path=path, headers=h, body=body)


def parse_echo(body):
    """echo.c's output: NAME=value lines, then stdin= and the raw body."""
    head, _, stdin = body.partition(b"\nstdin=")
    values = dict(line.split("=", 1) for line in head.decode().splitlines() if "=" in line)
    return values, stdin


@test
def headers_query_body_and_vars_round_trip():
    workers = [{"name": "echo", "tier": "wasm", "main": module("echo"), "routes": ["echo.test/*"],
                "vars": {"GREETING": "hi there", "FLAGS": {"beta": True}}}]
    with Serve(workers) as s:
        status, headers, body = get(s.port, "echo.test", "/a/b%20c?x=1&y=%C3%A9", method="POST",
                                    headers={"X-Test": "some value", "Accept": "text/plain",
                                             "Content-Type": "application/json"},
                                    body=b'{"k": "v"}')
        assert status == 201, (status, body, s.stderr()[-2000:])
        assert headers["x-echo"] == "yes" and headers["content-type"] == "text/plain", headers
        v, stdin = parse_echo(body)
        assert v["REQUEST_METHOD"] == "POST", v
        assert v["PATH_INFO"] == "/a/b c" and v["X_RAW_PATH_INFO"] == "/a/b%20c", v
        assert v["QUERY_STRING"] == "x=1&y=%C3%A9", v
        assert v["HTTP_X_TEST"] == "some value" and v["HTTP_ACCEPT"] == "text/plain", v
        assert v["CONTENT_TYPE"] == "application/json" and v["CONTENT_LENGTH"] == "10", v
        assert v["SERVER_NAME"] == "echo.test", v
        assert v["GREETING"] == "hi there", v
        assert v["HTTP_PROXY"] == "(unset)", v  # httpoxy: never from a request header
        assert stdin == b'{"k": "v"}', stdin
        # GET without a body: empty stdin, CONTENT_LENGTH 0 or unset.
        status, _, body = get(s.port, "echo.test", "/")
        v, stdin = parse_echo(body)
        assert status == 201 and v["REQUEST_METHOD"] == "GET" and stdin == b"", body


@test
def bodies_of_several_megabytes_both_ways():
    workers = [{"name": "echo", "tier": "wasm", "main": module("echo"), "routes": ["echo.test/*"],
                "limits": {"cpu_ms": 2000}}]
    with Serve(workers) as s:
        for size in (1 << 20, 6 << 20):
            payload = os.urandom(size)
            t0 = time.time()
            status, _, body = get(s.port, "echo.test", "/big", method="PUT", body=payload)
            assert status == 201, (size, status, body[:300], s.stderr()[-2000:])
            v, stdin = parse_echo(body)
            assert v["CONTENT_LENGTH"] == str(size), v
            assert stdin == payload, (size, len(stdin))
            note("%d-byte body echoed in %.2f s" % (size, time.time() - t0))


TRAPS = {
    # query: (status, the trap's name in the log, metrics kind)
    "oob": (500, "out of bounds memory access", "exception"),
    "unreachable": (500, "unreachable", "exception"),
    "stack": (500, "call stack exhausted", "exception"),
    "div0": (500, "integer divide by zero", "exception"),
    "overflow": (500, "integer overflow", "exception"),
    "conversion": (500, "invalid conversion to integer", "exception"),
    "indirect": (500, "indirect call type mismatch", "exception"),
    "loop": (503, "cpu time limit exceeded", "cpu"),
    "hostloop": (503, "cpu time limit exceeded", "cpu"),
    "sleepforever": (504, "wall time limit exceeded", "wall"),
}


@test
def each_trap_kind_answers_alone_is_logged_and_counted():
    workers = [
        {"name": "traps", "tier": "wasm", "main": module("guest"), "routes": ["traps.test/*"],
         "limits": {"cpu_ms": 100, "wall_ms": 1500}},
        # 64 MiB of initial memory over a 16 MB cap: the instance cannot start.
        {"name": "bigmem", "tier": "wasm", "main": module("bigmem"), "routes": ["bigmem.test/*"],
         "limits": {"memory_mb": 16}},
    ]
    with Serve(workers) as s:
        kinds = {}
        for q, (want, name, kind) in TRAPS.items():
            status, _, body = get(s.port, "traps.test", "/?" + q)
            assert status == want, (q, status, body, s.stderr()[-2000:])
            kinds[kind] = kinds.get(kind, 0) + 1
            # The same module at once answers the next request normally.
            status, _, body = get(s.port, "traps.test", "/?counter")
            assert (status, body) == (200, b"counter=1\n"), (q, status, body)
        status, _, body = get(s.port, "bigmem.test", "/")
        assert status == 507 and b"memory" in body, (status, body)
        err = s.stderr()
        for q, (_, name, _) in TRAPS.items():
            line = "wasm[traps]: GET /?%s: trap: %s" % (q, name)
            assert line in err, (line, err[-3000:])
        assert "wasm[bigmem]: GET /: trap: memory limit exceeded" in err, err[-3000:]
        expected = {'atoll_errors_total{tenant="traps",kind="%s"}' % k: float(n) for k, n in kinds.items()}
        expected['atoll_errors_total{tenant="bigmem",kind="memory"}'] = 1.0
        expected['atoll_requests_total{tenant="traps",class="5xx"}'] = float(len(TRAPS))
        expected['atoll_requests_total{tenant="traps",class="2xx"}'] = float(len(TRAPS))
        m = s.wait_metrics(expected)
        assert m.get('atoll_errors_total{tenant="traps",kind="memory"}', 0) == 0
        assert m.get('atoll_cpu_seconds_total{tenant="traps"}', 1) > 0.2, \
            [k for k in m if "traps" in k]  # three CPU-limit runs of 100 ms each


@test
def a_runaway_module_does_not_disturb_a_javascript_tenant():
    workers = [
        {"name": "good", "main": js("good", "export default { fetch(r) { return new Response("
                                            "'good ' + new URL(r.url).pathname); } };"),
         "routes": ["good.test/*"]},
        {"name": "spin", "tier": "wasm", "main": module("guest"), "routes": ["spin.test/*"],
         "limits": {"cpu_ms": 100}},
    ]
    with Serve(workers, processes=2) as s:
        assert get(s.port, "good.test", "/warm")[2] == b"good /warm"
        assert get(s.port, "spin.test", "/?counter")[0] == 200  # loads the module
        stop = threading.Event()
        lock = threading.Lock()
        good = {"ok": 0, "failed": []}

        def steady(k):
            n = 0
            while not stop.is_set():
                path = "/s%d/%d" % (k, n)
                n += 1
                try:
                    status, _, body = get(s.port, "good.test", path)
                    result = (status, body)
                except Exception as e:
                    result = (None, repr(e))
                with lock:
                    if result == (200, ("good " + path).encode()):
                        good["ok"] += 1
                    else:
                        good["failed"].append((path, result))

        spins = []

        def spin(k):
            for i in range(4):
                try:
                    status, _, body = get(s.port, "spin.test", "/?loop")
                except Exception as e:
                    status, body = None, repr(e).encode()
                with lock:
                    spins.append((status, body))

        steady_threads = [threading.Thread(target=steady, args=(k,)) for k in range(3)]
        for t in steady_threads:
            t.start()
        time.sleep(0.3)
        t0 = time.time()
        spinners = [threading.Thread(target=spin, args=(k,)) for k in range(4)]
        for t in spinners:
            t.start()
        for t in spinners:
            t.join(120)
        elapsed = time.time() - t0
        time.sleep(0.3)
        stop.set()
        for t in steady_threads:
            t.join(60)
        note("JS tenant: %d requests succeeded, %d failed while 16 runaway wasm requests ran for %.1f s"
             % (good["ok"], len(good["failed"]), elapsed))
        assert not good["failed"], good["failed"][:5]
        assert good["ok"] > 0
        assert len(spins) == 16 and all(st == 503 and b"CPU" in b for st, b in spins), spins[:3]
        assert "died:" not in s.stderr(), s.stderr()[-3000:]
        s.wait_metrics({'atoll_errors_total{tenant="spin",kind="cpu"}': 16.0,
                        'atoll_requests_total{tenant="good",class="5xx"}': 0.0,
                        'atoll_requests_total{tenant="good",class="2xx"}': float(good["ok"] + 1)})


@test
def concurrent_requests_each_get_their_own_memory():
    workers = [{"name": "mem", "tier": "wasm", "main": module("guest"), "routes": ["mem.test/*"]}]
    with Serve(workers, processes=1) as s:
        assert get(s.port, "mem.test", "/?counter")[0] == 200

        def one(i):
            return get(s.port, "mem.test", "/?mark=%d" % (i + 1))

        t0 = time.time()
        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(one, range(96)))
        elapsed = time.time() - t0
        for i, (status, _, body) in enumerate(results):
            assert (status, body) == (200, b"mark=%d clean mine\n" % (i + 1)), (i, status, body)
        # Each sleeps 30 ms; one at a time would take 96 x 30 ms.
        note("96 requests, 16 at a time, in %.2f s" % elapsed)
        assert elapsed < 96 * 0.030, "the requests did not overlap: %.2f s" % elapsed
        # And one after the other: a request's writes are gone for the next.
        for _ in range(3):
            assert get(s.port, "mem.test", "/?scribble")[2] == b"clean\n"
            assert get(s.port, "mem.test", "/?counter")[2] == b"counter=1\n"


@test
def an_invalid_module_in_the_config_stops_the_server_from_starting():
    garbage = os.path.join(TMP, "garbage.wasm")
    with open(garbage, "wb") as f:
        f.write(b"\0asm\x01\0\0\0 this is not a module")
    os.chmod(garbage, 0o644)
    reactor = module("hello", "-mexec-model=reactor")  # exports no _start
    for path, words in ((garbage, "invalid module"), (reactor, "no `_start` export")):
        workers = [{"name": "good", "main": js("ok", "export default { fetch() { return new Response('ok'); } };"),
                    "routes": ["*/*"]},
                   {"name": "bad", "tier": "wasm", "main": path, "routes": ["bad.test/*"]}]
        s = Serve(workers, wait=False)
        try:
            code = s.proc.wait(180)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
            raise AssertionError("atoll serve started with an invalid module: " + s.stderr()[-2000:])
        err = s.stderr()
        assert code != 0, (code, err[-2000:])
        assert path in err and words in err, (words, err[-2000:])
        assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err[-3000:]


@test
def an_invalid_module_through_the_admin_api_is_refused_with_400():
    with Serve([]) as s:
        status, body = s.admin("PUT", "/workers/w", data=b"\0asm garbage",
                               headers={"Content-Type": "application/wasm",
                                        "Atoll-Settings": json.dumps({"routes": ["w.test/*"]})})
        assert status == 400 and b"invalid module" in body, (status, body)
        with open(module("hello", "-mexec-model=reactor"), "rb") as f:
            status, body = s.admin("PUT", "/workers/w", data=f.read(),
                                   headers={"Content-Type": "application/wasm",
                                            "Atoll-Settings": json.dumps({"routes": ["w.test/*"]})})
        assert status == 400 and b"_start" in body, (status, body)
        assert get(s.port, "w.test", "/")[0] == 404  # nothing deployed
        with open(module("echo"), "rb") as f:
            status, body = s.admin("PUT", "/workers/w", data=f.read(),
                                   headers={"Content-Type": "application/wasm",
                                            "Atoll-Settings": json.dumps({"routes": ["w.test/*"]})})
        assert status in (200, 201), (status, body)
        assert get(s.port, "w.test", "/")[0] == 201


# ---- atoll run MODULE.wasm ----------------------------------------------

def run_wasm(*args, input=None):
    env_cache = os.path.join(TMP, "xdg")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = env_cache
    try:
        return run_cli("run", *args, input=input, timeout=180)
    finally:
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old


@test
def atoll_run_calls_a_module_once():
    echo = module("echo")
    code, out, err = run_wasm(echo, "-i", "-X", "PUT", "-H", "X-Test: yes", "-d", "a body",
                              "http://example.com/p?q=1")
    assert code == 0, (code, err)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n") and b"X-Echo: yes" in head, head
    v, stdin = parse_echo(body)
    assert (v["REQUEST_METHOD"], v["PATH_INFO"], v["QUERY_STRING"], v["SERVER_NAME"], v["HTTP_X_TEST"]) == \
        ("PUT", "/p", "q=1", "example.com", "yes"), v
    assert stdin == b"a body", stdin
    # Compiled once into $XDG_CACHE_HOME/atoll/wasm; the second run only loads it.
    cache = os.path.join(TMP, "xdg", "atoll", "wasm")
    assert any(f.endswith(".so") for f in os.listdir(cache)), os.listdir(cache)
    t0 = time.time()
    code, out, err = run_wasm(echo, "-d", "@-", "/", input=b"from stdin")
    assert code == 0 and parse_echo(out)[1] == b"from stdin", (code, out, err)
    assert "compiled" not in err, err
    note("cached atoll run: %.3f s" % (time.time() - t0))


@test
def atoll_run_exit_statuses_for_modules():
    guest = module("guest")
    code, out, err = run_wasm(guest, "/?counter")
    assert (code, out) == (0, b"counter=1\n"), (code, out, err)
    code, out, err = run_wasm(guest, "/?div0")
    assert code == 1 and b"trapped" in out and "integer divide by zero" in err, (code, out, err)
    code, out, err = run_wasm(guest, "-i", "/?loop")
    assert code == 1 and out.startswith(b"HTTP/1.1 503"), (code, out[:200], err)
    bad = os.path.join(TMP, "bad.wasm")
    with open(bad, "wb") as f:
        f.write(b"not wasm")
    code, out, err = run_wasm(bad, "/")
    assert code == 2 and "invalid module" in err and bad in err, (code, err)
    code, out, err = run_wasm(os.path.join(TMP, "missing.wasm"), "/")
    assert code == 2 and "missing.wasm" in err, (code, err)


if __name__ == "__main__":
    main()
