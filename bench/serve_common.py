"""Shared pieces of the `atoll serve` benchmarks (bench/serve_*.py): N
hello-world tenants that each answer their own name on host tNNNN.test,
served by atoll (one atoll.jsonc) and by Cloudflare's workerd (one
config.capnp: a worker service per tenant and a small router worker on the
socket that picks the tenant's service binding by Host — workerd has no
host routing of its own). workerd comes from the npm registry into
${PEERS_CACHE:-$HOME/.cache/atoll-peers}, as /work/shared/peers/workerd-serve
does. Nothing here asserts a figure."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TENANT_JS = 'export default { fetch() { return new Response("%s"); } };\n'
ROUTER_JS = """export default {
  fetch(request, env) {
    const host = request.headers.get("host") || "";
    const service = env[host.split(".")[0]];
    return service ? service.fetch(request) : new Response("no worker for " + host, { status: 404 });
  },
};
"""


def name(i):
    return "t%04d" % i


def machine():
    return "%d cores, load %s" % (os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3]))


def show(cmd):
    print("$ " + " ".join(cmd), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tenants(dir, n):
    os.makedirs(dir, exist_ok=True)
    os.chmod(dir, 0o755)
    for i in range(n):
        with open(os.path.join(dir, name(i) + ".js"), "w") as f:
            f.write(TENANT_JS % name(i))


def atoll_config(dir, n, port, processes):
    cfg = {"listen": "127.0.0.1:%d" % port, "processes": processes, "state_dir": os.path.join(dir, "state"),
           "workers": [{"name": name(i), "main": os.path.join(dir, name(i) + ".js"),
                        "routes": ["%s.test/*" % name(i)]} for i in range(n)]}
    path = os.path.join(dir, "atoll.jsonc")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def workerd_bin():
    cache = os.environ.get("PEERS_CACHE") or os.path.expanduser("~/.cache/atoll-peers")
    exe = os.path.join(cache, "node_modules", ".bin", "workerd")
    if not os.access(exe, os.X_OK) and shutil.which("npm"):
        os.makedirs(cache, exist_ok=True)
        if not os.path.exists(os.path.join(cache, "package.json")):
            subprocess.run(["npm", "init", "-y"], cwd=cache, capture_output=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "workerd"], cwd=cache, capture_output=True)
    return exe if os.access(exe, os.X_OK) else None


def workerd_config(dir, n, port):
    with open(os.path.join(dir, "router.js"), "w") as f:
        f.write(ROUTER_JS)
    out = ['using Workerd = import "/workerd/workerd.capnp";', "const config :Workerd.Config = (",
           "  services = [", '    (name = "router", worker = .router),']
    out += ['    (name = "%s", worker = .%s),' % (name(i), name(i)) for i in range(n)]
    out += ["  ],", '  sockets = [ (name = "http", address = "127.0.0.1:%d", http = (), service = "router") ],' % port,
            ");", "const router :Workerd.Worker = (", '  modules = [ (name = "r.js", esModule = embed "router.js") ],',
            '  compatibilityDate = "2024-01-01",', "  bindings = ["]
    out += ['    (name = "%s", service = "%s"),' % (name(i), name(i)) for i in range(n)]
    out += ["  ],", ");"]
    for i in range(n):
        out.append('const %s :Workerd.Worker = ( modules = [ (name = "w.js", esModule = embed "%s.js") ],'
                   ' compatibilityDate = "2024-01-01" );' % (name(i), name(i)))
    path = os.path.join(dir, "config.capnp")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path


class Client:
    """One keep-alive HTTP/1.1 connection; get() returns (status, body)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, host, path="/"):
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict((k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:]))
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self.buf += self.sock.recv(65536)
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self.buf += self.sock.recv(65536)
                body, self.buf = body + self.buf[:size], self.buf[size + 2:]
                if size == 0:
                    return int(lines[0].split()[1]), body
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(lines[0].split()[1]), body

    def close(self):
        self.sock.close()


def wait_answer(port, host, proc, timeout=300):
    """Polls until host answers 200 on port; returns seconds waited."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit("server exited with %s" % proc.returncode)
        try:
            c = Client(port)
            status, _ = c.get(host)
            c.close()
            if status == 200:
                return time.time() - t0
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("nothing answered on port %d in %ds" % (port, timeout))


def tree(pid):
    """pid and all its descendants."""
    out = [pid]
    for p in out:
        try:
            for task in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def memory(pid):
    """(RSS, PSS) in bytes summed over the process tree of pid."""
    rss = pss = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def atoll_bin(argv):
    for a in argv:
        if not a.startswith("-"):
            return os.path.abspath(a)
    return os.path.join(ROOT, "build", "release", "atoll")


def atoll_env():
    env = dict(os.environ)
    env.pop("ATOLL_ADMIN_TOKEN", None)
    return env


if __name__ == "__main__":
    sys.exit("a module for bench/serve_*.py")
