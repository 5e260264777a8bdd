"""The tracing scenario's stacks and report (no stack, no wrk needed)."""

import pytest

from load_testing.report import Row
from load_testing.tracing_cost import (
    NOT_SAMPLING,
    SAMPLING,
    UNSET,
    cpu_per_request,
    modes,
    report_lines,
)
from load_testing.wrk import WrkResult


def _row(system: str, rps: float, cpu: dict[str, float], number: int = 1) -> Row:
    result = WrkResult(
        requests=int(rps * 10), duration_s=10.0, p50_ms=1.0, p90_ms=2.0, p99_ms=5.0,
        max_ms=9.0, statuses={200: int(rps * 10)},
    )  # fmt: skip
    return Row(system, number, result, cpu)


def test_the_stacks_differ_only_in_their_otel_variables() -> None:
    stacks = modes("http://127.0.0.1:4318")
    assert stacks[UNSET] == {}
    assert stacks[NOT_SAMPLING]["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert stacks[NOT_SAMPLING]["OTEL_TRACES_SAMPLER_ARG"] == "0"
    assert stacks[SAMPLING]["OTEL_TRACES_SAMPLER"] == "always_on"
    assert {stacks[s]["OTEL_EXPORTER_OTLP_ENDPOINT"] for s in (NOT_SAMPLING, SAMPLING)} == {
        "http://127.0.0.1:4318"
    }


def test_the_report_prints_ratios_cpu_and_both_goals() -> None:
    rows = [
        _row(UNSET, 1000.0, {"gateway": 0.4, "worker": 0.2}),
        _row(NOT_SAMPLING, 980.0, {"gateway": 0.41, "worker": 0.2}),
        _row(SAMPLING, 800.0, {"gateway": 0.6, "worker": 0.3}),
    ]
    assert cpu_per_request(rows, UNSET) == pytest.approx(0.6)
    lines, verdicts = report_lines(rows)
    assert [v.met for v in verdicts] == [True, False]  # 0.98x >= 0.97x; 0.80x < 0.85x
    text = "\n".join(lines)
    assert "sampling: 0.90 CPU ms/request (1.50x the unset stack's)" in text
    assert f"overall: {NOT_SAMPLING}/{UNSET} req/s 0.98x" in text
    assert f"overall: {SAMPLING}/{UNSET} req/s 0.80x" in text
    assert "goal tracing sampling: 0.80x the unset req/s" in text and "NOT MET" in text


def test_a_stack_that_did_not_run_fails_its_goal() -> None:
    _, verdicts = report_lines([_row(UNSET, 1000.0, {"gateway": 0.4})])
    assert not any(v.met for v in verdicts)
    assert all(v.measured == "not measured" for v in verdicts)
