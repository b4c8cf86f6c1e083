"""`atoll bench` end to end, shrunk for tests: `--quick --tiers js` with
ATOLL_BENCH_SAMPLES=5 starts its own `atoll serve`, measures, prints the
table, and writes CSV, JSON and (with gnuplot) the charts, which parse."""
import csv
import json
import os
import re
import shutil
import tempfile

from harness import main, run_cli, test

TMP = tempfile.mkdtemp(prefix="atoll-bench-e2e-")


@test
def bench_quick_js_writes_table_csv_json_charts():
    out = os.path.join(TMP, "out")
    os.environ["ATOLL_BENCH_SAMPLES"] = "5"
    try:
        code, stdout, err = run_cli("bench", "--quick", "--tiers", "js", "--out", out, "--no-progress", timeout=240)
    finally:
        del os.environ["ATOLL_BENCH_SAMPLES"]
    text = stdout.decode()
    assert code == 0, (code, err[-3000:], text[-2000:])
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


if __name__ == "__main__":
    main()
