"""The command line: `scaler COMMAND`; each command lives in its own module and registers itself."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from scaler.errors import InputError, ScalerError
from scaler.logs import configure_logging
from scaler.registry import Registry

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "Command", "commands", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  # scaler could not do its job (an AWS failure, a group not evaluated)
EXIT_BAD_INPUT = 2  # bad input: a file, a flag, a policy; fix it and run again

#: A command: adds its arguments to a subparser and returns the function that runs it.
Command = Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]
commands: Registry[tuple[str, Command]] = Registry("command")


def _load_commands() -> None:
    # Imported for their registrations; listed here so the order of --help is stable.
    from scaler.cli import advise, backtest, catalog_cmd, demo, enrich, policy_cmd, run  # noqa: F401

    # isort: off
    from scaler.cli import export_cmd, report_cmd, signals_cmd  # noqa: F401  (replay)
    # isort: on


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ran, 1 failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        code: int = args.run(args)
    except InputError as exc:
        print(f"scaler: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ScalerError as exc:
        print(f"scaler: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code
