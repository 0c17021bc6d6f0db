"""The benchmark runs end to end with tiny sizes, so that it cannot rot (`make bench` runs the real sizes)."""

import json
import subprocess
import sys

from benchmarks.bench import SCENARIOS
from conftest import BASE_DIR


def test_every_scenario_runs_and_reports_its_figures_beside_the_bare_task(tmp_path):
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--smoke", "--json", str(output)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads(output.read_text())
    assert list(results["scenarios"]) == SCENARIOS
    scenarios = results["scenarios"]
    assert scenarios["backlog"]["ours_per_s"] > 0 and scenarios["backlog"]["bare_per_s"] > 0
    assert scenarios["latency"]["ours_ms"]["lost"] == 0 and scenarios["latency"]["bare_ms"]["p50"] > 0
    assert scenarios["isolation"]["healthy_ms"]["lost"] == 0
    assert scenarios["recovery"]["all_delivered"]
    assert scenarios["db_cut"]["unrecorded"] == 0
    assert scenarios["isolation_many"]["healthy_ms"]["lost"] == 0
    assert scenarios["kill9"]["lost"] == scenarios["kill9"]["unrecorded"] == 0 and len(scenarios["kill9"]["kills"]) == 2
    assert scenarios["ordered"]["record"]["out_of_order"] == 0 and scenarios["ordered"]["record"]["complete"]
    assert scenarios["strict"]["most_at_once"] == 1 and scenarios["strict"]["complete"]
    writes = scenarios["api_writes"]["new"]
    assert writes["webhook"]["rps"] > 0 and writes["webhook"]["errors"] == writes["no_webhook"]["errors"] == 0
    feed = scenarios["feed"]
    assert feed["read"]["events"] == feed["read"]["distinct"] == feed["events"] and feed["read"]["in_order"]
    assert feed["wake"]["lost"] == 0
    assert scenarios["embedded"]["received"] == scenarios["embedded"]["written"] == scenarios["embedded"]["records"]
    assert scenarios["embedded"]["lost"] == scenarios["embedded"]["worker_exits"] == 0
    assert scenarios["embedded"]["lock_errors"] == 0
    assert scenarios["metrics_cost"]["with_per_s"] > 0 and scenarios["metrics_cost"]["without_per_s"] > 0
    pooled = scenarios["pgbouncer"]
    assert pooled["pgbouncer_per_s"] > 0 and pooled["direct_per_s"] > 0 and pooled["server_connections_after"] > 0
    audit = scenarios["audit"]
    assert audit["rows"] >= 20_000 and audit["export"]["one_actor"]["complete"] and audit["pages"]
    month = scenarios["partitions"]["month"]
    assert month["attempts"] == 2_000 and len(month["dropped"]) == 1
    assert scenarios["partitions"]["conversion"]["attempts"] >= scenarios["partitions"]["attempts"]
    delivery_range = scenarios["partitions"]["delivery_range"]
    assert delivery_range["row_pruned"] == delivery_range["deliveries"] == 1_000 and delivery_range["dropped"]
    assert scenarios["partitions"]["conversion"]["deliveries"] > 0
    # One table, a row per figure, each with its bar.
    assert "| backlog throughput" in completed.stdout and "| make run defaults" in completed.stdout
