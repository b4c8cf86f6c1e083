"""End-to-end tests of `atoll serve`: tenants routed by host and path from
atoll.jsonc, per-tenant limits, worker processes under the supervisor and
the sandbox, the access log, and config errors."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import ATOLL, free_port, main, request, run_cli, tempdir, test, write

TMP = tempdir("atoll-serve-")
# Sandboxed workers run as nobody: the tenants' files must be readable by it.
os.chmod(TMP, 0o755)


def tenant(name, body):
    path = os.path.join(TMP, name, "worker.js")
    write(path, body)
    return path


NAMED = ("function path(r) { const u = r.url; const i = u.indexOf('/', u.indexOf('//') + 2); return u.slice(i); }\n"
         "export default { fetch(r) { return new Response('%s ' + path(r)); } };\n")


class Serve:
    def __init__(self, config, *args, processes=2, sandbox=True):
        self.port = free_port()
        config = dict(config)
        config["listen"] = "127.0.0.1:%d" % self.port
        self.state = tempfile.mkdtemp(dir=TMP)
        config["state_dir"] = self.state
        config.setdefault("processes", processes)
        self.config_path = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        write(self.config_path, "// test config\n" + json.dumps(config, indent=2))
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        env = dict(os.environ)
        if sandbox:
            # Leak checking needs ptrace, which the sandbox forbids.
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        cmd = [ATOLL, "serve", "--config", self.config_path, *args]
        if not sandbox:
            cmd.append("--no-sandbox")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, env=env)
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

    def access_log(self):
        self.out.seek(0)
        return [json.loads(line) for line in self.out.read().decode().splitlines() if line.startswith("{")]

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True).stdout.decode()
        return [int(p) for p in out.split()]

    def get(self, host, path="/"):
        return request(self.port, path=path, headers={"Host": host})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.stderr()
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err:
            raise AssertionError("sanitizer report:\n" + err[-4000:])
        if exc[0] is None and self.proc.returncode != 0:
            raise AssertionError("atoll serve exited %s:\n%s" % (self.proc.returncode, err[-3000:]))


def basic_config():
    return {"workers": [
        {"name": "alpha", "main": tenant("alpha", NAMED % "alpha"), "routes": ["alpha.test/*"]},
        {"name": "beta", "main": tenant("beta", NAMED % "beta"), "routes": ["beta.test/*", "*.beta.test/*"]},
        {"name": "api", "main": tenant("api", NAMED % "api"), "routes": ["alpha.test/api/*"]},
    ]}


@test
def routes_by_host_and_path_most_specific_first():
    with Serve(basic_config(), sandbox=False) as s:
        status, _, body = s.get("alpha.test", "/x")
        assert (status, body) == (200, b"alpha /x"), (status, body)
        assert s.get("alpha.test", "/api/v1")[2] == b"api /api/v1"
        assert s.get("beta.test:8080", "/")[2] == b"beta /"
        assert s.get("shop.beta.test", "/q?x=1")[2] == b"beta /q?x=1"
        status, _, body = s.get("gamma.test", "/")
        assert status == 404 and b"No worker" in body, (status, body)


@test
def access_log_has_one_json_line_per_request():
    with Serve(basic_config(), sandbox=False) as s:
        s.get("alpha.test", "/one")
        s.get("nobody.test", "/two")
        time.sleep(0.3)
        log = s.access_log()
        one = [l for l in log if l["path"] == "/one"]
        two = [l for l in log if l["path"] == "/two"]
        assert len(one) == 1 and one[0]["tenant"] == "alpha" and one[0]["status"] == 200, log
        assert one[0]["cold"] is True and one[0]["bytes_out"] == len(b"alpha /one"), one
        assert len(two) == 1 and two[0]["tenant"] is None and two[0]["status"] == 404, log
        for key in ("time", "method", "bytes_in", "wall_us"):
            assert key in one[0], one


@test
def a_runaway_tenant_does_not_affect_others():
    cfg = basic_config()
    cfg["workers"].append({"name": "spin", "main": tenant("spin", "export default { fetch() { for (;;) {} } };\n"),
                           "routes": ["spin.test/*"], "limits": {"cpu_ms": 20}})
    cfg["workers"].append({"name": "boom", "main": tenant("boom", "export default { fetch() { throw new Error('boom'); } };\n"),
                           "routes": ["boom.test/*"]})
    with Serve(cfg, processes=1, sandbox=False) as s:
        failures = []
        stop = threading.Event()

        def steady():
            while not stop.is_set():
                if s.get("alpha.test", "/")[2] != b"alpha /":
                    failures.append(1)
        t = threading.Thread(target=steady)
        t.start()
        for _ in range(3):
            status, _, body = s.get("spin.test")
            assert status == 503 and b"CPU" in body, (status, body)
            assert s.get("boom.test")[0] == 500
        stop.set()
        t.join()
        assert not failures, "the well-behaved tenant saw %d failures" % len(failures)
        assert s.get("alpha.test", "/")[2] == b"alpha /"


@test
def a_limit_hit_after_the_response_fails_no_later_request():
    # The handler answers, then leaves an endless chain of microtasks: the
    # isolate goes over its CPU limit with no request in flight. The next
    # request must get a fresh isolate, not that violation's 503, and the
    # violation is still counted.
    cfg = {"workers": [{"name": "after", "routes": ["after.test/*"], "limits": {"cpu_ms": 20}, "main": tenant(
        "after", "export default { fetch(r) { if (r.url.endsWith('/spin')) { const f = () => Promise.resolve()"
                 ".then(f); f(); } return new Response('ok'); } };\n")}]}
    with Serve(cfg, processes=1, sandbox=False) as s:
        for _ in range(3):
            s.get("after.test", "/spin")
            status, _, body = s.get("after.test", "/fine")
            assert (status, body) == (200, b"ok"), (status, body)
        path = os.path.join(s.state, "metrics", "default-0.json")
        deadline = time.time() + 5
        while True:
            try:
                after = json.load(open(path))["tenants"]["after"]
            except (OSError, ValueError, KeyError):
                after = {}
            if after.get("limit_cpu", 0) >= 2:
                break
            assert time.time() < deadline, after
            time.sleep(0.2)
        assert "no request in flight" in s.stderr(), s.stderr()[-2000:]


BURN_AFTER_RESPONSE = """
let ticks = 0;
export default {
  fetch(r) {
    if (r.url.endsWith('/start')) {
      // Runs on after the response, until it exceeds the CPU limit.
      setInterval(() => { ticks++; let x = 0; for (let i = 0; i < 3e6; i++) x += i; }, 1);
      return new Response('started');
    }
    return new Response('ticks ' + ticks);
  },
};
"""


@test
def an_isolate_broken_between_requests_is_replaced_before_the_next():
    # A timer that runs past the CPU limit after the response breaks the
    # isolate with no request in it; the next request must get a fresh
    # isolate, not that limit's 503.
    cfg = {"workers": [{"name": "burn", "main": tenant("burn", BURN_AFTER_RESPONSE), "routes": ["burn.test/*"]}]}
    with Serve(cfg, processes=1, sandbox=False) as s:
        status, _, body = s.get("burn.test", "/start")
        assert (status, body) == (200, b"started"), (status, body)
        deadline = time.time() + 20
        while "exceeded its CPU time limit" not in s.stderr() and time.time() < deadline:
            time.sleep(0.1)
        assert "exceeded its CPU time limit" in s.stderr(), s.stderr()
        status, _, body = s.get("burn.test", "/")
        assert (status, body) == (200, b"ticks 0"), (status, body, s.stderr()[-2000:])
        assert "between requests" in s.stderr(), s.stderr()


def worker_status(pid):
    status = open("/proc/%d/status" % pid).read()
    return dict((k, v.strip()) for k, v in (line.split(":", 1) for line in status.splitlines() if ":" in line))


@test
def workers_run_sandboxed():
    with Serve(basic_config(), processes=2) as s:
        assert s.get("alpha.test")[0] == 200
        pids = s.worker_pids()
        assert len(pids) == 2, pids
        for pid in pids:
            fields = worker_status(pid)
            assert fields["Seccomp"] == "2", fields["Seccomp"]
            assert fields["NoNewPrivs"] == "1"
            assert fields["CapEff"] == "0000000000000000", fields["CapEff"]
            # Emptying the bounding set needs CAP_SETPCAP, so only a root
            # supervisor can; without it no_new_privs and no capabilities hold.
            if os.geteuid() == 0:
                assert fields["CapBnd"] == "0000000000000000", fields["CapBnd"]
            # Workers run as the config file's owner, in their own mount namespace
            # where everything but the state directory is read-only.
            assert int(fields["Uid"].split()[0]) == os.stat(s.config_path).st_uid, fields["Uid"]
            if os.geteuid() == 0:
                assert os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt")
                mounts = open("/proc/%d/mountinfo" % pid).read().splitlines()
                root = [m for m in mounts if m.split()[4] == "/"]
                assert root and "ro" in root[0].split()[5].split(","), root


@test
def workers_run_as_the_configured_user():
    if os.geteuid() != 0:
        return
    cfg = basic_config()
    cfg["user"] = "nobody"
    with Serve(cfg, processes=1) as s:
        assert s.get("alpha.test")[2] == b"alpha /"
        pid = s.worker_pids()[0]
        assert worker_status(pid)["Uid"].split()[0] == "65534"


@test
def a_killed_worker_process_is_replaced():
    with Serve(basic_config(), processes=2, sandbox=False) as s:
        before = s.worker_pids()
        os.kill(before[0], signal.SIGKILL)
        deadline = time.time() + 10
        while True:
            now = s.worker_pids()
            if len(now) == 2 and before[0] not in now:
                break
            assert time.time() < deadline, (before, now)
            time.sleep(0.1)
        assert s.get("beta.test")[2] == b"beta /"
        assert "died: killed by signal 9" in s.stderr(), s.stderr()


@test
def sigterm_drains_and_exits_zero():
    cfg = {"workers": [{"name": "slow", "main": tenant("slow", "export default { async fetch() {"
                        " await new Promise(r => setTimeout(r, 600)); return new Response('done'); } };\n"),
                        "routes": ["*/*"]}]}
    s = Serve(cfg, processes=1, sandbox=False)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", s.get("x.test")))
    t.start()
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert result.get("r", (0, 0, b""))[2] == b"done", result
    assert s.proc.wait(20) == 0, s.stderr()
    s.__exit__(None, None, None)


@test
def config_errors_refuse_to_start():
    bad = os.path.join(TMP, "bad.jsonc")
    write(bad, '{ "workers": [ { "name": "x", "main": "missing.js" } ] }')
    code, _, err = run_cli("serve", "--config", bad)
    assert code == 2, code
    assert "bad.jsonc: workers[0]" in err and "missing.js" in err, err
    code, _, err = run_cli("serve", "--config", os.path.join(TMP, "nope.jsonc"))
    assert code == 2 and "cannot open" in err, err


@test
def a_taken_port_refuses_to_start():
    # Another program on the port, and another atoll serve (whose
    # SO_REUSEPORT listeners would otherwise split the traffic with ours).
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    cfg = dict(basic_config(), listen="127.0.0.1:%d" % port, state_dir=tempfile.mkdtemp(dir=TMP))
    path = os.path.join(TMP, "taken.jsonc")
    write(path, json.dumps(cfg))
    code, _, err = run_cli("serve", "--config", path, "--no-sandbox", timeout=20)
    holder.close()
    assert code == 1, (code, err)
    assert "listen on 127.0.0.1 port %d: address already in use" % port in err, err
    with Serve(basic_config(), processes=1, sandbox=False) as first:
        cfg["listen"] = "127.0.0.1:%d" % first.port
        write(path, json.dumps(cfg))
        code, _, err = run_cli("serve", "--config", path, "--no-sandbox", timeout=20)
        assert code == 1 and "address already in use" in err, (code, err)
        assert first.get("alpha.test")[0] == 200
    # The admin API's address is checked too.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    cfg["listen"] = "127.0.0.1:%d" % free_port()
    cfg["admin"] = {"listen": "127.0.0.1:%d" % holder.getsockname()[1]}
    write(path, json.dumps(cfg))
    code, _, err = run_cli("serve", "--config", path, "--no-sandbox", timeout=20,
                           env=dict(os.environ, ATOLL_ADMIN_TOKEN="t"))
    holder.close()
    assert code == 1 and "admin.listen: listen on 127.0.0.1 port" in err, (code, err)


@test
def a_body_over_the_tenants_limit_is_refused():
    echo = "export default { async fetch(r) { return new Response(String((await r.arrayBuffer()).byteLength)); } };\n"
    cfg = {"workers": [
        {"name": "small", "main": tenant("small", echo), "routes": ["small.test/*"], "limits": {"max_body_mb": 1}},
        {"name": "big", "main": tenant("big", echo), "routes": ["big.test/*"], "limits": {"max_body_mb": 8}},
    ]}
    with Serve(cfg, processes=1, sandbox=False) as s:
        # Content-Length over the limit: 413 at once, no 100 Continue, and
        # the client need not send the body.
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"POST / HTTP/1.1\r\nHost: small.test\r\nContent-Length: 2000000\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            head = c.recv(4096)
            assert head.startswith(b"HTTP/1.1 413 "), head[:200]
        # Under it, and for the other tenant (whose limit is higher), accepted.
        status, _, body = request(s.port, method="POST", path="/", headers={"Host": "small.test"}, body=b"x" * 1000000)
        assert (status, body) == (200, b"1000000"), (status, body)
        status, _, body = request(s.port, method="POST", path="/", headers={"Host": "big.test"}, body=b"x" * 2000000)
        assert (status, body) == (200, b"2000000"), (status, body)
        # A chunked body over the limit is refused too, once it passes it.
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"POST / HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            try:
                for _ in range(40):
                    c.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                c.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # refused mid-body: the server may close first
            got = c.recv(4096)
            assert got.startswith(b"HTTP/1.1 413 "), got[:200]


@test
def unknown_keys_are_warned_about():
    cfg = basic_config()
    cfg["colour"] = "blue"
    with Serve(cfg, processes=1, sandbox=False) as s:
        assert s.get("alpha.test")[0] == 200
        assert "colour: unknown key" in s.stderr(), s.stderr()


@test
def console_output_is_tagged_with_the_tenant():
    cfg = {"workers": [{"name": "talker", "routes": ["*/*"], "main": tenant(
        "talker", "export default { fetch() { console.log('said \"hi\"', {n: 1}); console.error('oops');"
                  " return new Response('ok'); } };\n")}]}
    with Serve(cfg, processes=1, sandbox=False) as s:
        assert s.get("x.test")[2] == b"ok"
        time.sleep(0.3)
        lines = [json.loads(l) for l in s.stderr().splitlines() if l.startswith("{")]
        said = [l for l in lines if l.get("tenant") == "talker" and l["level"] == "info"]
        assert said and said[0]["msg"].startswith('said "hi"'), lines
        assert any(l.get("tenant") == "talker" and l["level"] == "error" and l["msg"] == "oops" for l in lines), lines
    with Serve(cfg, "--log-format", "text", processes=1, sandbox=False) as s:
        assert s.get("x.test")[2] == b"ok"
        time.sleep(0.3)
        assert '[talker] said "hi"' in s.stderr(), s.stderr()


@test
def cordoned_tenants_run_only_in_their_own_process():
    cfg = basic_config()
    cfg["workers"].append({"name": "blue", "main": tenant("blue", NAMED % "blue"), "routes": ["blue.test/*"],
                           "cordon": "blue-team"})
    with Serve(cfg, processes=2) as s:
        for _ in range(3):
            assert s.get("blue.test", "/b")[2] == b"blue /b"
        assert s.get("alpha.test")[2] == b"alpha /"
        assert len(s.worker_pids()) == 3, s.worker_pids()  # two default, one for the cordon
        metrics = os.path.join(s.state, "metrics")
        deadline = time.time() + 5
        while True:
            files = {f: json.load(open(os.path.join(metrics, f))) for f in os.listdir(metrics) if f.endswith(".json")}
            blue = files.get("blue-team-0.json", {}).get("tenants", {}).get("blue", {})
            if blue.get("requests") == 3:
                break
            assert time.time() < deadline, files
            time.sleep(0.2)
        # Its isolate lives only in the cordon's process; the default
        # processes route to it but never run it.
        assert blue["cold_starts"] == 1 and blue["resident"] == 1, blue
        for name, doc in files.items():
            if name.startswith("default-"):
                b = doc["tenants"].get("blue", {})
                assert b.get("cold_starts", 0) == 0 and b.get("requests", 0) == 0, (name, b)
                assert "alpha" in doc["tenants"] or True
        # One access-log line per request, written where it arrived.
        time.sleep(0.3)
        assert len([l for l in s.access_log() if l["tenant"] == "blue"]) == 3, s.access_log()


if __name__ == "__main__":
    main()
