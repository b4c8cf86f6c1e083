"""A small harness for end-to-end tests: starts the real atoll binary, talks
HTTP to it over raw sockets, and reports one line per test ("ok - name" or
"not ok - name: reason") for tests/run.sh to count."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ATOLL = os.environ.get("ATOLL_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "asan", "atoll")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`atoll dev SCRIPT` on a free port; stderr is collected for assertions."""

    def __init__(self, script, *args):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [ATOLL, "dev", script, "--port", str(self.port), *args],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("atoll dev exited early: %s" % self.output())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("atoll dev did not listen: %s" % self.output())

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.send_signal(sig or 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.stop()
        out = self.output()
        if "ERROR: AddressSanitizer" in out or "runtime error:" in out or "LeakSanitizer" in out:
            raise AssertionError("sanitizer report from atoll:\n" + out[-4000:])
        if exc[0] is None and code != 0:
            raise AssertionError("atoll dev exited %s after SIGTERM:\n%s" % (code, out[-2000:]))


def read_response(sock, head=False):
    """Reads one HTTP/1.1 response; returns (status, headers dict lower-cased, body bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before headers: %r" % data)
        data += chunk
    head_bytes, rest = data.split(b"\r\n\r\n", 1)
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), v.strip())
    if head or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("short body")
            rest += chunk
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body, rest
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return status, headers, rest, b""
        rest += chunk


def request(port_or_server, method="GET", path="/", headers=None, body=b""):
    port = getattr(port_or_server, "port", port_or_server)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        hdrs = {"Host": "localhost", "Connection": "close"}
        hdrs.update(headers or {})
        if body:
            hdrs["Content-Length"] = str(len(body))
        raw = "%s %s HTTP/1.1\r\n" % (method, path) + "".join(
            "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        s.sendall(raw.encode() + body)
        status, h, b, _ = read_response(s, head=(method == "HEAD"))
        return status, h, b


def run_cli(*args, input=None, timeout=60, env=None):
    p = subprocess.run([ATOLL, *args], input=input, capture_output=True, timeout=timeout, env=env)
    err = p.stderr.decode("utf-8", "replace")
    if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
        raise AssertionError("sanitizer report:\n" + err[-4000:])
    return p.returncode, p.stdout, err


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


_tempdirs = []


def tempdir(prefix):
    """A scratch directory for a test file, removed when all its tests pass
    (kept on failure, or with ATOLL_E2E_KEEP=1, to look into)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _tempdirs.append(path)
    return path


def main():
    passed = failed = 0
    only = sys.argv[1:]
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        try:
            fn()
            print("ok - %s" % fn.__name__, flush=True)
            passed += 1
        except Exception as e:  # report and go on with the next test
            print("not ok - %s: %s" % (fn.__name__, e), flush=True)
            traceback.print_exc(file=sys.stdout)
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    if not failed and not os.environ.get("ATOLL_E2E_KEEP"):
        for path in _tempdirs:
            shutil.rmtree(path, ignore_errors=True)
    sys.exit(1 if failed else 0)
