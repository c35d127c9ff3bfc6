"""The retry schedule, expiry and delay warnings as pure functions, replayed on a fake clock."""

from __future__ import annotations

import pytest

from merpati.queue.policy import RetryPolicy, format_duration, parse_duration

T0 = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h20m", 4800), ("5d", 432000), ("2h", 7200), ("1w", 604800),
     ("0", 0), ("", 0), ("90", 90), ("1.5h", 5400), (" 10M ", 600), (45, 45)],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "h", "1h 20m", "-5m", "m5", "1h20", "five minutes", "5m5"])
def test_parse_duration_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("5m", "1h20m", "2h", "5d", "1d2h3m4s"):
        assert format_duration(parse_duration(text)) == text


def test_default_like_schedule_with_a_fake_clock() -> None:
    policy = RetryPolicy.from_strings(["5m", "10m", "20m", "40m", "1h20m", "2h"], "5d", "4h")
    times = policy.attempt_times(created=T0, failures=10)
    gaps = [round(b - a) for a, b in zip(times, times[1:])]
    assert gaps == [300, 600, 1200, 2400, 4800, 7200, 7200, 7200, 7200, 7200]


def test_last_attempt_is_at_the_lifetime_then_expiry() -> None:
    policy = RetryPolicy(schedule=(3600.0,), lifetime=3 * 3600 + 600, delay_warning=0)
    times = policy.attempt_times(created=T0, failures=100)
    assert times == [T0, T0 + 3600, T0 + 7200, T0 + 10800, T0 + 11400]
    assert policy.next_attempt(attempts=5, created=T0, now=T0 + 11400) is None
    assert policy.expired(created=T0, now=T0 + 11400)
    assert not policy.expired(created=T0, now=T0 + 11399)


def test_attempt_counts_beyond_the_schedule_repeat_the_last_interval() -> None:
    policy = RetryPolicy(schedule=(60.0, 120.0), lifetime=86400.0)
    assert policy.interval(0) == 60 and policy.interval(1) == 60 and policy.interval(2) == 120
    assert policy.interval(50) == 120
    assert policy.next_attempt(attempts=7, created=T0, now=T0 + 1000) == T0 + 1120


def test_delay_warning_once_after_the_threshold() -> None:
    policy = RetryPolicy(schedule=(300.0,), lifetime=86400.0, delay_warning=4 * 3600.0)
    assert not policy.warning_due(created=T0, now=T0 + 4 * 3600 - 1, warned=False)
    assert policy.warning_due(created=T0, now=T0 + 4 * 3600, warned=False)
    assert not policy.warning_due(created=T0, now=T0 + 5 * 3600, warned=True)
    assert not RetryPolicy(delay_warning=0).warning_due(created=T0, now=T0 + 10**6, warned=False)


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(schedule=())
    with pytest.raises(ValueError):
        RetryPolicy(schedule=(0.0,))
    with pytest.raises(ValueError):
        RetryPolicy(lifetime=0)
