"""End-to-end tests of streamed bodies over a real socket with `atoll dev`:
a ReadableStream Response arrives chunk by chunk (chunked transfer-encoding,
the first chunk before the last is produced), a stream that fails half-way
cuts the response off, an endless stream hits the CPU limit, a slow client
holds the producer back instead of growing the server's memory, and request
bodies can be read as streams and as multipart/urlencoded FormData."""
import os
import socket
import tempfile
import time

from harness import main, read_response, request, run_cli, Server, tempdir, test, write

TMP = tempdir("atoll-e2e-streams-")

WORKER = r"""
const enc = (s) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async fetch(request) {
    const path = request.url.replace(/^[a-z]+:\/\/[^/]+/, '');
    if (path === '/slow') {
      let i = 0;
      return new Response(new ReadableStream({
        async pull(c) {
          if (i > 0) await sleep(400);
          if (i === 3) return c.close();
          c.enqueue(enc('part' + i++ + '\n'));
        },
      }), { headers: { 'content-type': 'text/plain', 'x-streamed': 'yes' } });
    }
    if (path === '/broken') {
      let i = 0;
      return new Response(new ReadableStream({
        async pull(c) {
          if (i++ < 2) return c.enqueue(enc('ok' + i + '\n'));
          await sleep(10);
          throw new Error('upstream went away');
        },
      }));
    }
    if (path === '/forever') {
      const chunk = new Uint8Array(4096).fill(97);
      return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk); } }));
    }
    if (path === '/huge') {
      const chunk = new Uint8Array(65536).fill(98);
      let n = 0;
      return new Response(new ReadableStream({
        pull(c) { if (n++ === 256) c.close(); else c.enqueue(chunk); },  // 16 MiB
      }));
    }
    if (path === '/echo-stream') {
      const sizes = [];
      let text = '';
      const dec = new TextDecoderStream();
      for await (const s of request.body.pipeThrough(dec)) { text += s; sizes.push(s.length); }
      return Response.json({ text, chunks: sizes.length });
    }
    if (path === '/form') {
      try {
        const fd = await request.formData();
        const out = [];
        for (const [k, v] of fd) out.push([k, typeof v === 'string' ? v : { name: v.name, type: v.type, text: await v.text() }]);
        return Response.json(out);
      } catch (e) {
        return new Response(e.name + ': ' + e.message, { status: 400 });
      }
    }
    if (path === '/make-form') {
      const fd = new FormData();
      fd.append('greeting', 'hello');
      fd.append('file', new File(['contents'], 'f.txt', { type: 'text/plain' }));
      return new Response(fd);
    }
    return new Response('ok');
  },
};
"""


def worker():
    path = os.path.join(TMP, "streams.js")
    write(path, WORKER)
    return path


def send(sock, path, method="GET", headers=None, body=b""):
    hdrs = {"Host": "localhost"}
    hdrs.update(headers or {})
    if body:
        hdrs["Content-Length"] = str(len(body))
    raw = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    sock.sendall(raw.encode() + body)


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("closed before headers: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, rest


def read_chunk(sock, rest):
    """One chunk of a chunked body: (data, rest) or (None, rest) when the
    connection closes first."""
    while b"\r\n" not in rest:
        more = sock.recv(65536)
        if not more:
            return None, rest
        rest += more
    line, rest = rest.split(b"\r\n", 1)
    size = int(line.split(b";")[0], 16)
    while len(rest) < size + 2:
        more = sock.recv(65536)
        if not more:
            return None, rest
        rest += more
    return rest[:size], rest[size + 2:]


@test
def stream_response_arrives_chunk_by_chunk():
    with Server(worker(), "--quiet") as srv, srv.connect() as s:
        t0 = time.time()
        send(s, "/slow")
        status, headers, rest = read_head(s)
        assert status == 200, status
        assert headers.get("transfer-encoding") == "chunked", headers
        assert "content-length" not in headers, headers
        assert headers.get("x-streamed") == "yes"
        first, rest = read_chunk(s, rest)
        t_first = time.time() - t0
        assert first == b"part0\n", first
        chunks = [first]
        while True:
            data, rest = read_chunk(s, rest)
            assert data is not None, "connection closed mid-body"
            if data == b"":
                break
            chunks.append(data)
        t_last = time.time() - t0
        assert chunks == [b"part0\n", b"part1\n", b"part2\n"], chunks
        # the first chunk came before the stream produced the last one (~1.2 s later)
        assert t_first < 0.35 and t_last > 1.0, (t_first, t_last)
        # keep-alive: the connection serves another request after the final chunk
        send(s, "/")
        status, _, body, _ = read_response(s)
        assert status == 200 and body == b"ok"


@test
def stream_error_mid_response_closes_the_connection():
    with Server(worker(), "--quiet") as srv:
        with srv.connect() as s:
            send(s, "/broken")
            status, headers, rest = read_head(s)
            assert status == 200 and headers.get("transfer-encoding") == "chunked"
            got = []
            while True:
                data, rest = read_chunk(s, rest)
                if data is None:
                    break
                assert data != b"", "a final chunk made the cut-off body look complete"
                got.append(data)
            assert got == [b"ok1\n", b"ok2\n"], got
        time.sleep(0.1)
        assert "upstream went away" in srv.output()
        assert request(srv, path="/")[2] == b"ok"  # still serving


@test
def endless_stream_hits_the_cpu_limit():
    with Server(worker(), "--quiet") as srv:
        with srv.connect(timeout=30) as s:
            send(s, "/forever")
            status, _, rest = read_head(s)
            assert status == 200
            total = 0
            while True:
                data, rest = read_chunk(s, rest)
                if data is None:
                    break
                assert data != b""
                total += len(data)
            assert total > 0
        time.sleep(0.1)
        assert "CPU time limit" in srv.output(), srv.output()[-2000:]
        assert request(srv, path="/")[2] == b"ok"  # a fresh isolate answers


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@test
def slow_client_holds_the_producer_back():
    with Server(worker(), "--quiet") as srv:
        request(srv, path="/")  # warm up the isolate
        before = rss_kb(srv.proc.pid)
        with srv.connect(timeout=30) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            send(s, "/huge")
            time.sleep(1.0)  # read nothing: 16 MiB would be queued without backpressure
            grown = rss_kb(srv.proc.pid) - before
            status, _, body, _ = read_response(s)
        assert status == 200 and len(body) == 256 * 65536, len(body)
        assert grown < 8 * 1024, "server grew %d KiB while the client did not read" % grown


@test
def request_body_reads_as_a_stream():
    with Server(worker(), "--quiet") as srv:
        status, _, body = request(srv, "POST", "/echo-stream", body="h\u00e9llo".encode() * 1000)
        assert status == 200, body
        assert b'"text":"' + ("h\u00e9llo" * 1000).encode() + b'"' in body, body[:200]


@test
def multipart_and_urlencoded_form_data():
    with Server(worker(), "--quiet") as srv:
        mp = (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
              b"--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"u.bin\"\r\n"
              b"Content-Type: application/octet-stream\r\n\r\n\x00\x01bin\r\n--XyZ--\r\n")
        status, _, body = request(srv, "POST", "/form", {"Content-Type": "multipart/form-data; boundary=XyZ"}, mp)
        assert status == 200, body
        assert body == b'[["a","1"],["up",{"name":"u.bin","type":"application/octet-stream","text":"\\u0000\\u0001bin"}]]', body
        status, _, body = request(srv, "POST", "/form", {"Content-Type": "application/x-www-form-urlencoded"}, b"x=1+2&y=%C3%A9")
        assert body == '[["x","1 2"],["y","\u00e9"]]'.encode(), body
        for bad in (b"--XyZ\r\nno headers", b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nnever ends",
                    b"\xff" * 100, b""):
            status, _, body = request(srv, "POST", "/form", {"Content-Type": "multipart/form-data; boundary=XyZ"}, bad)
            assert status == 400 and body.startswith(b"TypeError"), (bad, status, body)
        status, headers, body = request(srv, "GET", "/make-form")
        assert headers["content-type"].startswith("multipart/form-data; boundary="), headers
        boundary = headers["content-type"].split("boundary=")[1].encode()
        assert body.startswith(b"--" + boundary + b"\r\n") and body.endswith(b"--" + boundary + b"--\r\n"), body
        assert b'name="file"; filename="f.txt"\r\nContent-Type: text/plain\r\n\r\ncontents\r\n' in body, body


@test
def run_streams_to_stdout_and_fails_on_a_broken_stream():
    code, out, err = run_cli("run", worker(), "/slow")
    assert code == 0 and out == b"part0\npart1\npart2\n", (code, out, err)
    code, out, err = run_cli("run", worker(), "/broken")
    assert code == 1 and out == b"ok1\nok2\n", (code, out)
    assert "upstream went away" in err and "cut off" in err, err


if __name__ == "__main__":
    main()
