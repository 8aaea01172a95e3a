"""structlog to stderr, so stdout stays the command's output alone.

Every module takes its logger from `get_logger`. structlog itself (with asyncio, which its
stdlib integration imports) is loaded only when an event passes the configured level: a
`scaler backtest` at the default level never logs, and starts a twentieth of a second sooner.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import structlog

__all__ = ["Logger", "configure_logging", "get_logger"]

#: structlog's method names and their levels (what a filtering bound logger drops below its own).
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class _Settings:
    """The configured level (None: never configured, structlog decides) and a configuration
    not yet handed to structlog."""

    threshold: int | None = None
    pending: tuple[int, str] | None = None


_settings = _Settings()


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    # Looked up per call, not bound once: stderr may be replaced (pytest capture, redirection).
    import structlog

    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "warning", fmt: str = "console") -> None:
    """Send structured logs to stderr at `level`, as console text or JSON lines."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    _settings.threshold, _settings.pending = numeric, (numeric, fmt)
    if "structlog" in sys.modules:  # already in use: reconfigure it now
        _apply()


def _apply() -> None:
    if _settings.pending is None:
        return
    import structlog

    numeric, fmt = _settings.pending
    _settings.pending = None
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _drop(*_args: Any, **_kwargs: Any) -> None:
    return None


class Logger:
    """A module's logger: an event below the configured level is dropped here; any other goes
    to structlog's logger of the same name (loaded and configured on first use)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        level = _LEVELS.get(method)
        threshold = _settings.threshold
        if level is not None and threshold is not None and level < threshold:
            return _drop
        import structlog

        _apply()
        return getattr(structlog.get_logger(self._name), method)


def get_logger(name: str) -> Logger:
    """The logger every module keeps as `log`."""
    return Logger(name)
