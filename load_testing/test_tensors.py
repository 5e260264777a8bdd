"""The tensors scenario's tally of gRPC runs against the gateway's counts (no stack needed)."""

from load_testing.tensors import Tally


def test_calls_cut_off_at_the_end_of_a_run_are_explained_and_more_are_not() -> None:
    tally = Tally("gRPC raw", "m")
    # 32 connections: up to 32 calls a run may be cut off (the gateway counts them cancelled).
    assert tally.add(1000, {"ok": 1040.0, "client_error": 32.0}, 32) == 0
    assert tally.add(900, {"ok": 950.0, "client_error": 30.0, "error": 5.0}, 32) == 3
    assert (tally.answered, tally.counted_ok, tally.counted_other, tally.unexplained) == (
        1900, 1990, 67, 3,
    )  # fmt: skip
    assert tally.line() == (
        "gRPC raw: h2load logged 1,900 HTTP 200s; the gateway counted 1,990 good calls of m "
        "(warm-ups too) and 67 others, 3 of them beyond the calls h2load cuts off when it stops "
        "(one per connection a run)"
    )


def test_fewer_good_calls_than_answers_says_some_went_unchecked() -> None:
    tally = Tally("model_a gRPC", "a")
    tally.add(500, {}, 32)
    assert tally.line().endswith("fewer good calls than answers: the uncounted ones are unchecked")
