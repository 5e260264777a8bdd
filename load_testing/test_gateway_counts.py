"""Reading the gateway's request counts by outcome from Prometheus' text (no gateway needed)."""

from load_testing.gateway_counts import delta, outcomes

EXPOSITION = """# HELP conveyor_requests_total HTTP requests answered by the gateway.
# TYPE conveyor_requests_total counter
conveyor_requests_total{model="m",version="1",endpoint="v2_infer",outcome="ok"} 120.0
conveyor_requests_total{endpoint="grpc_infer",model="m",outcome="ok",version="1"} 30.0
conveyor_requests_total{model="m",version="2",endpoint="v2_infer",outcome="client_error"} 2.0
conveyor_requests_total{model="other",version="1",endpoint="v2_infer",outcome="error"} 5.0
conveyor_requests_created{model="m",version="1",endpoint="v2_infer",outcome="ok"} 1.7e9
conveyor_request_duration_seconds_count{model="m",version="1",endpoint="v2_infer"} 122.0
"""


def test_outcomes_sum_one_models_counts_over_endpoints_and_versions() -> None:
    assert outcomes(EXPOSITION, "m") == {"ok": 150.0, "client_error": 2.0}
    assert outcomes(EXPOSITION, "other") == {"error": 5.0}
    assert outcomes(EXPOSITION, "absent") == {}


def test_delta_keeps_what_grew() -> None:
    before = {"ok": 150.0, "client_error": 2.0}
    after = {"ok": 400.0, "client_error": 2.0, "error": 1.0}
    assert delta(before, after) == {"error": 1.0, "ok": 250.0}
    assert delta(after, after) == {}
