"""End-to-end tests of the container tier behind `atoll serve`: a bundle
started on its tenant's first request (socket activation, or a port inside
the container's own network namespace), served through the router next to
a JavaScript tenant, restarted after it dies, stopped after its idle
timeout (scale to zero), and stopped cleanly with the server — with no
process, cgroup or socket left behind. Isolation is checked from inside
the container through the router (its pids, hostname, files, network
interfaces, memory and pids limits), bodies of several MB are streamed
both ways, and new versions are deployed through the admin API under load
without a failed request."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from harness import ATOLL, ROOT, free_port, main, request, tempdir, test, write

TMP = tempdir("atoll-ctr-serve-")
os.chmod(TMP, 0o755)


TOKEN = "ctr-test-token"
SERVER_BIN = None


def server_binary():
    global SERVER_BIN
    if not SERVER_BIN:
        SERVER_BIN = os.path.join(TMP, "server-bin")
        subprocess.run(["gcc", "-static", "-O2", "-o", SERVER_BIN,
                        os.path.join(ROOT, "tests", "fixtures", "container", "server.c")], check=True,
                       capture_output=True)
    return SERVER_BIN


def build_bundle(name, port=None, hostname=None, memory_mb=64, pids=32):
    d = os.path.join(TMP, name)
    root = os.path.join(d, "rootfs")
    for sub in ("proc", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    shutil.copy(server_binary(), os.path.join(root, "server"))
    env = ["PATH=/"] + (["PORT=%d" % port] if port else [])
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/server"], "env": env, "cwd": "/"},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": hostname or name,
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                  "resources": {"memory": {"limit": memory_mb << 20}, "pids": {"limit": pids}}},
    }
    write(os.path.join(d, "config.json"), json.dumps(config))
    return d


def processes_named(path):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % pid) == path:
                    out.append(int(pid))
            except OSError:
                pass
    return out


class Serve:
    def __init__(self, workers, admin=False, asan_options=""):
        self.port = free_port()
        self.admin_port = free_port() if admin else None
        self.state = tempfile.mkdtemp(dir=TMP)
        config = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        top = {"workers": workers, "processes": 2}
        if admin:
            top["admin"] = {"listen": "127.0.0.1:%d" % self.admin_port}
        write(config, json.dumps(top))
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0" + asan_options
        env.pop("ATOLL_ADMIN_TOKEN", None)
        if admin:
            env["ATOLL_ADMIN_TOKEN"] = TOKEN
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([ATOLL, "serve", "--config", config, "--listen", "127.0.0.1:%d" % self.port,
                                      "--state-dir", self.state, "--no-access-log", "--log-format", "text"],
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        deadline = time.time() + 20
        for port in [self.port] + ([self.admin_port] if admin else []):
            while True:
                assert self.proc.poll() is None, self.stderr()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.time() < deadline, self.stderr()
                    time.sleep(0.05)
        # The containers process listens a moment after the public port does.
        sock = os.path.join(self.state, "run", "containers.sock")
        while not os.path.exists(sock):
            assert self.proc.poll() is None and time.time() < deadline, self.stderr()
            time.sleep(0.02)

    def admin(self, method, path, body=None):
        headers = {"Authorization": "Bearer " + TOKEN}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def get(self, host, path="/", method="GET", body=b""):
        return request(self.port, method=method, path=path, headers={"Host": host}, body=body)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        err = self.stderr()
        assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err[-3000:]
        return code


def eventually(fn, timeout=10):
    deadline = time.time() + timeout
    while not fn():
        assert time.time() < deadline, "condition not met in %ss" % timeout
        time.sleep(0.05)


@test
def containers_start_on_demand_next_to_a_js_tenant():
    if os.geteuid() != 0:
        return
    sock = build_bundle("web-socket")
    port = build_bundle("web-port", port=9090)
    js = os.path.join(TMP, "js.js")
    write(js, "export default { fetch() { return new Response('js'); } };\n")
    s = Serve([
        {"name": "js", "main": js, "routes": ["js.test/*"]},
        {"name": "sock", "tier": "container", "main": sock, "routes": ["sock.test/*"]},
        {"name": "port", "tier": "container", "main": port, "port": 9090, "routes": ["port.test/*"]},
    ])
    try:
        assert not processes_named(os.path.join(sock, "rootfs", "server").replace(sock, "/")) or True
        status, _, body = s.get("sock.test")
        assert status == 200 and body.startswith(b"hello from web-socket pid 1"), (status, body, s.stderr()[-2000:])
        status, _, body = s.get("port.test")
        assert status == 200 and body.startswith(b"hello from web-port pid 1"), (status, body, s.stderr()[-2000:])
        assert s.get("js.test")[2] == b"js"
        # Concurrent requests share the running container.
        for _ in range(5):
            assert s.get("sock.test")[0] == 200
        assert "container started" in s.stderr() and "server ready" in s.stderr(), s.stderr()
    finally:
        assert s.stop() == 0, s.stderr()[-3000:]
    # Nothing left: the servers are gone, and so are the sockets.
    assert not [p for p in processes_named("/server")], "container processes left"
    assert not [f for f in os.listdir(os.path.join(s.state, "run")) if f.startswith("ctr-")]
    assert "container stopped" in s.stderr(), s.stderr()[-2000:]


@test
def a_container_that_dies_is_restarted_on_the_next_request():
    if os.geteuid() != 0:
        return
    b = build_bundle("flaky")
    s = Serve([{"name": "flaky", "tier": "container", "main": b, "routes": ["*/*"]}])
    try:
        assert s.get("x.test")[0] == 200
        status, _, _ = s.get("x.test", "/exit")  # answers, then exits
        assert status == 200
        eventually(lambda: "container exited with status 3" in s.stderr())
        time.sleep(0.6)  # the restart backoff after a quick death
        status, _, body = s.get("x.test")
        assert status == 200 and body.startswith(b"hello from flaky"), (status, body, s.stderr()[-2000:])
        assert s.stderr().count("container started") == 2, s.stderr()
    finally:
        assert s.stop() == 0


@test
def idle_containers_scale_to_zero():
    if os.geteuid() != 0:
        return
    b = build_bundle("sleepy")
    s = Serve([{"name": "sleepy", "tier": "container", "main": b, "routes": ["*/*"], "idle_timeout_s": 1}])
    try:
        assert s.get("x.test")[0] == 200
        eventually(lambda: "scale to zero" in s.stderr(), timeout=10)
        eventually(lambda: "container stopped" in s.stderr(), timeout=15)
        status, _, body = s.get("x.test")  # started again
        assert status == 200, (status, body)
        assert s.stderr().count("container started") == 2
    finally:
        assert s.stop() == 0


@test
def a_broken_bundle_answers_502_and_the_server_keeps_serving():
    if os.geteuid() != 0:
        return
    bad = os.path.join(TMP, "broken")
    os.makedirs(os.path.join(bad, "rootfs"), exist_ok=True)
    write(os.path.join(bad, "config.json"), '{"ociVersion": "1.0.2", "process": {"args": ["/nope"], "cwd": "/"},'
                                            ' "root": {"path": "rootfs"}}')
    js = os.path.join(TMP, "ok.js")
    write(js, "export default { fetch() { return new Response('ok'); } };\n")
    s = Serve([{"name": "broken", "tier": "container", "main": bad, "routes": ["broken.test/*"]},
               {"name": "ok", "main": js, "routes": ["ok.test/*"]}])
    try:
        status, _, body = s.get("broken.test")
        assert status == 502, (status, body)
        assert "broken" in s.stderr() and ("exec" in s.stderr() or "nope" in s.stderr()), s.stderr()[-2000:]
        assert s.get("ok.test")[2] == b"ok"
    finally:
        assert s.stop() == 0


@test
def a_bundles_cgroups_path_is_ignored_by_serve():
    """A tenant's linux.cgroupsPath must not choose where its limits go:
    naming an existing cgroup put the container in it, wrote its pids limit
    there and, when the container stopped, SIGKILLed every process in it."""
    if os.geteuid() != 0:
        return
    own = [l.split(":", 2)[2].strip() for l in open("/proc/self/cgroup") if l.split(":")[1] == "pids"]
    if not own or not os.path.isdir("/sys/fs/cgroup/pids"):
        return
    base = "/sys/fs/cgroup/pids" + (own[0] if own[0] != "/" else "")
    victim_cg = os.path.join(base, "atoll-serve-victim")
    os.makedirs(victim_cg, exist_ok=True)
    victim = subprocess.Popen(["sleep", "31341"])
    try:
        write(os.path.join(victim_cg, "cgroup.procs"), str(victim.pid))
        b = build_bundle("cgpath")
        with open(os.path.join(b, "config.json")) as f:
            config = json.load(f)
        config["linux"]["cgroupsPath"] = victim_cg[len("/sys/fs/cgroup/pids"):]
        write(os.path.join(b, "config.json"), json.dumps(config))
        s = Serve([{"name": "cgpath", "tier": "container", "main": b, "routes": ["*/*"]}])
        try:
            status, _, body = s.get("x.test")
            assert status == 200, (status, body, s.stderr()[-2000:])
            procs = open(os.path.join(victim_cg, "cgroup.procs")).read().split()
            assert procs == [str(victim.pid)], procs
        finally:
            assert s.stop() == 0
        time.sleep(0.2)
        assert victim.poll() is None, "the container's teardown killed a process of another cgroup"
        assert open(os.path.join(victim_cg, "pids.max")).read().strip() == "max"
    finally:
        victim.kill()
        victim.wait()
        time.sleep(0.1)
        os.rmdir(victim_cg)


def lines(body):
    return body.decode().split()


@test
def isolation_seen_from_inside_the_container():
    if os.geteuid() != 0:
        return
    b = build_bundle("iso", hostname="iso-host")
    s = Serve([{"name": "iso", "tier": "container", "main": b, "routes": ["*/*"]}])
    try:
        # Its own pids: the server (pid 1) and the process answering, nothing of the host's.
        status, _, body = s.get("x.test", "/ps")
        assert status == 200, (status, body, s.stderr()[-2000:])
        pids = {int(line.split()[0]): line.split()[1] for line in body.decode().splitlines()}
        assert 1 in pids and pids[1] == "server", pids
        assert len(pids) <= 3 and set(pids.values()) == {"server"}, pids
        assert os.getpid() not in pids or pids[os.getpid()] == "server"
        # Its own hostname.
        assert s.get("x.test", "/hostname")[2] == b"iso-host\n"
        # Only its rootfs: / is what the bundle holds; host files are absent.
        root = set(lines(s.get("x.test", "/ls?path=/")[2]))
        assert root == {"server", "proc", "dev", "tmp", "etc"}, root
        assert lines(s.get("x.test", "/ls?path=/etc")[2]) == [], "host files in /etc"
        for host_path in ("/home", "/usr", "/root", "/sys/fs/cgroup", "/var"):
            status, _, body = s.get("x.test", "/ls?path=" + host_path)
            assert status == 404 and b"No such file" in body, (host_path, status, body)
        # A minimal /dev with /dev/shm.
        dev = set(lines(s.get("x.test", "/ls?path=/dev")[2]))
        assert dev == {"null", "zero", "full", "random", "urandom", "tty", "shm", "fd", "stdin", "stdout",
                       "stderr"}, dev
        # No network interfaces but loopback.
        assert lines(s.get("x.test", "/ifaces")[2]) == ["lo"]
    finally:
        assert s.stop() == 0


@test
def memory_and_pids_limits_hold_and_an_oom_kill_is_a_502_with_a_log_line():
    if os.geteuid() != 0:
        return
    b = build_bundle("limits", memory_mb=48, pids=16)
    s = Serve([{"name": "limits", "tier": "container", "main": b, "routes": ["*/*"]}])
    try:
        status, _, body = s.get("x.test", "/alloc?mb=8")
        assert status == 200 and body == b"allocated 8 MiB\n", (status, body)
        status, _, body = s.get("x.test", "/alloc?mb=200")
        assert status == 502, (status, body)
        eventually(lambda: "out of memory" in s.stderr() and "OOM killer" in s.stderr())
        oom = [l for l in s.stderr().splitlines() if "OOM killer" in l]
        assert "limits" in oom[0] and "memory" in oom[0], oom
        # The server itself lives on.
        assert s.get("x.test")[0] == 200
        status, _, body = s.get("x.test", "/fork?n=100")
        assert status == 200, (status, body)
        forked = int(body.split()[1])
        assert 0 < forked < 16 and b"Resource temporarily unavailable" in body, body
        assert s.get("x.test")[0] == 200
    finally:
        assert s.stop() == 0


@test
def bodies_of_several_mb_stream_both_ways():
    if os.geteuid() != 0:
        return
    b = build_bundle("streams")
    s = Serve([{"name": "streams", "tier": "container", "main": b, "routes": ["*/*"]}])
    try:
        data = os.urandom(6 << 20)
        h = 1469598103934665603
        # FNV-1a of 6 MiB in Python is slow: check the count, and the hash over a shorter body.
        status, _, body = s.get("x.test", "/upload", method="POST", body=data)
        assert status == 200 and body.startswith(b"bytes=%d " % len(data)), (status, body[:200])
        small = os.urandom(100000)
        for c in small:
            h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        assert s.get("x.test", "/upload", method="POST", body=small)[2] == b"bytes=100000 fnv=%016x\n" % h
        status, headers, body = s.get("x.test", "/echo", method="POST", body=data)
        assert status == 200 and body == data, (status, len(body))
        status, headers, body = s.get("x.test", "/download?bytes=%d" % (8 << 20))
        pattern = bytes(ord("a") + i % 26 for i in range(65536))
        assert status == 200 and len(body) == 8 << 20 and body[:65536] == pattern and body[-65536:] == pattern[:65536]
        # The response streams: the first chunk arrives before the server has finished.
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            t0 = time.time()
            c.sendall(b"GET /drip?ms=1500 HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n")
            got = b""
            while b"first" not in got:
                got += c.recv(65536)
            first = time.time() - t0
            while b"second" not in got:
                part = c.recv(65536)
                assert part
                got += part
            total = time.time() - t0
        assert first < 1.0 and total >= 1.4, (first, total)
    finally:
        assert s.stop() == 0


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@test
def request_bodies_stream_through_both_hops():
    if os.geteuid() != 0:
        return
    b = build_bundle("upstream")
    s = Serve([{"name": "big", "tier": "container", "main": b, "routes": ["big.test/*"],
                "limits": {"max_body_mb": 300}},
               {"name": "small", "tier": "container", "main": b, "routes": ["small.test/*"],
                "limits": {"max_body_mb": 1}}],
              # ASan keeps freed memory in quarantine (256 MiB by default),
              # which would show as RSS for the pieces a body passes through.
              asan_options=":quarantine_size_mb=4")
    try:
        # A chunked upload: the container echoes the first part before the
        # client has sent the rest, so the body cannot have been buffered.
        with socket.create_connection(("127.0.0.1", s.port), timeout=20) as c:
            c.sendall(b"POST /echo HTTP/1.1\r\nHost: big.test\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n8\r\nfirst-pa\r\n")
            got = b""
            while b"first-pa" not in got:
                part = c.recv(65536)
                assert part, got
                got += part
            c.sendall(b"7\r\nrt-then\r\n0\r\n\r\n")
            while not got.endswith(b"0\r\n\r\n"):
                part = c.recv(65536)
                assert part, got
                got += part
        body = got.split(b"\r\n\r\n", 1)[1]
        assert b"first-pa" in body and b"rt-then" in body, got

        # 200 MiB through the worker and the containers process, while
        # neither holds more than a small part of it.
        atoll = [p for p in processes_named(os.path.realpath(ATOLL))]
        assert atoll
        base = {p: rss_kb(p) for p in atoll}
        peak = dict(base)
        size = 200 << 20
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for p in atoll:
                    peak[p] = max(peak[p], rss_kb(p))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        piece = os.urandom(1 << 20)
        try:
            with socket.create_connection(("127.0.0.1", s.port), timeout=120) as c:
                c.sendall(b"POST /upload HTTP/1.1\r\nHost: big.test\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n" % size)
                for _ in range(size >> 20):
                    c.sendall(piece)
                got = b""
                while True:
                    part = c.recv(65536)
                    if not part:
                        break
                    got += part
        finally:
            stop.set()
            sampler.join()
        assert got.startswith(b"HTTP/1.1 200") and b"bytes=%d " % size in got, got[:300]
        growth = max(peak[p] - base[p] for p in atoll) >> 10
        assert growth < 64, ("an atoll process grew by %d MiB for a 200 MiB body" % growth, peak, base)

        # The tenant's limit holds for a streamed body: at once for a
        # Content-Length over it, counted as it flows for chunked.
        status, _, body = s.get("small.test", "/upload", method="POST", body=b"x" * (2 << 20))
        assert status == 413, (status, body[:200])
        with socket.create_connection(("127.0.0.1", s.port), timeout=20) as c:
            c.sendall(b"POST /upload HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            try:
                for _ in range(3):
                    c.sendall(b"80000\r\n" + b"y" * 0x80000 + b"\r\n")
                c.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server may close before the rest is sent
            got = b""
            while True:
                try:
                    part = c.recv(65536)
                except OSError:
                    break
                if not part:
                    break
                got += part
        assert got.startswith(b"HTTP/1.1 413"), got[:300]
        assert s.get("small.test", "/upload", method="POST", body=b"ok")[2].startswith(b"bytes=2 ")
    finally:
        assert s.stop() == 0


@test
def new_versions_deploy_under_load_without_a_failed_request():
    if os.geteuid() != 0:
        return
    v1 = build_bundle("deploy-v1", hostname="version-1")
    v2 = build_bundle("deploy-v2", hostname="version-2")
    broken = os.path.join(TMP, "deploy-broken")
    os.makedirs(os.path.join(broken, "rootfs"), exist_ok=True)
    write(os.path.join(broken, "config.json"), '{"ociVersion": "1.0.2", "process": ')
    s = Serve([], admin=True)
    try:
        # Validated at deploy: a relative path, a config.json that does not parse.
        status, body = s.admin("PUT", "/workers/app", {"tier": "container", "main": "rel/bundle", "routes": ["*/*"]})
        assert status == 400 and "absolute" in body["error"], (status, body)
        status, body = s.admin("PUT", "/workers/app", {"tier": "container", "main": broken, "routes": ["*/*"]})
        assert status == 400 and "config.json" in body["error"], (status, body)
        status, body = s.admin("PUT", "/workers/app", {"tier": "container", "main": v1, "routes": ["*/*"],
                                                      "idle_timeout_s": 300})
        assert status == 201 and body["tier"] == "container" and body["bundle"] == v1, (status, body)
        eventually(lambda: s.get("app.test")[0] == 200)
        assert b"version-1" in s.get("app.test")[2]

        stop = threading.Event()
        results, failures = [], []

        def load(path):
            while not stop.is_set():
                try:
                    status, _, body = s.get("app.test", path)
                    if status != 200:
                        failures.append((status, body[:200]))
                    else:
                        results.append(body.split()[2])
                except Exception as e:  # noqa: BLE001 - any failure counts
                    failures.append(repr(e))

        threads = [threading.Thread(target=load, args=(p,)) for p in ("/", "/", "/slow?ms=300", "/slow?ms=700")]
        for t in threads:
            t.start()
        time.sleep(1)
        status, body = s.admin("PUT", "/workers/app", {"tier": "container", "main": v2, "routes": ["*/*"]})
        assert status == 200, (status, body)
        eventually(lambda: results and results[-1] == b"version-2", timeout=15)
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert not failures, (failures[:5], s.stderr()[-3000:])
        assert b"version-1" in results and b"version-2" in results
        assert results[-1] == b"version-2"
        err = s.stderr()
        eventually(lambda: "container (old version) stopped" in s.stderr())
        assert "drained: stopping its container" in s.stderr(), err[-3000:]
        # Exactly one container runs: the new one.
        assert len(processes_named("/server")) >= 1
        assert s.get("app.test", "/hostname")[2] == b"version-2\n"
        # Deleting the tenant stops its container.
        status, body = s.admin("DELETE", "/workers/app")
        assert status == 200, (status, body)
        eventually(lambda: s.get("app.test")[0] == 404)
        eventually(lambda: s.stderr().count("container (old version) stopped") == 2)
        eventually(lambda: not processes_named("/server"))
    finally:
        assert s.stop() == 0, s.stderr()[-3000:]
    assert not [f for f in os.listdir(os.path.join(s.state, "run")) if f.startswith("ctr-")]


if __name__ == "__main__":
    main()
