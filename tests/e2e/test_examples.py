"""The example tenants that `make run` serves (examples/atoll.jsonc): a JS
module, a service-worker script and a WebAssembly (WASI/WAGI) program, all
answered by one `atoll serve`; and WebAssembly deploys through the admin API."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from harness import ATOLL, ROOT, free_port, main, request, tempdir, test, write

TMP = tempdir("atoll-examples-")
os.chmod(TMP, 0o755)
EXAMPLES = os.path.join(ROOT, "examples", "atoll.jsonc")
TOKEN = "examples-token"


class Serve:
    def __init__(self, config, *args):
        self.port, self.admin_port = free_port(), free_port()
        self.state = tempfile.mkdtemp(dir=TMP)
        env = dict(os.environ, ATOLL_ADMIN_TOKEN=TOKEN)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [ATOLL, "serve", "--config", config, "--listen", "127.0.0.1:%d" % self.port,
             "--state-dir", self.state, "--no-access-log", *args],
            stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        deadline = time.time() + 120  # the first start compiles the wasm module
        while True:
            assert self.proc.poll() is None, "atoll serve exited: " + self.stderr()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, self.stderr()
                time.sleep(0.1)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(40)
        err = self.stderr()
        assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err[-3000:]
        if exc[0] is None:
            assert code == 0, (code, err[-2000:])


@test
def examples_serve_js_service_worker_and_wasm():
    with Serve(EXAMPLES) as s:
        status, _, body = request(s.port, path="/")
        assert status == 200 and body == b"Hello from atoll!\n", (status, body)
        status, _, body = request(s.port, path="/sw/x")
        assert status == 200 and body.startswith(b"GET http://localhost/sw/x"), body
        status, headers, body = request(s.port, path="/wasm/greet?name=you")
        assert status == 200, (status, body, s.stderr()[-2000:])
        assert body == b"Hello from WebAssembly, you! (GET /wasm/greet)\n", body
        assert headers["content-type"].startswith("text/plain"), headers


@test
def wasm_deploys_through_the_admin_api():
    wasm = os.path.join(TMP, "guest.wasm")
    src = os.path.join(ROOT, "examples", "wasm-hello", "hello.c")
    subprocess.run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm, src], check=True)
    config = os.path.join(TMP, "empty.jsonc")
    write(config, json.dumps({"workers": [], "admin": {"listen": "127.0.0.1:0"}}))
    admin_port = free_port()
    write(config, json.dumps({"workers": [], "admin": {"listen": "127.0.0.1:%d" % admin_port}}))
    with Serve(config) as s:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", admin_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        data = open(wasm, "rb").read()
        req = urllib.request.Request(
            "http://127.0.0.1:%d/workers/wasmy" % admin_port, data=data, method="PUT",
            headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/wasm",
                     "Atoll-Settings": json.dumps({"routes": ["wasm.test/*"], "vars": {"GREETING": "Hi"}})})
        with urllib.request.urlopen(req, timeout=120) as r:
            reply = json.loads(r.read())
        assert reply["tier"] == "wasm" and reply["version"] == 1, reply
        status, _, body = request(s.port, path="/x?name=wa", headers={"Host": "wasm.test"})
        assert status == 200 and body.startswith(b"Hi, wa!"), (status, body)
        # An invalid module is refused with the reason; the old version keeps serving.
        bad = urllib.request.Request(
            "http://127.0.0.1:%d/workers/wasmy" % admin_port, data=b"\0asm garbage", method="PUT",
            headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/wasm"})
        try:
            urllib.request.urlopen(bad, timeout=60)
            assert False, "an invalid module was accepted"
        except urllib.error.HTTPError as e:
            assert e.code == 400, e.code
        assert request(s.port, path="/y", headers={"Host": "wasm.test"})[2].startswith(b"Hi, world!")


@test
def wasm_traps_and_runaway_loops_end_one_request_only():
    wasm = os.path.join(TMP, "traps.wasm")
    subprocess.run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm,
                    os.path.join(ROOT, "tests", "fixtures", "wasm", "guest.c")], check=True)
    os.chmod(wasm, 0o644)
    config = os.path.join(TMP, "traps.jsonc")
    write(config, json.dumps({"workers": [
        {"name": "traps", "tier": "wasm", "main": wasm, "routes": ["*/*"], "limits": {"cpu_ms": 100, "wall_ms": 2000}},
    ]}))
    with Serve(config, "--processes", "1") as s:
        # Limits answer as the JS tier's do: 503 CPU, 504 wall time.
        for trap, want in (("oob", 500), ("unreachable", 500), ("stack", 500), ("div0", 500),
                           ("loop", 503), ("sleepforever", 504)):
            status, _, body = request(s.port, path="/?" + trap)
            assert status == want, (trap, status, body)
            assert request(s.port, path="/?counter")[0] == 200, trap  # still serving
        assert "out of bounds" in s.stderr() and "cpu time limit" in s.stderr(), s.stderr()[-3000:]


if __name__ == "__main__":
    main()
