"""`atoll bench` end to end, shrunk for tests: `--quick --tiers js` with
ATOLL_BENCH_SAMPLES=5 starts its own `atoll serve`, measures, prints the
table, and writes CSV, JSON and (with gnuplot) the charts, which parse."""
import csv
import json
import os
import re
import shutil
import tempfile

from harness import main, run_cli, tempdir, test

TMP = tempdir("atoll-bench-e2e-")


@test
def bench_quick_js_writes_table_csv_json_charts():
    # A quote and a space in the output path: the bench runs shell commands
    # on it and writes it into commands meant to be rerun.
    out = os.path.join(TMP, "o'ut dir")
    os.environ["ATOLL_BENCH_SAMPLES"] = "5"
    try:
        code, stdout, err = run_cli("bench", "--quick", "--tiers", "js", "--out", out, timeout=240)
    finally:
        del os.environ["ATOLL_BENCH_SAMPLES"]
    text = stdout.decode()
    assert code == 0, (code, err[-3000:], text[-2000:])
    assert "could not" not in err, err[-2000:]
    # Progress on a pipe: plain numbered lines, no terminal escape codes.
    assert re.search(r"^\[1/3\] atoll js", err, re.M), err[-2000:]
    assert "\033" not in err, repr(err[-500:])
    # The serve command written down runs after the bench is gone: its
    # config (kept under tenants/) names paths that exist relative to it.
    kept = os.path.join(out, "tenants", "js", "atoll.jsonc")
    assert "serve --config '%s'" % kept.replace("'", "'\\''") in text, text[-3000:]
    assert "atoll bench --quick --tiers js --out '%s'" % out.replace("'", "'\\''") in text, text[-3000:]
    with open(kept) as f:
        jsonc = "".join(l for l in f if not l.lstrip().startswith("//"))
    cfg = json.loads(re.sub(r",(\s*[\]}])", r"\1", jsonc))  # JSONC's trailing commas
    assert not cfg["state_dir"].startswith("/tmp/atoll-bench-"), cfg["state_dir"]
    for w in cfg["workers"]:
        assert os.path.exists(os.path.join(os.path.dirname(kept), w["main"])), w
    for want in ("cores, load", "cold p50", "isolation boundary", "serve --config"):
        assert want in text, (want, text)
    for row in (r"^atoll\s+js\s+hello\s+\d", r"^atoll\s+js\s+compute\s+\d"):
        assert re.search(row, text, re.M), (row, text)
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    metrics = {(r["service"], r["metric"]) for r in rows}
    for want in (("hello", "cold_start"), ("hello", "warm_latency"), ("hello", "throughput"),
                 ("hello", "memory_per_instance"), ("compute", "cold_start")):
        assert want in metrics, (want, metrics)
    cold = next(r for r in rows if r["service"] == "hello" and r["metric"] == "cold_start")
    assert int(cold["n"]) == 5 and 0 < float(cold["p50"]) < 1000, cold
    with open(os.path.join(out, "results.json")) as f:
        doc = json.load(f)
    assert doc["cores"] >= 1 and len(doc["load"]) == 3
    assert any(r["runtime"] == "atoll" and r["cold_start_ms"]["n"] == 5 for r in doc["results"])
    assert doc["commands"] and "js" in doc["isolation_boundary"]
    assert os.path.exists(os.path.join(out, "table.txt"))
    if shutil.which("gnuplot"):
        for name in ("cold_start.png", "memory.png", "cold_start.svg", "memory.svg"):
            assert os.path.getsize(os.path.join(out, name)) > 1000, name


@test
def bench_rejects_bad_arguments_before_measuring():
    """Bad arguments fail at once with a reason, not after minutes of
    measuring (or by measuring with a default the user did not ask for)."""
    afile = os.path.join(TMP, "a-file")
    with open(afile, "w") as f:
        f.write("x")
    cases = [
        (("--tiers", "js,gpu"), 2, "unknown tier 'gpu'"),
        (("--tiers", ","), 2, "names no tier"),
        (("--samples", "abc"), 2, "not a sample count"),
        (("--samples", "-5"), 2, "not a sample count"),
        (("--out", afile), 1, "not a directory"),
        (("--out", os.path.join(afile, "sub")), 1, "cannot create the directory"),
        (("--frobnicate",), 2, "usage: atoll bench"),
        (("stray",), 2, "unexpected argument 'stray'"),
    ]
    for args, want_code, want in cases:
        code, _, err = run_cli("bench", "--no-progress", *args, timeout=20)
        assert code == want_code and want in err, (args, code, err[-1000:])
    with open(afile) as f:
        assert f.read() == "x"
    code, _, err = run_cli("bench", "--no-progress", "--tiers", "js", env=dict(os.environ, ATOLL_BENCH_SAMPLES="many"),
                           timeout=20)
    assert code == 2 and "ATOLL_BENCH_SAMPLES" in err, (code, err[-1000:])


if __name__ == "__main__":
    main()
