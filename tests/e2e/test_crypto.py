"""End-to-end tests of Web Crypto in the real binary: the crypto worker
fixture under `atoll serve` with the sandbox (seccomp, read-only mounts)
where OpenSSL must find its randomness and libuv's pool its threads."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

from harness import ATOLL, free_port, main, request, run_cli, tempdir, test, write

TMP = tempdir("atoll-crypto-")
os.chmod(TMP, 0o755)  # sandboxed workers may run as another user

WORKER = r"""
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const enc = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
export default {
  async fetch(request) {
    const s = crypto.subtle;
    const out = [crypto.randomUUID().length, crypto.getRandomValues(new Uint8Array(8)).length];
    out.push(hex(await s.digest("SHA-256", enc("abc"))).slice(0, 16));
    const pw = await s.importKey("raw", enc("password"), "PBKDF2", false, ["deriveBits"]);
    // 25,000 iterations: enough to go to the thread pool.
    const bits = await s.deriveBits({ name: "PBKDF2", salt: enc("salt"), iterations: 25000, hash: "SHA-1" }, pw, 160);
    out.push(hex(bits));
    const { privateKey, publicKey } = await s.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const sig = await s.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, enc("x"));
    out.push(await s.verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, sig, enc("x")));
    return new Response(out.join(" "));
  },
};
"""


@test
def crypto_cli_digest():
    path = os.path.join(TMP, "cli", "worker.js")
    write(path, "export default { async fetch() { const d = await crypto.subtle.digest('SHA-1', new Uint8Array(0));"
                " return new Response([...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('')); } };\n")
    rc, out, err = run_cli("run", path, "/")
    assert rc == 0, err
    assert out == b"da39a3ee5e6b4b0d3255bfef95601890afd80709", out


@test
def crypto_under_the_sandbox():
    path = os.path.join(TMP, "tenant", "worker.js")
    write(path, WORKER)
    port = free_port()
    config = os.path.join(TMP, "atoll.jsonc")
    write(config, json.dumps({"listen": "127.0.0.1:%d" % port, "processes": 1,
                              # The point here is the sandbox, not the CPU budget: PBKDF2 under
                              # ASan on a loaded machine can take more than the default 50 ms.
                              "workers": [{"name": "c", "main": path, "routes": ["crypto.test/*"],
                                           "limits": {"cpu_ms": 2000}}]}))
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # no ptrace in the sandbox
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([ATOLL, "serve", "--config", config], stdout=subprocess.DEVNULL,
                            stderr=err, env=env)
    try:
        deadline = time.time() + 20
        while True:
            assert proc.poll() is None, "atoll serve exited early"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, "atoll serve did not listen"
                time.sleep(0.05)
        status, _, body = request(port, headers={"Host": "crypto.test"})
        err.seek(0)
        log = err.read().decode("utf-8", "replace")
        # PBKDF2-HMAC-SHA1("password", "salt", 25000, 20), by Python's hashlib.
        want = hashlib.pbkdf2_hmac("sha1", b"password", b"salt", 25000, 20).hex()
        assert status == 200, (status, body, log[-2000:])
        assert body == ("36 8 ba7816bf8f01cfea %s true" % want).encode(), (body, log[-2000:])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
