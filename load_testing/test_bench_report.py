"""The benchmark's wrk output parsing and tables (no stack, no wrk needed)."""

import pytest

from load_testing.report import (
    Row,
    cpu_ms_per_mb,
    ratio_lines,
    table,
    tensor_ratio_lines,
    tensor_table,
)
from load_testing.wrk import WrkError, WrkResult, parse

OUTPUT = """Running 10s test @ http://127.0.0.1:8000/predict/m
  1 threads and 32 connections
BENCH_JSON {"requests": 30000, "duration_us": 10000000, "p50_us": 9800, "p90_us": 15000, \
"p99_us": 22500, "max_us": 41000, "socket_errors": 2, "timeouts": 1, "non_json": 0, \
"statuses": {"200": 29990, "429": 10}}
"""


def _result(rps: float, p99_ms: float) -> WrkResult:
    return WrkResult(
        requests=int(rps * 10), duration_s=10.0, p50_ms=1.0, p90_ms=2.0, p99_ms=p99_ms,
        max_ms=p99_ms, statuses={200: int(rps * 10)},
    )  # fmt: skip


def test_parse_reads_the_result_line() -> None:
    result = parse(OUTPUT)
    assert result.requests == 30000
    assert result.rps == pytest.approx(3000.0)
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (9.8, 15.0, 22.5)
    assert result.statuses == {200: 29990, 429: 10}
    assert result.ok == 29990
    assert result.errors == 10 + 2 + 1
    assert result.share(429) == pytest.approx(10 / 30000)


def test_parse_without_a_result_line_says_so() -> None:
    with pytest.raises(WrkError, match="no result line"):
        parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_table_has_one_line_per_row() -> None:
    rows = [
        Row("reference", 1, _result(3000, 20.0), {"gateway": 0.25, "worker": 0.19}),
        Row("conveyor", 1, _result(1500, 40.0), {"gateway": 0.5}),
    ]
    lines = table(rows).splitlines()
    assert lines[0].startswith("| system | round | req/s |")
    assert lines[2] == (
        "| reference | 1 | 3,000 | 1.00 | 2.00 | 20.0 | 0 | gateway 0.25, worker 0.19 |"
    )
    assert lines[3].startswith("| conveyor | 1 | 1,500 |")
    assert len(lines) == 4


def test_ratios_per_round_and_overall() -> None:
    rows = [
        Row("ref", 1, _result(3000, 20.0), {}),
        Row("ours", 1, _result(1500, 40.0), {}),
        Row("ref", 2, _result(1000, 30.0), {}),
        Row("ours", 2, _result(1000, 25.0), {}),
    ]
    lines = ratio_lines(rows, "ours", "ref")
    assert lines[0] == "round 1: ours/ref req/s 0.50x, p99 40.0 vs 20.0 ms"
    assert lines[1] == "round 2: ours/ref req/s 1.00x, p99 25.0 vs 30.0 ms"
    # Overall: all requests over all seconds of each system, worst p99 of each.
    assert lines[2] == "overall: ours/ref req/s 0.62x, worst p99 40.0 vs 30.0 ms"


def test_ratio_without_the_baseline_is_empty() -> None:
    assert ratio_lines([Row("ours", 1, _result(100, 1.0), {})], "ours", "ref") == []


def _sized(rps: float, requests_s: float = 10.0) -> WrkResult:
    return WrkResult(
        requests=int(rps * requests_s), duration_s=requests_s, p50_ms=3.0, p90_ms=5.0,
        p99_ms=9.0, max_ms=12.0, statuses={200: int(rps * requests_s) - 1, 500: 1}, unexpected=2,
    )  # fmt: skip


def test_tensor_table_shows_mb_per_second_and_gateway_cpu_per_mb() -> None:
    sizes = {"ref": 307_200, "grpc": 307_200, "model_a": 0}
    rows = [
        Row("ref", 1, _sized(200), {"gateway": 1.5, "worker": 0.5}),
        Row("model_a", 1, _sized(1000), {"gateway": 0.2}),
    ]
    lines = tensor_table(rows, sizes).splitlines()
    assert lines[0].startswith("| system | round | req/s | MB/s |")
    # 200 req/s x 307,200 B = 61.4 MB/s; 1.5 ms a request / 0.3072 MB = 4.88 ms per MB.
    assert (
        lines[2]
        == "| ref | 1 | 200 | 61.4 | 3.0 | 9.0 | 1 | 2 | 4.88 | gateway 1.50, worker 0.50 |"
    )
    assert lines[3] == "| model_a | 1 | 1,000 | - | 3.0 | 9.0 | 1 | 2 | - | gateway 0.20 |"


def test_cpu_per_mb_weights_rounds_by_their_requests() -> None:
    rows = [
        Row("x", 1, _sized(100), {"gateway": 1.0}),  # 1,000 requests
        Row("x", 2, _sized(300), {"gateway": 2.0}),  # 3,000 requests
    ]
    assert cpu_ms_per_mb(rows, "gateway", 1_000_000) == pytest.approx(1.75)
    assert cpu_ms_per_mb(rows, "worker", 1_000_000) is None
    assert cpu_ms_per_mb(rows, "gateway", 0) is None


def test_tensor_ratio_lines_scale_by_the_bytes_each_request_carries() -> None:
    rows = [
        Row("ref", 1, _sized(200), {"gateway": 1.0}),
        Row("ours", 1, _sized(100), {"gateway": 1.0}),
        Row("ref", 2, _sized(200), {"gateway": 1.0}),
        Row("ours", 2, _sized(300), {"gateway": 3.0}),
    ]
    same = tensor_ratio_lines(rows, "ours", "ref", {"ours": 1_000_000, "ref": 1_000_000})
    assert same == [
        "ours/ref: bytes/s 1.00x (rounds 0.50x, 1.50x), gateway CPU 2.50 vs 1.00 ms/MB, "
        "worst p99 9.0 vs 9.0 ms"
    ]
    double = tensor_ratio_lines(rows, "ours", "ref", {"ours": 2_000_000, "ref": 1_000_000})
    assert double[0].startswith("ours/ref: bytes/s 2.00x (rounds 1.00x, 3.00x), gateway CPU 1.25")
    assert tensor_ratio_lines(rows, "ours", "ref", {"ours": 1_000_000}) == []
