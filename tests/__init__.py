"""Tests for sbc.  Hypothesis runs with a deterministic profile so CI is repeatable."""
from hypothesis import HealthCheck, settings

settings.register_profile(
    "sbc",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("sbc")
