"""End-to-end tests of the container tier behind `atoll serve`: a bundle
started on its tenant's first request (socket activation, or a port inside
the container's own network namespace), served through the router next to
a JavaScript tenant, restarted after it dies, stopped after its idle
timeout (scale to zero), and stopped cleanly with the server — with no
process, cgroup or socket left behind."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import ATOLL, ROOT, free_port, main, request, test, write

TMP = tempfile.mkdtemp(prefix="atoll-ctr-serve-")
os.chmod(TMP, 0o755)


def build_bundle(name, port=None):
    d = os.path.join(TMP, name)
    root = os.path.join(d, "rootfs")
    for sub in ("proc", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(root, "server"),
                    os.path.join(ROOT, "tests", "fixtures", "container", "server.c")], check=True,
                   capture_output=True)
    env = ["PATH=/"] + (["PORT=%d" % port] if port else [])
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/server"], "env": env, "cwd": "/"},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": name,
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                  "resources": {"memory": {"limit": 64 << 20}, "pids": {"limit": 32}}},
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
    def __init__(self, workers):
        self.port = free_port()
        self.state = tempfile.mkdtemp(dir=TMP)
        config = os.path.join(TMP, "atoll-%d.jsonc" % self.port)
        write(config, json.dumps({"workers": workers, "processes": 2}))
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([ATOLL, "serve", "--config", config, "--listen", "127.0.0.1:%d" % self.port,
                                      "--state-dir", self.state, "--no-access-log", "--log-format", "text"],
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        deadline = time.time() + 20
        while True:
            assert self.proc.poll() is None, self.stderr()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, self.stderr()
                time.sleep(0.05)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def get(self, host, path="/"):
        return request(self.port, path=path, headers={"Host": host})

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


if __name__ == "__main__":
    main()
