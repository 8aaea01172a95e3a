"""structlog to stderr, so stdout stays the command's output alone."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    # Looked up per call, not bound once: stderr may be replaced (pytest capture, redirection).
    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "warning", fmt: str = "console") -> None:
    """Send structured logs to stderr at `level`, as console text or JSON lines."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.WARNING
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
