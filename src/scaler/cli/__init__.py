"""The command line: `scaler COMMAND`; each command lives in its own module and registers itself."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from scaler.errors import InputError, ScalerError
from scaler.heap import leave_the_heap_to_exit
from scaler.logs import configure_logging
from scaler.registry import Registry

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "Clock",
    "Command",
    "commands",
    "console_main",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1  # scaler could not do its job (an AWS failure, a group not evaluated)
EXIT_BAD_INPUT = 2  # bad input: a file, a flag, a policy; fix it and run again

#: A command: adds its arguments to a subparser and returns the function that runs it.
Command = Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]
commands: Registry[tuple[str, Command]] = Registry("command")
#: Where commands read the time: `datetime.now(UTC)`, or a fixed clock in tests.
Clock = Callable[[], datetime]


#: Command name -> the module that registers it; in this order in --help.
_HOMES = {
    "advise": "advise",
    "backtest": "backtest",
    "catalog": "catalog_cmd",
    "demo": "demo",
    "enrich": "enrich",
    "export": "export_cmd",
    "history": "history",
    "policy": "policy_cmd",
    "report": "report_cmd",
    "run": "run",
    "signals": "signals_cmd",
    "simulate": "simulate",
    "state": "state_cmd",
}
#: Errors of writing the output (disk full, quota, file too large, I/O): one line, exit 1.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
#: Top-level options that take a value (the command is the first word that is not one).
_VALUED_OPTIONS = ("--log-level", "--log-format")


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names, if it names a known one (else None: every command loads)."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in _HOMES else None
    return None


def _load_commands(only: str | None = None) -> None:
    # Imported for their registrations. A command line that names one loads only that one: a
    # backtest need not import boto3 and the apply path (a third of its run time).
    for name in [only] if only else list(_HOMES):
        importlib.import_module(f"scaler.cli.{_HOMES[name]}")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`'s command, or with every registered command when argv is None."""
    _load_commands(_named_command(argv) if argv is not None else None)
    parser = argparse.ArgumentParser(
        prog="scaler",
        description="Autoscaling advisor for queue-fed worker fleets on AWS.",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        type=str.lower,
        choices=["debug", "info", "warning", "error", "critical"],
        help="stderr log level (default: warning)",
    )
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _HOMES:
        if name in commands:
            help_text, add = commands.get(name)
            runner = add(sub.add_parser(name, help=help_text, description=help_text))
            sub.choices[name].set_defaults(run=runner)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run the command line; returns the exit code (0 ran, 1 failed, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        # Output to a full disk (cron's `>> /var/log/scaler.log`): the run could not report.
        print(f"scaler: failed: cannot write the output: {exc.strerror}", file=sys.stderr)
        _silence_stdout()
        return EXIT_FAILED
    return code


def console_main() -> int:
    """The `scaler` executable (and `python -m scaler`): `main` on the process's arguments, in
    a process that ends when it returns."""
    code = main()
    leave_the_heap_to_exit()
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
