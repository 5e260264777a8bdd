"""Reading h2load's summary and per-request log (no h2load needed)."""

import pytest

from load_testing.h2load import H2loadError, parse, percentile

OUTPUT = """starting benchmark...
finished in 4.00s, 805.33 req/s, 118.08MB/s
requests: 2416 total, 2416 started, 2416 done, 2416 succeeded, 0 failed, 2 errored, 1 timeout
status codes: 2415 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def _log(statuses_and_us: list[tuple[int, int]]) -> str:
    start = 1796587568757054
    return "".join(f"{start + i}\t{status}\t{us}\n" for i, (status, us) in
                   enumerate(statuses_and_us))  # fmt: skip


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0


def test_parse_takes_latency_and_statuses_from_the_log() -> None:
    answers = [(200, us) for us in range(1000, 101000, 1000)]  # 1..100 ms
    result = parse(OUTPUT, _log([(0, 5), *answers, (503, 200000)]), 10.0)
    assert result.requests == 101  # the request without a status is left out
    assert result.rps == pytest.approx(10.1)
    assert result.statuses == {200: 100, 503: 1}
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (51.0, 100.0, 200.0)
    assert (result.socket_errors, result.timeouts) == (2, 1)
    assert result.ok == 100
    assert result.errors == 1 + 2 + 1


def test_parse_ignores_lines_that_are_not_requests() -> None:
    result = parse(OUTPUT, "garbage\n\n123\tx\t5\n" + _log([(200, 3000)]), 1.0)
    assert result.statuses == {200: 1}
    assert result.p50_ms == 3.0


def test_parse_without_a_summary_says_so() -> None:
    with pytest.raises(H2loadError, match="no result line"):
        parse("connect to 127.0.0.1 port 1 failed: Connection refused\n", "", 1.0)
