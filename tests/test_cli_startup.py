"""A command line loads only the command it names: a backtest starts without boto3 or YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scaler.cli import _HOMES, _named_command, build_parser, commands

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["backtest", "trace.csv"], "backtest"),
        (["--log-level", "debug", "backtest", "x"], "backtest"),
        (["--log-level=debug", "run", "--apply"], "run"),
        (["--log-format", "json", "--log-level", "info", "advise"], "advise"),
        (["-h"], None),  # top-level help lists every command
        ([], None),
        (["bogus"], None),  # an unknown word: every command loads, argparse lists them
        (["--log-level", "backtest"], None),  # "backtest" is the option's value here
    ],
)
def test_the_command_a_line_names(argv: list[str], expected: str | None) -> None:
    assert _named_command(argv) == expected


def test_every_registered_command_is_listed_where_the_line_finds_it() -> None:
    """A command module that registers a name the table lacks would never load by name."""
    build_parser()  # loads every command
    assert commands.names() == sorted(_HOMES)


def test_a_backtest_starts_without_the_apply_path_or_yaml(tmp_path: Path) -> None:
    """`scaler backtest` runs end to end in a fresh interpreter; boto3, PyYAML and (nothing
    being logged at the default level) structlog never load."""
    trace = ROOT / "src" / "scaler" / "data" / "incident-m5xlarge.csv"
    script = (
        "import sys\n"
        "from scaler.cli import main\n"
        f"code = main(['backtest', {str(trace)!r}, '--format', 'json'])\n"
        "names = ('boto3', 'botocore', 'yaml', 'structlog')\n"
        "loaded = sorted(m for m in names if m in sys.modules)\n"
        "print(code, loaded, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stderr.strip().splitlines()[-1] == "0 []"
    assert '"findings"' in done.stdout
