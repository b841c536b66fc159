"""Start-up settings (`Options`) and the misbehaviour that can be switched at run time (`Faults`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ApiError


@dataclass
class Faults:
    """Injected misbehaviour, switchable at run time. Applies to /v1 requests only."""

    latency_ms: float = 0.0  # added to every /v1 call
    fault_rate: float = 0.0  # share of calls answered with `fault_status`
    fault_status: int = 503
    rate_limit_rate: float = 0.0  # share answered 429 with Retry-After
    retry_after: float = 1.0  # seconds, in the Retry-After header and the body
    drop_rate: float = 0.0  # share whose connection is closed without an answer
    slow_rate: float = 0.0  # share delayed by an extra `slow_ms` (client timeouts)
    slow_ms: float = 0.0

    RATES = ("fault_rate", "rate_limit_rate", "drop_rate", "slow_rate")

    def updated(self, changes: dict) -> Faults:
        """A copy with `changes` applied; ApiError(400) on an unknown key or a bad value."""
        known = {f.name for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ApiError(400, {"error": f"unknown fault setting {key!r}"})
            try:
                number = int(value) if key == "fault_status" else float(value)
            except (TypeError, ValueError):
                raise ApiError(400, {"error": f"{key} must be a number"}) from None
            if isinstance(value, bool) or number < 0:
                raise ApiError(400, {"error": f"{key} must be a non-negative number"})
            if key in self.RATES and number > 1:
                raise ApiError(400, {"error": f"{key} is a share between 0 and 1"})
            if key == "fault_status" and not 500 <= number <= 599:
                raise ApiError(400, {"error": "fault_status must be a 5xx status"})
            clean[key] = number
        return replace(self, **clean)


@dataclass(frozen=True)
class Options:
    """Start-up settings. Names match the command-line flags."""

    idle_seconds: float = 30.0  # running -> warm after this long without activity
    cold_seconds: float = 300.0  # warm -> cold after this much longer
    exec_seconds: float = 2.0  # how long a simulated heartbeat turn takes
    setup_seconds: float = 0.5  # how long a simulated set-up script takes
    token: str | None = None  # when set, the only bearer token accepted
    organization: str = "emulator"
    # The org's caps (sprites-api.md, "Running and warm caps"): a wake past `running_limit`
    # answers 429 concurrent_sprite_limit_exceeded. Large here so tests that do not care never
    # meet it; the command line defaults to a small plan's 10.
    running_limit: int = 10_000
    warm_limit: int = 10_000
    seed: int | None = None  # makes injected faults reproducible
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_kwargs(cls, **kwargs) -> Options:
        """Accept the flat keyword style of `start_emulator(latency_ms=50, idle_seconds=1)`."""
        fault_names = {f.name for f in fields(Faults)}
        fault_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fault_names}
        unknown = set(kwargs) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown emulator option(s): {', '.join(sorted(unknown))}")
        for cap in ("running_limit", "warm_limit"):
            if cap in kwargs and (isinstance(kwargs[cap], bool) or not isinstance(kwargs[cap], int) or kwargs[cap] < 1):
                raise ValueError(f"{cap} must be a whole number ≥ 1")
        faults = kwargs.pop("faults", None) or Faults()
        try:
            faults = faults.updated(fault_kwargs)
        except ApiError as exc:
            raise ValueError(exc.body["error"]) from None
        return cls(faults=faults, **kwargs)
