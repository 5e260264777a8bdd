"""The retry schedule: bounds doubling from the base, full jitter within them, about an hour in
all with the defaults."""

import random
import statistics

from api.callbacks.backoff import retry_bound, retry_delay, schedule_bounds
from api.config import Settings


def test_the_default_bounds_double_from_30_s_and_span_about_an_hour() -> None:
    settings = Settings()
    bounds = schedule_bounds(settings.callback_max_attempts, settings.callback_backoff_seconds)
    assert bounds == [30, 60, 120, 240, 480, 960, 1920]
    assert 3000 <= sum(bounds) <= 4200  # 3810 s: the last attempt within about an hour


def test_each_delay_lies_between_zero_and_its_bound_and_is_spread() -> None:
    rng = random.Random(7)
    for attempts in range(1, 8):
        bound = retry_bound(attempts, 30.0)
        delays = [retry_delay(attempts, 30.0, rng.uniform) for _ in range(2000)]
        assert all(0.0 <= d <= bound for d in delays)
        assert len(set(delays)) > 1900  # jittered, not one value
        assert abs(statistics.mean(delays) - bound / 2) < bound * 0.05  # full jitter: uniform
        assert min(delays) < bound * 0.05 and max(delays) > bound * 0.95


def test_a_small_base_makes_a_test_sized_schedule() -> None:
    assert schedule_bounds(3, 0.1) == [0.1, 0.2]
    assert schedule_bounds(1, 30.0) == []  # one attempt: never retried
    assert retry_bound(0, 0.1) == 0.1  # before any failure: the first bound
