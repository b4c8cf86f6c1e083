"""End-to-end tests of KV namespace bindings under `atoll serve`: the
Workers KV API from a worker against SQLite and against Redis (the same
checks, tests/fixtures/kv/api.js), isolation between tenants, expiry,
durability of acknowledged puts across SIGKILL, two nodes sharing one
Redis, and `atoll kv --config --binding` on the same store."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import ATOLL, ROOT, free_port, main, request, run_cli, tempdir, test, write

TMP = tempdir("atoll-kv-")
os.chmod(TMP, 0o755)
API = os.path.join(ROOT, "tests", "fixtures", "kv", "api.js")
TOKEN = "kv-test-token"


class Redis:
    """Debian's redis-server on a free loopback port, no persistence."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="atoll-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Serve:
    def __init__(self, config, processes=2, sandbox=True, state=None):
        self.port = free_port()
        config = dict(config)
        config["listen"] = "127.0.0.1:%d" % self.port
        config["admin"] = {"listen": "127.0.0.1:%d" % free_port()}
        config.setdefault("processes", processes)
        self.admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
        self.state = state or tempfile.mkdtemp(prefix="state-", dir=TMP)
        os.chmod(self.state, 0o777)
        config["state_dir"] = self.state
        self.config_path = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        write(self.config_path, "// test config\n" + json.dumps(config, indent=2))
        self.sandbox = sandbox
        self.start()

    def start(self):
        self.err = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["ATOLL_ADMIN_TOKEN"] = TOKEN
        if self.sandbox:
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        cmd = [ATOLL, "serve", "--config", self.config_path]
        if not self.sandbox:
            cmd.append("--no-sandbox")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.err, env=env,
                                     start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("atoll serve exited early: %s" % self.stderr())
            try:
                if request(self.port, path="/hello", headers={"Host": "kv.test"})[0] == 200:
                    return
            except (OSError, AssertionError):
                time.sleep(0.05)
        raise AssertionError("atoll serve did not answer: " + self.stderr())

    def kill(self):
        """SIGKILL to the whole process group: supervisor, admin, workers."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True).stdout.split()
        assert children, "no worker processes to kill"
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for pid in children:  # the workers died too (not left serving the port)
            assert wait_for(lambda: gone(int(pid)), 5), pid

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def admin(self, method, path, body=b""):
        headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
        return request(self.admin_port, method=method, path=path, headers=headers, body=body)

    def get(self, path, host="kv.test"):
        return request(self.port, path=path, headers={"Host": host})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()
        err = self.stderr()
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err or "Assertion" in err:
            raise AssertionError("sanitizer report:\n" + err[-4000:])
        if exc[0] is None and self.proc.returncode != 0:
            raise AssertionError("atoll serve exited %s:\n%s" % (self.proc.returncode, err[-3000:]))


def gone(pid):
    """The process has exited (or is a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_for(fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    return False


def q(**kw):
    return "?" + urllib.parse.urlencode(kw, quote_via=urllib.parse.quote)


def kv_config(kv=None, extra_workers=()):
    cfg = {"workers": [
        {"name": "kvapp", "main": API, "routes": ["kv.test/*"], "kv_namespaces": [{"binding": "KV", "id": "ns-app"}]},
        {"name": "other", "main": API, "routes": ["other.test/*"],
         "kv_namespaces": [{"binding": "KV", "id": "ns-other"}]},
        *extra_workers]}
    if kv:
        cfg["kv"] = kv
    return cfg


def run_api(s, tag):
    status, _, body = s.get("/run" + q(tag=tag))
    assert status == 200 and body == b"ok", (status, body.decode(errors="replace"), s.stderr()[-2000:])


@test
def the_kv_api_works_on_sqlite_in_the_sandbox():
    with Serve(kv_config(), processes=2) as s:
        run_api(s, "sq1")
        run_api(s, "sq2")  # the other process (or the same) sees a fresh prefix work too
        assert os.path.exists(os.path.join(s.state, "kv.sqlite3"))


@test
def the_kv_api_works_on_redis_in_the_sandbox():
    with Redis() as r, Serve(kv_config({"redis": r.url}), processes=2) as s:
        run_api(s, "rd1")
        run_api(s, "rd2")
        assert not os.path.exists(os.path.join(s.state, "kv.sqlite3"))


@test
def a_restarted_redis_is_reconnected_to_in_the_sandbox():
    with Redis() as r:
        with Serve(kv_config({"redis": r.url}), processes=1, sandbox=True) as s:
            assert s.get("/put" + q(key="before", value="1"))[0] == 200
            r.proc.terminate()
            r.proc.wait(10)
            # the store is unreachable: the get rejects, the worker's catch answers 500
            assert s.get("/get" + q(key="before"))[0] == 500
            r.proc = subprocess.Popen(["redis-server", "--port", str(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
                                       "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert wait_for(lambda: s.get("/put" + q(key="after", value="2"))[0] == 200, 15), s.stderr()[-2000:]
            assert s.get("/get" + q(key="after"))[2] == b"2"


@test
def tenants_reach_only_their_own_namespaces():
    with Serve(kv_config(), processes=1, sandbox=False) as s:
        assert s.get("/put" + q(key="secret", value="alpha"))[0] == 200
        assert s.get("/get" + q(key="secret"))[2] == b"alpha"
        # the other tenant binds the same name KV to another namespace id
        assert s.get("/get" + q(key="secret"), host="other.test")[0] == 404
        assert s.get("/list", host="other.test")[2] == b'{"keys":[],"list_complete":true,"cacheStatus":null}'
        assert s.get("/put" + q(key="secret", value="beta"), host="other.test")[0] == 200
        assert s.get("/get" + q(key="secret"))[2] == b"alpha"


@test
def expired_keys_are_never_returned():
    for kv in ({"min_ttl": 1}, "redis"):
        with Redis() as r:
            conf = {"min_ttl": 1, "redis": r.url} if kv == "redis" else kv
            with Serve(kv_config(conf), processes=1, sandbox=False) as s:
                for path in ("/put-ttl" + q(key="ephemeral", value="v", ttl=1), "/put" + q(key="stays", value="v")):
                    status, _, body = s.get(path)
                    assert status == 200, (kv, path, status, body, s.stderr()[-3000:])
                assert s.get("/get" + q(key="ephemeral"))[2] == b"v"
                time.sleep(2.2)
                assert s.get("/get" + q(key="ephemeral"))[0] == 404, kv
                names = [k["name"] for k in json.loads(s.get("/list")[2])["keys"]]
                assert names == ["stays"], (kv, names)


@test
def a_put_not_awaited_is_still_written_and_the_isolate_frees_cleanly():
    with Serve(kv_config(), processes=1, sandbox=False) as s:
        for i in range(20):
            assert s.get("/fire" + q(key="f%d" % i))[0] == 200
        time.sleep(0.5)
        assert s.get("/get" + q(key="f19"))[2] == b"fire-and-forget"
        # a put still reading a stream that never ends, when the server stops:
        # the isolate is torn down without leaks (LeakSanitizer is on here)
        assert s.get("/hang" + q(key="h"))[2] == b"hanging"


@test
def atoll_kv_cli_uses_the_config_and_binding():
    with Redis() as r:
        for kv in (None, {"redis": r.url}):
            with Serve(kv_config(kv), processes=1, sandbox=False) as s:
                base = ["--config", s.config_path, "--binding", "KV", "--tenant", "kvapp"]
                code, out, err = run_cli("kv", "put", *base, "from-cli", "hello cli")
                assert code == 0, err
                assert s.get("/get" + q(key="from-cli"))[2] == b"hello cli"
                assert s.get("/put" + q(key="from-js", value="hi js"))[0] == 200
                code, out, err = run_cli("kv", "get", *base, "from-js")
                assert code == 0 and out == b"hi js", (code, out, err)
                code, out, err = run_cli("kv", "list", *base)
                assert code == 0 and [k["name"] for k in json.loads(out)] == ["from-cli", "from-js"], out
                code, out, err = run_cli("kv", "delete", *base, "from-js")
                assert code == 0, err
                assert s.get("/get" + q(key="from-js"))[0] == 404
                # the other tenant's binding of the same name is another namespace
                code, out, err = run_cli("kv", "get", "--config", s.config_path, "--binding", "KV",
                                         "--tenant", "other", "from-cli")
                assert code != 0 and b"" == out, (code, out)
                # a binding name shared by two tenants needs --tenant
                code, out, err = run_cli("kv", "get", "--config", s.config_path, "--binding", "KV", "from-cli")
                assert code != 0 and "--tenant" in err, err
                code, out, err = run_cli("kv", "get", "--config", s.config_path, "--binding", "NOPE",
                                         "--tenant", "kvapp", "x")
                assert code != 0 and "NOPE" in err, err


def hammer(s, prefix, acked, stop):
    """Puts keys one by one; a key counts as acknowledged only on a 200."""
    i = 0
    while not stop.is_set():
        key = "%s-%d" % (prefix, i)
        value = "value-of-%s-%s" % (key, "x" * (i % 50))
        try:
            status, _, body = request(s.port, path="/put" + q(key=key, value=value), headers={"Host": "kv.test"})
            if status == 200 and body == ("stored " + key).encode():
                acked[key] = value
        except Exception:
            pass
        i += 1


@test
def acknowledged_puts_survive_sigkill():
    cfg = kv_config()
    s = Serve(cfg, processes=2, sandbox=False)
    acked = {}
    try:
        for round_ in range(5):
            stop = threading.Event()
            threads = [threading.Thread(target=hammer, args=(s, "r%d-t%d" % (round_, t), acked, stop))
                       for t in range(4)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(0.3, 1.2))
            s.kill()  # at a random moment, with puts in flight
            stop.set()
            for t in threads:
                t.join()
            s.start()
        assert len(acked) > 50, len(acked)
        missing = []
        for k, v in acked.items():
            status, _, body = s.get("/get" + q(key=k))
            if status != 200 or body != v.encode():
                missing.append((k, status, body[:80]))
        assert not missing, "%d of %d acknowledged keys lost, e.g. %s" % (len(missing), len(acked), missing[:3])
        print("# %d acknowledged puts over 5 SIGKILLs, none lost" % len(acked))
    finally:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(40)


@test
def two_nodes_share_namespaces_through_redis():
    with Redis() as r:
        cfg = kv_config({"redis": r.url})
        with Serve(cfg, processes=1, sandbox=False) as a, Serve(cfg, processes=1, sandbox=False) as b:
            assert a.state != b.state
            assert a.get("/put" + q(key="shared", value="from-a"))[0] == 200
            assert b.get("/get" + q(key="shared"))[2] == b"from-a"
            assert b.get("/put" + q(key="shared", value="from-b"))[0] == 200
            assert a.get("/get" + q(key="shared"))[2] == b"from-b"
            names = [k["name"] for k in json.loads(b.get("/list")[2])["keys"]]
            assert names == ["shared"], names


@test
def deploys_reach_every_node_through_deploy_redis():
    with Redis() as r:
        cfg = kv_config({"redis": r.url})
        cfg["deploy"] = {"redis": r.url}
        script = open(API).read()
        with Serve(cfg, processes=1, sandbox=False) as a, Serve(cfg, processes=1, sandbox=True) as b:
            doc = {"script": script, "routes": ["fleet.test/*"], "kv_namespaces": [{"binding": "KV", "id": "ns-app"}]}
            status, _, body = a.admin("PUT", "/workers/fleetapp", json.dumps(doc).encode())
            assert status == 201, (status, body)
            assert wait_for(lambda: b.get("/hello", host="fleet.test")[0] == 200), b.stderr()[-2000:]
            # the deployed tenant on node b shares node a's namespace through kv.redis
            assert a.get("/put" + q(key="deployed", value="yes"), host="fleet.test")[0] == 200
            assert b.get("/get" + q(key="deployed"), host="fleet.test")[2] == b"yes"
            # a deploy through b replaces it on a too; a deletion through a removes it from b
            doc["script"] = "export default { fetch() { return new Response('v2'); } };"
            status, _, body = b.admin("PUT", "/workers/fleetapp", json.dumps(doc).encode())
            assert status == 200, (status, body)
            assert wait_for(lambda: a.get("/", host="fleet.test")[2] == b"v2"), a.stderr()[-2000:]
            status, _, _ = a.admin("DELETE", "/workers/fleetapp")
            assert status == 200
            assert wait_for(lambda: b.get("/", host="fleet.test")[0] == 404), b.stderr()[-2000:]
        # a node started later replays the stream: the tenant stays deleted, others appear
        with Serve(cfg, processes=1, sandbox=False) as c:
            assert c.get("/", host="fleet.test")[0] == 404


if __name__ == "__main__":
    main()
