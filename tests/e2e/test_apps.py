"""Real applications from the npm registry, run unmodified: a Hono app
(tests/apps/hono/app.js: routing with params, middleware, JSON, cookies,
c.req.parseBody(), streaming with c.stream), an itty-router app
(tests/apps/itty/app.js), and an app of libraries Workers code bundles
(tests/apps/libs/app.js: jose, @tsndr/cloudflare-worker-jwt, zod, nanoid,
uuid, cookie, date-fns, marked, superjson, devalue; keys and tokens made
elsewhere are in tests/apps/libs/vectors.json). The packages are installed at
test time with npm, at pinned versions, into build/npm-apps (never
committed); esbuild bundles each app as a Workers build would; the bundles
are served by `atoll dev` (both) and `atoll serve` (Hono) and checked over
HTTP. A failed install or bundle fails the tests, it does not skip them."""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import harness
from harness import ROOT, Server, main, test

# test_serve's Serve class starts `atoll serve`; importing the module also
# registers its tests with the harness, which this file does not run.
_n = len(harness._tests)
from test_serve import Serve  # noqa: E402
del harness._tests[_n:]

PACKAGES = ["hono@4.13.19", "itty-router@5.0.24", "esbuild@0.28.2",
            # tests/apps/libs: libraries Workers code bundles.
            "jose@6.2.18", "zod@4.6.7", "nanoid@6.0.2", "uuid@14.0.3", "cookie@2.0.2", "date-fns@4.4.0",
            "marked@18.2.1", "superjson@2.2.7", "devalue@6.0.3", "@tsndr/cloudflare-worker-jwt@3.2.3"]
WORK = os.path.join(ROOT, "build", "npm-apps")
_bundles = {}


def install():
    os.makedirs(WORK, exist_ok=True)
    pkg = os.path.join(WORK, "package.json")
    if not os.path.exists(pkg):
        with open(pkg, "w") as f:
            json.dump({"name": "atoll-test-apps", "private": True}, f)
    wanted = {p.rsplit("@", 1)[0]: p.rsplit("@", 1)[1] for p in PACKAGES}
    have = {}
    for name in wanted:
        try:
            with open(os.path.join(WORK, "node_modules", name, "package.json")) as f:
                have[name] = json.load(f)["version"]
        except OSError:
            pass
    if have != wanted or not os.path.exists(os.path.join(WORK, "node_modules", ".bin", "esbuild")):
        p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--save-exact", *PACKAGES],
                           cwd=WORK, capture_output=True, timeout=600)
        if p.returncode != 0:
            raise AssertionError("npm install failed (%d):\n%s" % (p.returncode, (p.stdout + p.stderr).decode()[-3000:]))


def bundle(name):
    """Bundles tests/apps/NAME/app.js with esbuild as a Workers build does
    (ESM, browser/worker conditions); returns the bundle's path."""
    if name in _bundles:
        return _bundles[name]
    install()
    src_dir = os.path.join(WORK, "src", name)
    os.makedirs(src_dir, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "tests", "apps", name, "app.js"), os.path.join(src_dir, "app.js"))
    out = os.path.join(WORK, "dist", name + ".js")
    p = subprocess.run([os.path.join(WORK, "node_modules", ".bin", "esbuild"), os.path.join(src_dir, "app.js"),
                        "--bundle", "--format=esm", "--platform=neutral", "--target=es2022",
                        "--conditions=workerd,worker,browser", "--main-fields=module,main",
                        "--outfile=" + out, "--log-level=warning"],
                       cwd=WORK, capture_output=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError("esbuild failed:\n" + (p.stdout + p.stderr).decode()[-3000:])
    # Readable by the sandboxed `atoll serve` workers (they run as nobody).
    for d in (WORK, os.path.dirname(out)):
        os.chmod(d, 0o755)
    os.chmod(out, 0o644)
    _bundles[name] = out
    return out


def http(port, method="GET", path="/", headers=None, body=b""):
    """One request; returns (status, headers as a list of (name, value)
    lower-cased names, so repeated Set-Cookie lines stay apart, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        h = {"Host": "localhost", "Connection": "close"}
        h.update(headers or {})
        if body:
            h["Content-Length"] = str(len(body))
        s.sendall(("%s %s HTTP/1.1\r\n" % (method, path)).encode() +
                  "".join("%s: %s\r\n" % kv for kv in h.items()).encode() + b"\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = [(k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:])]
    if ("transfer-encoding", "chunked") in hdrs:
        out = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        rest = out
    return int(lines[0].split(" ")[1]), hdrs, rest


def hget(hdrs, name):
    return next((v for k, v in hdrs if k == name), None)


def multipart(fields, files):
    b = "----atolltest7MA4YWxkTrZu0gW"
    parts = []
    for k, v in fields:
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (b, k, v)).encode())
    for k, fname, ctype, data in files:
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: %s\r\n\r\n" % (b, k, fname, ctype)).encode() + data + b"\r\n")
    return "multipart/form-data; boundary=" + b, b"".join(parts) + ("--%s--\r\n" % b).encode()


def timed_chunks(port, path):
    """Reads a chunked response as it arrives: [(seconds since the request, chunk)]."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        t0 = time.time()
        s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower(), head
        got = []
        while True:
            while b"\r\n" not in rest:
                rest += s.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                more = s.recv(65536)
                assert more, "connection closed mid-chunk"
                rest += more
            if size == 0:
                return got
            got.append((time.time() - t0, rest[:size]))
            rest = rest[size + 2:]


# --- Hono ---------------------------------------------------------------

def check_hono_basics(port):
    st, h, b = http(port, "GET", "/")
    assert (st, b) == (200, b"Hello Hono!"), (st, b)
    assert hget(h, "x-powered-by") == "hono-on-atoll", h
    assert len(hget(h, "x-request-id") or "") == 36, h
    st, h, b = http(port, "GET", "/users/42/posts/7?q=hi&tag=a&tag=b")
    assert st == 200 and json.loads(b) == {"id": "42", "postId": "7", "q": "hi", "tags": ["a", "b"]}, (st, b)
    st, h, b = http(port, "GET", "/nope")
    assert st == 404 and json.loads(b) == {"error": "not found", "path": "/nope"}, (st, b)
    st, h, b = http(port, "GET", "/runtime")
    assert st == 200 and json.loads(b) == {"runtime": "workerd", "bindings": True}, (st, b)


@test
def hono_routing_params_middleware_and_not_found():
    with Server(bundle("hono"), "--quiet") as srv:
        check_hono_basics(srv.port)


@test
def hono_json_in_and_out():
    with Server(bundle("hono"), "--quiet") as srv:
        st, h, b = http(srv.port, "POST", "/echo", {"Content-Type": "application/json"},
                        json.dumps({"a": [1, 2], "s": "\u00e9"}).encode())
        assert st == 201, (st, b)
        assert hget(h, "content-type").startswith("application/json"), h
        assert json.loads(b) == {"got": {"a": [1, 2], "s": "\u00e9"}, "ct": "application/json"}, b


@test
def hono_path_middleware_guards_admin():
    with Server(bundle("hono"), "--quiet") as srv:
        st, _, b = http(srv.port, "GET", "/admin/stats")
        assert st == 401 and json.loads(b) == {"error": "unauthorized"}, (st, b)
        st, _, b = http(srv.port, "GET", "/admin/stats", {"Authorization": "Bearer s3cret"})
        assert st == 200 and json.loads(b) == {"ok": True}, (st, b)


@test
def hono_cookies():
    with Server(bundle("hono"), "--quiet") as srv:
        st, h, b = http(srv.port, "GET", "/cookies/set")
        cookies = [v for k, v in h if k == "set-cookie"]
        assert st == 200 and len(cookies) == 2, h
        assert cookies[0].startswith("session=abc%20123;") and "HttpOnly" in cookies[0] and \
            "Max-Age=3600" in cookies[0] and "SameSite=Lax" in cookies[0], cookies
        assert cookies[1].startswith("theme=dark"), cookies
        st, h, b = http(srv.port, "GET", "/cookies/get", {"Cookie": "session=abc%20123; theme=dark"})
        assert json.loads(b) == {"all": {"session": "abc 123", "theme": "dark"}, "session": "abc 123"}, b
        st, h, b = http(srv.port, "GET", "/cookies/clear")
        assert "Max-Age=0" in hget(h, "set-cookie"), h


@test
def hono_parse_body_urlencoded_and_multipart():
    with Server(bundle("hono"), "--quiet") as srv:
        st, _, b = http(srv.port, "POST", "/form", {"Content-Type": "application/x-www-form-urlencoded"},
                        b"name=atoll&tag=a&tag=b&sp=x+y%21")
        assert st == 200 and json.loads(b) == {"name": "atoll", "tag": ["a", "b"], "sp": "x y!"}, (st, b)
        ctype, body = multipart([("title", "report")],
                                [("upload", "data.txt", "text/plain", b"file contents\n")])
        st, _, b = http(srv.port, "POST", "/form", {"Content-Type": ctype}, body)
        assert st == 200, (st, b)
        assert json.loads(b) == {"title": "report", "upload": {"file": "data.txt", "size": 14, "type": "text/plain",
                                                             "text": "file contents\n"}}, b


@test
def hono_streaming_arrives_as_produced():
    with Server(bundle("hono"), "--quiet") as srv:
        got = timed_chunks(srv.port, "/stream")
        text = b"".join(c for _, c in got)
        assert text == b"part0\npart1\npart2\n", text
        # The app sleeps 200 ms between parts: the first part must reach the
        # client well before the last one (not buffered whole).
        first = next(t for t, c in got if b"part0" in c)
        last = next(t for t, c in got if b"part2" in c)
        assert last - first > 0.3, got
        st, h, b = http(srv.port, "GET", "/stream-text")
        assert st == 200 and b == b"line one\nline two", (st, b)
        assert hget(h, "content-type").startswith("text/plain"), h


@test
def hono_builtin_middleware_cors_etag_basic_auth():
    with Server(bundle("hono"), "--quiet") as srv:
        st, h, _ = http(srv.port, "OPTIONS", "/api/data",
                        {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert st == 204 and hget(h, "access-control-allow-origin") == "https://app.example", (st, h)
        st, h, b = http(srv.port, "GET", "/api/data", {"Origin": "https://app.example"})
        tag = hget(h, "etag")
        assert st == 200 and tag and json.loads(b) == {"data": [1, 2, 3]}, (st, h, b)
        st, _, b = http(srv.port, "GET", "/api/data", {"If-None-Match": tag})
        assert st == 304 and b == b"", (st, b)
        st, h, _ = http(srv.port, "GET", "/basic")
        assert st == 401 and "Basic" in (hget(h, "www-authenticate") or ""), (st, h)
        st, _, b = http(srv.port, "GET", "/basic", {"Authorization": "Basic dTpw"})
        assert (st, b) == (200, b"welcome"), (st, b)


@test
def hono_jwt_on_crypto_subtle():
    with Server(bundle("hono"), "--quiet") as srv:
        st, _, b = http(srv.port, "POST", "/token", {"Content-Type": "application/json"}, b'{"sub":"alice"}')
        token = json.loads(b)["token"]
        assert st == 200 and token.count(".") == 2, (st, b)
        st, _, b = http(srv.port, "GET", "/me", {"Authorization": "Bearer " + token})
        assert st == 200 and json.loads(b) == {"sub": "alice"}, (st, b)
        bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        st, _, b = http(srv.port, "GET", "/me", {"Authorization": "Bearer " + bad})
        assert st == 401, (st, b)


@test
def hono_sub_app_redirect_html():
    with Server(bundle("hono"), "--quiet") as srv:
        st, _, b = http(srv.port, "GET", "/books")
        assert st == 200 and json.loads(b) == ["b1", "b2"], (st, b)
        st, _, b = http(srv.port, "GET", "/books/12")
        assert json.loads(b) == {"book": 12}, b
        st, _, _ = http(srv.port, "GET", "/books/abc")
        assert st == 404, st
        st, h, _ = http(srv.port, "GET", "/old")
        assert st == 301 and hget(h, "location") == "/books", (st, h)
        st, h, b = http(srv.port, "GET", "/page")
        assert b == b"<h1>Hi</h1>" and hget(h, "content-type").startswith("text/html"), (h, b)


@test
def hono_errors_and_http_exception():
    with Server(bundle("hono"), "--quiet") as srv:
        st, _, b = http(srv.port, "GET", "/fail")
        assert st == 418 and b == b"teapot", (st, b)
        st, _, b = http(srv.port, "GET", "/crash")
        assert st == 500 and json.loads(b) == {"error": "unexpected"}, (st, b)


@test
def hono_under_atoll_serve():
    cfg = {"workers": [{"name": "hono", "main": bundle("hono"), "routes": ["*/*"]}]}
    with Serve(cfg, processes=1) as s:
        check_hono_basics(s.port)
        st, h, _ = http(s.port, "GET", "/cookies/set")
        assert len([v for k, v in h if k == "set-cookie"]) == 2, h
        got = timed_chunks(s.port, "/stream")
        assert b"".join(c for _, c in got) == b"part0\npart1\npart2\n", got
        ctype, body = multipart([("k", "v")], [("f", "a.bin", "application/octet-stream", b"\x00\x01\x02")])
        st, _, b = http(s.port, "POST", "/form", {"Content-Type": ctype}, body)
        assert json.loads(b)["f"]["size"] == 3, b


# --- itty-router -------------------------------------------------------

@test
def itty_routes_params_query_and_wildcards():
    with Server(bundle("itty"), "--quiet") as srv:
        st, h, b = http(srv.port, "GET", "/")
        # AutoRouter's default format: JSON, strings included.
        assert st == 200 and b == b'"itty on atoll"', (st, b)
        assert hget(h, "content-type").startswith("application/json"), h
        assert hget(h, "x-router") == "itty" and hget(h, "access-control-allow-origin") == "*", h
        st, _, b = http(srv.port, "GET", "/hello/world?excited=1")
        assert json.loads(b) == {"hello": "world", "excited": True}, b
        st, _, b = http(srv.port, "GET", "/files/a/b/c.txt")
        assert json.loads(b) == {"path": "a/b/c.txt"}, b
        st, h, b = http(srv.port, "GET", "/text")
        assert hget(h, "content-type") == "text/plain" and b == b"plain response", (h, b)
        st, _, b = http(srv.port, "GET", "/env")
        j = json.loads(b)
        assert j["hasWaitUntil"] is True and j["url"].endswith("/env"), j


@test
def itty_json_crud_and_errors():
    with Server(bundle("itty"), "--quiet") as srv:
        st, _, b = http(srv.port, "POST", "/todos", {"Content-Type": "application/json"}, b'{"title":"write tests"}')
        assert st == 201 and json.loads(b) == {"id": 1, "title": "write tests", "done": False}, (st, b)
        st, _, b = http(srv.port, "GET", "/todos/1")
        assert st == 200 and json.loads(b)["title"] == "write tests", (st, b)
        st, _, b = http(srv.port, "GET", "/todos")
        assert len(json.loads(b)) == 1, b
        st, _, b = http(srv.port, "POST", "/todos", {"Content-Type": "application/json"}, b'{"nope":1}')
        assert st == 400 and json.loads(b)["error"] == "title required", (st, b)
        st, _, b = http(srv.port, "DELETE", "/todos/1")
        assert st == 204, (st, b)
        st, _, b = http(srv.port, "GET", "/todos/1")
        assert st == 404, (st, b)
        st, _, b = http(srv.port, "GET", "/no/such/route")
        assert st == 404, (st, b)
        st, _, b = http(srv.port, "GET", "/throw")
        assert st == 500 and json.loads(b)["status"] == 500, (st, b)


@test
def itty_cors_preflight():
    with Server(bundle("itty"), "--quiet") as srv:
        st, h, _ = http(srv.port, "OPTIONS", "/todos",
                        {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert st == 204, (st, h)
        assert "POST" in (hget(h, "access-control-allow-methods") or ""), h


# --- libraries Workers code bundles -------------------------------------

VECTORS = os.path.join(ROOT, "tests", "apps", "libs", "vectors.json")


def post_json(port, path, obj):
    st, h, b = http(port, "POST", path, {"Content-Type": "application/json"}, json.dumps(obj).encode())
    return st, json.loads(b)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def node_verifies(alg, jwk, token):
    """Whether Node.js's own crypto accepts a compact JWS atoll signed
    (node is there: npm runs on it)."""
    script = r"""
const c = require("crypto");
const [jwk, alg, tok] = JSON.parse(process.argv[1]);
const [h, p, s] = tok.split(".");
const key = c.createPublicKey({ key: jwk, format: "jwk" });
const data = Buffer.from(h + "." + p), sig = Buffer.from(s, "base64url");
const ok = alg === "ES256" ? c.verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig)
  : alg === "PS256" ? c.verify("sha256", data, { key, padding: c.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)
  : alg === "EdDSA" ? c.verify(null, data, key, sig) : c.verify("sha256", data, key, sig);
process.stdout.write(String(ok));
"""
    p = subprocess.run(["node", "-e", script, json.dumps([jwk, alg, token])], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout == b"true"


@test
def libs_jose_jws_across_algorithms():
    with open(VECTORS) as f:
        vec = json.load(f)
    with Server(bundle("libs"), "--quiet") as srv:
        for alg in ("RS256", "PS256", "ES256", "EdDSA"):
            v = vec[alg]
            # Signed elsewhere, verified by atoll.
            st, j = post_json(srv.port, "/jose/verify", {"jwk": v["pub"], "alg": alg, "token": v["token"]})
            assert st == 200 and j == {"valid": True, "payload": "signed elsewhere",
                                       "header": {"alg": alg, "kid": v["pub"]["kid"]}}, (alg, st, j)
            tampered = v["token"][:-4] + ("AAAA" if not v["token"].endswith("AAAA") else "BBBB")
            st, j = post_json(srv.port, "/jose/verify", {"jwk": v["pub"], "alg": alg, "token": tampered})
            assert j["valid"] is False and j["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", (alg, j)
            # Signed by atoll: deterministic algorithms give the very token
            # made elsewhere; the others verify elsewhere.
            st, j = post_json(srv.port, "/jose/sign", {"jwk": v["priv"], "alg": alg, "payload": "signed by atoll"})
            assert st == 200, (alg, st, j)
            if alg in ("RS256", "EdDSA"):
                assert j["token"] == v["token2"], (alg, j)
            else:
                assert j["token"] != v["token2"] and node_verifies(alg, v["pub"], j["token"]), (alg, j)


@test
def libs_jose_jwt_claims_keys_and_spki():
    with open(VECTORS) as f:
        vec = json.load(f)
    claims = {"sub": "alice", "role": "admin", "iat": 1700000000, "iss": "urn:atoll", "aud": "urn:test",
              "exp": 4102444800}
    with Server(bundle("libs"), "--quiet") as srv:
        for alg in ("ES256", "EdDSA", "RS256", "PS256"):
            body = {"alg": alg, "sub": "alice"}
            if alg in ("RS256", "PS256"):  # RSA generation takes more than the CPU budget
                body.update(priv=vec[alg]["priv"], pub=vec[alg]["pub"])
            st, j = post_json(srv.port, "/jose/jwt", body)
            assert st == 200, (alg, st, j)
            assert j["payload"] == claims and j["wrongAudience"] == "ERR_JWT_CLAIM_VALIDATION_FAILED", (alg, j)
            assert j["viaSpki"] == "alice" and j["spkiHead"] == "-----BEGIN PUBLIC KEY-----", (alg, j)
            head, payload, _ = j["token"].split(".")
            assert json.loads(base64.urlsafe_b64decode(head + "==")) == {"alg": alg, "typ": "JWT"}, j
            assert json.loads(base64.urlsafe_b64decode(payload + "==")) == claims, j
            assert node_verifies(alg, j["jwk"], j["token"]), (alg, j)
        # RFC 7638 thumbprint, computed here.
        pub = vec["RS256"]["pub"]
        want = b64url(hashlib.sha256(json.dumps({"e": pub["e"], "kty": "RSA", "n": pub["n"]},
                                                separators=(",", ":")).encode()).digest())
        st, j = post_json(srv.port, "/jose/thumbprint", pub)
        assert j == {"thumbprint": want}, (j, want)


def hs256(secret, header, claims):
    si = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    return si + "." + b64url(hmac.new(secret, si.encode(), hashlib.sha256).digest())


@test
def libs_hs256_jwts_jose_and_cloudflare_worker_jwt():
    token = hs256(b"s3cret", {"alg": "HS256", "typ": "JWT"}, {"sub": "carol", "iat": 1700000000})
    with Server(bundle("libs"), "--quiet") as srv:
        st, j = post_json(srv.port, "/jose/hs256", {"secret": "s3cret", "sub": "x", "token": token})
        assert st == 200 and j["signed"] == hs256(b"s3cret", {"alg": "HS256"}, {"sub": "x", "iat": 1700000000}), j
        assert j["verified"] == {"sub": "carol", "iat": 1700000000}, j
        assert j["decoded"] == {"sub": "x", "iat": 1700000000} and j["header"] == {"alg": "HS256"}, j
        st, j = post_json(srv.port, "/jose/hs256", {"secret": "wrong", "sub": "x", "token": token})
        assert j["verified"] == {"code": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"}, j
        st, j = post_json(srv.port, "/cfjwt", {"secret": "s3cret", "token": token})
        assert st == 200 and j == {"signed": hs256(b"s3cret", {"typ": "JWT", "alg": "HS256"},
                                                   {"sub": "bob", "iat": 1700000000}),
                                   "ok": True, "payload": {"sub": "carol", "iat": 1700000000}, "bad": False}, j


@test
def libs_jose_jwe_direct_encryption():
    with open(VECTORS) as f:
        vec = json.load(f)["jwe"]
    with Server(bundle("libs"), "--quiet") as srv:
        st, j = post_json(srv.port, "/jose/jwe", {"plaintext": "hello jwe", "token": vec["token"], "jwk": vec["jwk"]})
        assert st == 200 and j == {
            "A128GCM": ["hello jwe", 5], "A256GCM": ["hello jwe", 5],
            "A128CBC-HS256": ["hello jwe", 5], "A256CBC-HS512": ["hello jwe", 5],
            "external": {"plaintext": "from elsewhere", "header": {"alg": "dir", "enc": "A128CBC-HS256", "kid": "ext"}},
        }, j


def node_jwe_decrypts(jwk, alg, token):
    """The plaintext jose on Node.js (the same pinned version, in
    build/npm-apps) decrypts from a compact JWE atoll made."""
    script = r"""
import * as jose from "jose";
const [jwk, alg, tok] = JSON.parse(process.argv[1]);
const { plaintext } = await jose.compactDecrypt(tok, await jose.importJWK(jwk, alg));
process.stdout.write(new TextDecoder().decode(plaintext));
"""
    p = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps([jwk, alg, token])],
                       cwd=WORK, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


@test
def libs_jose_jwe_key_wrapping_and_agreement():
    with open(VECTORS) as f:
        cases = json.load(f)["jwe_kw"]
    with Server(bundle("libs"), "--quiet") as srv:
        st, j = post_json(srv.port, "/jose/jwe-kw", {"plaintext": "hello kw", "cases": cases})
        assert st == 200, (st, j)
        names = [n for n in cases if n != "_comment"]
        assert sorted(j) == sorted(names), j
        for name in names:
            c, r = cases[name], j[name]
            assert isinstance(r, dict), (name, r)
            assert r["roundtrip"] == "hello kw" and r["external"] == ["from node", name], (name, r)
            assert r.get("generated") == ("hello kw" if c["alg"] == "ECDH-ES" else None), (name, r)
            head = json.loads(base64.urlsafe_b64decode(r["token"].split(".")[0] + "=="))
            assert head["alg"] == c["alg"] and head["enc"] == c["enc"], (name, head)
            if c["alg"].startswith("ECDH-ES"):
                assert head["epk"]["crv"] == c["pub"]["crv"], (name, head)
            # Made by atoll, decrypted by jose on Node.js.
            assert node_jwe_decrypts(c["priv"], c["alg"], r["token"]) == "hello kw", name


@test
def libs_zod_validates_request_json():
    with Server(bundle("libs"), "--quiet") as srv:
        st, j = post_json(srv.port, "/signup", {"email": "a@b.co", "age": 20, "name": "  Al "})
        assert st == 201 and j == {"email": "a@b.co", "age": 20, "name": "Al", "tags": [], "plan": "free"}, (st, j)
        st, j = post_json(srv.port, "/signup", {"email": "nope", "age": 12.5, "plan": "gold"})
        assert st == 400 and j == {"issues": [{"path": "email", "code": "invalid_format"},
                                              {"path": "age", "code": "invalid_type"},
                                              {"path": "name", "code": "invalid_type"},
                                              {"path": "plan", "code": "invalid_value"}]}, (st, j)


@test
def libs_ids_cookies_dates_markdown_serialization():
    with Server(bundle("libs"), "--quiet") as srv:
        st, _, b = http(srv.port, "GET", "/ids")
        j = json.loads(b)
        assert re.fullmatch(r"[A-Za-z0-9_-]{21}", j["nanoid"]) and re.fullmatch(r"[0-9a-f]{12}", j["hex"]), j
        assert str(uuid.UUID(j["v4"])) == j["v4"] and uuid.UUID(j["v4"]).version == 4 and j["v4ok"] == 4, j
        assert uuid.UUID(j["v7"]).version == 7 and j["v7ok"] == 7, j
        # v7 starts with the Unix time in milliseconds.
        assert abs(int(j["v7"].replace("-", "")[:12], 16) / 1000 - time.time()) < 60, j
        assert j["v5"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "atoll.example")) and j["randomUUID"] == 36, j
        st, h, b = http(srv.port, "GET", "/cookie", {"Cookie": "a=1; b=x%20y; c=\"q\""})
        assert json.loads(b) == {"a": "1", "b": "x y", "c": "\"q\""}, b
        assert [v for k, v in h if k == "set-cookie"] == [
            "session=a%20b%3Bc; Max-Age=600; Path=/; HttpOnly; Secure; SameSite=Strict",
            "seen=1; Expires=Wed, 02 Jan 2030 03:04:05 GMT"], h
        st, _, b = http(srv.port, "GET", "/dates")
        assert json.loads(b) == {"later": "2024-03-01T10:30:00Z", "formatted": "Friday 1 March 2024, 10:30",
                                 "days": 309, "before": True, "offset": 0}, b
        st, h, b = http(srv.port, "POST", "/markdown", {"Content-Type": "text/markdown"},
                        b"# Hi\n\n*a* **b** `c` [l](https://x.example)\n\n- x\n- y\n\n```js\n1 < 2\n```\n")
        assert hget(h, "content-type") == "text/html" and b == (
            b'<h1>Hi</h1>\n<p><em>a</em> <strong>b</strong> <code>c</code> <a href="https://x.example">l</a></p>\n'
            b'<ul>\n<li>x</li>\n<li>y</li>\n</ul>\n<pre><code class="language-js">1 &lt; 2\n</code></pre>\n'), b
        st, _, b = http(srv.port, "GET", "/serialize")
        j = json.loads(b)
        assert j["superjson"]["json"] == {"when": "2024-01-02T03:04:05.000Z", "set": [1, 2], "map": [["k", "1"]],
                                          "re": "/a+b/gi", "nothing": None, "url": "https://example.com/a?b=c"}, j
        assert j["roundtrip"] == ["2024-01-02T03:04:05.000Z", [1, 2], "1", "/a+b/gi", True,
                                  "https://example.com/a?b=c"], j
        assert json.loads(j["devalue"])[1] == ["Date", "2024-01-02T03:04:05.000Z"], j
        assert j["devalueBack"] == [1704164645000, [1, 2], "1", "bigint"], j


if __name__ == "__main__":
    main()
