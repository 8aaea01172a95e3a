"""Error types: permanent errors name what is wrong and where; retryable ones may pass."""

from __future__ import annotations

__all__ = [
    "AwsCallError",
    "InputError",
    "PolicyError",
    "ReplayError",
    "RetryableAwsError",
    "ScalerError",
]


class ScalerError(Exception):
    """Base of every error scaler raises on purpose."""


class InputError(ScalerError):
    """Bad input from a user: a file, a flag, an alarm. Exit code 2; retrying will not help."""


class ReplayError(InputError):
    """A replay file that cannot be read; the message names file, line and problem."""


class PolicyError(InputError):
    """A policy that does not validate; the message names file, field and valid choices."""


class AwsCallError(ScalerError):
    """An AWS call failed permanently (access denied, not found, bad request)."""


class RetryableAwsError(AwsCallError):
    """An AWS call failed in a way worth retrying (throttling, 5xx, timeouts)."""
