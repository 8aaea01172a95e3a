"""The command line: `scaler COMMAND`; each command lives in its own module and registers itself."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from scaler.errors import InputError, ScalerError
from scaler.logs import configure_logging
from scaler.registry import Registry

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "Clock", "Command", "commands", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  # scaler could not do its job (an AWS failure, a group not evaluated)
EXIT_BAD_INPUT = 2  # bad input: a file, a flag, a policy; fix it and run again

#: A command: adds its arguments to a subparser and returns the function that runs it.
Command = Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]
commands: Registry[tuple[str, Command]] = Registry("command")
#: Where commands read the time: `datetime.now(UTC)`, or a fixed clock in tests.
Clock = Callable[[], datetime]


def _load_commands() -> None:
    # Imported for their registrations; listed here so the order of --help is stable.
    from scaler.cli import (  # noqa: F401
        advise,
        backtest,
        catalog_cmd,
        demo,
        enrich,
        export_cmd,
        history,
        policy_cmd,
        report_cmd,
        run,
        signals_cmd,
        simulate,
        state_cmd,
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered command."""
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="scaler",
        description="Autoscaling advisor for queue-fed worker fleets on AWS.",
    )
    parser.add_argument(
        "--log-level", default="warning", help="stderr log level (default: warning)"
    )
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add) in commands.items():
        runner = add(sub.add_parser(name, help=help_text, description=help_text))
        sub.choices[name].set_defaults(run=runner)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run the command line; returns the exit code (0 ran, 1 failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    args.clock = clock or _utc_now
    configure_logging(args.log_level, args.log_format)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except InputError as exc:
        print(f"scaler: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ScalerError as exc:
        print(f"scaler: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`scaler ... | head`): not an error, and nothing more to say.
        _silence_stdout()
        return EXIT_OK
    return code


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a real file (captured by a test): nothing to flush
