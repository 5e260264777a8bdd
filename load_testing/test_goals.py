"""The goal verdicts the benchmark prints (no stack, no wrk needed)."""

from load_testing import goals
from load_testing.report import Row, compare
from load_testing.wrk import WrkResult


def _row(system: str, number: int, rps: float, p99_ms: float) -> Row:
    result = WrkResult(
        requests=int(rps * 10), duration_s=10.0, p50_ms=1.0, p90_ms=2.0, p99_ms=p99_ms,
        max_ms=p99_ms, statuses={200: int(rps * 10)},
    )  # fmt: skip
    return Row(system, number, result, {})


def _met(verdicts: list[goals.Verdict]) -> list[bool]:
    return [v.met for v in verdicts]


def test_throughput_met_overall_every_round_and_p99() -> None:
    rows = [
        _row("ref", 1, 1000, 30.0), _row("ours", 1, 1100, 25.0),
        _row("ref", 2, 1000, 28.0), _row("ours", 2, 950, 29.0),
    ]  # fmt: skip
    verdicts = goals.throughput(compare(rows, "ours", "ref"))
    assert _met(verdicts) == [True, True, True]
    assert verdicts[0].line() == "goal 1 (throughput): ours/ref req/s 1.02x (target >= 1x): met"
    assert verdicts[1].measured == "worst round 0.95x"
    # The worst p99 of each, not round by round: 29.0 (round 2) against 30.0 (round 1).
    assert verdicts[2].measured == "worst p99 29.0 ms (ours) vs 30.0 ms (ref)"


def test_throughput_one_round_below_the_floor_is_not_met() -> None:
    rows = [
        _row("ref", 1, 1000, 30.0), _row("ours", 1, 1500, 25.0),
        _row("ref", 2, 1000, 30.0), _row("ours", 2, 700, 25.0),
    ]  # fmt: skip
    verdicts = goals.throughput(compare(rows, "ours", "ref"))
    assert _met(verdicts) == [True, False, True]
    assert verdicts[1].line().endswith("worst round 0.70x (target >= 0.8x in every round): NOT MET")


def test_throughput_worse_p99_is_not_met() -> None:
    rows = [_row("ref", 1, 1000, 20.0), _row("ours", 1, 1200, 20.5)]
    assert _met(goals.throughput(compare(rows, "ours", "ref"))) == [True, True, False]


def test_throughput_without_the_reference_is_not_met() -> None:
    verdicts = goals.throughput(compare([_row("ours", 1, 1000, 1.0)], "ours", "ref"))
    assert [v.line() for v in verdicts] == [
        "goal 1 (throughput): not measured (target >= 1x): NOT MET"
    ]


def _p50(system: str, number: int, p50_ms: float) -> Row:
    result = WrkResult(
        requests=1000, duration_s=5.0, p50_ms=p50_ms, p90_ms=1.0, p99_ms=2.0, max_ms=3.0,
        statuses={200: 1000},
    )  # fmt: skip
    return Row(system, number, result, {})


def test_one_client_compares_the_median_of_the_rounds_p50s() -> None:
    rows = [
        _p50("ref", 1, 0.64), _p50("ours", 1, 0.70),
        _p50("ref", 2, 0.66), _p50("ours", 2, 0.61),
        _p50("ref", 3, 0.65), _p50("ours", 3, 0.65),
    ]  # fmt: skip
    verdict = goals.single_client(rows, "ours", "ref")
    assert verdict.line() == (
        "goal 1 (one client): c=1 p50 0.65 ms (ours) vs 0.65 ms (ref), median of 3 rounds "
        "(target no worse): met"
    )
    rows[5] = _p50("ours", 3, 0.67)
    assert not goals.single_client(rows, "ours", "ref").met
    assert not goals.single_client(rows[:1], "ours", "ref").met  # not measured


def test_batching_checks_both_ratios() -> None:
    rows = [
        _row("batched", 1, 2000, 30.0),
        _row("unbatched", 1, 1300, 45.0),
        _row("echo", 1, 2050, 31.0),
    ]
    verdicts = goals.batching(
        compare(rows, "batched", "unbatched"), compare(rows, "batched", "echo")
    )
    # 1.54x unbatched (short of 2x) with better p99; 0.98x echo with better p99.
    assert _met(verdicts) == [False, True, True, True]
    assert verdicts[0].measured == "batched/unbatched req/s 1.54x"
    assert verdicts[2].target == ">= 0.9x"


def _overload(**changes: object) -> list[goals.Verdict]:
    figures: dict[str, object] = {
        "capacity": 2000.0,
        "goodput": 1850.0,
        "probe_p99_ms": 900.0,
        "timeout_ms": 5000.0,
        "statuses": {200: 55_000, 429: 110_000, 504: 3},
        "non_json": 0,
        "rss_before_mb": 78.0,
        "rss_settled_mb": 86.0,
        "drained_s": 0.5,
    }
    figures.update(changes)
    return goals.overload(**figures)  # type: ignore[arg-type]


def test_overload_all_met() -> None:
    verdicts = _overload()
    assert _met(verdicts) == [True] * 6
    assert verdicts[0].line() == "goal 2 (overload): goodput 92% of capacity (target >= 90%): met"


def test_overload_each_bound() -> None:
    assert _met(_overload(goodput=1500.0))[0] is False
    assert _met(_overload(probe_p99_ms=5001.0))[1] is False
    undocumented = _overload(statuses={200: 10, 500: 2, 502: 1, 503: 4})
    assert undocumented[2].measured == "5xx other than 503/504: 3 {500: 2, 502: 1}"
    assert undocumented[2].met is False
    assert _met(_overload(non_json=1))[3] is False
    assert _met(_overload(rss_settled_mb=129.0))[4] is False
    assert _met(_overload(rss_settled_mb=128.0))[4] is True
    assert _met(_overload(drained_s=float("inf")))[5] is False


def test_memory_flat_over_five_minutes() -> None:
    rss = {"gateway": [80.0, 84.0, 81.6], "worker": [60.0, 60.2, 72.5]}
    verdicts = goals.memory(301.0, rss)
    assert _met(verdicts) == [True, False]
    assert (
        verdicts[0].measured == "gateway RSS +1.6 MB from the first slice to the last, over 301 s"
    )


def test_memory_too_short_a_soak_is_not_met() -> None:
    assert _met(goals.memory(60.0, {"gateway": [80.0, 80.0]})) == [False]


def test_expected_goodput_follows_the_budget_equation() -> None:
    # A refusal free of cost leaves the whole budget to served requests.
    assert goals.expected_goodput(400.0, 0.0, 3.0) == 1.0
    # s = 400 us, q = 40 us, 3x: (400 - 120) / 360.
    assert abs(goals.expected_goodput(400.0, 40.0, 3.0) - 280 / 360) < 1e-9
    # Refusals dearer than service: nothing is served.
    assert goals.expected_goodput(10.0, 20.0, 3.0) == 0.0


def test_the_refusal_ceiling_gives_the_target_exactly() -> None:
    ceiling = goals.refusal_ceiling_us(228.0, 2.8)
    assert abs(ceiling - 0.1 * 228.0 / 1.9) < 1e-9
    assert abs(goals.expected_goodput(228.0, ceiling, 2.8) - 0.9) < 1e-9
    assert goals.refusal_ceiling_us(228.0, 0.5) == 228.0  # offered less than the target


def test_grpc_against_rest_needs_as_much_throughput_and_no_worse_p99() -> None:
    rows = [_row("rest", 1, 1000, 20.0), _row("grpc", 1, 1200, 15.0)]
    verdicts = goals.grpc_vs_rest(compare(rows, "grpc", "rest"))
    assert _met(verdicts) == [True, True]
    assert verdicts[0].line() == "goal gRPC vs REST: grpc/rest req/s 1.20x (target >= 1x): met"
    slower = [_row("rest", 1, 1000, 20.0), _row("grpc", 1, 990, 25.0)]
    assert _met(goals.grpc_vs_rest(compare(slower, "grpc", "rest"))) == [False, False]


def test_grpc_not_served_is_not_measured_and_says_why() -> None:
    (verdict,) = goals.grpc_vs_rest(None, "gRPC not served (GRPC_PORT 8081)")
    assert verdict.line() == (
        "goal gRPC vs REST: not measured: gRPC not served (GRPC_PORT 8081) (target >= 1x): NOT MET"
    )


def test_big_tensors_need_four_fifths_of_the_references_bytes_per_second() -> None:
    rows = [
        _row("reference", 1, 200, 50.0), _row("REST binary", 1, 170, 60.0),
        _row("gRPC raw", 1, 150, 40.0),
    ]  # fmt: skip
    verdicts = goals.big_tensors({
        "REST binary": compare(rows, "REST binary", "reference") or "absent",
        "gRPC raw": compare(rows, "gRPC raw", "reference") or "absent",
        "REST JSON": "its one-call check failed",
    })  # fmt: skip
    assert _met(verdicts) == [True, False, False]
    assert verdicts[0].measured == "REST binary/reference bytes/s 0.85x"
    assert verdicts[1].line().endswith("bytes/s 0.75x (target >= 0.8x): NOT MET")
    assert verdicts[2].measured == "REST JSON: not measured: its one-call check failed"
