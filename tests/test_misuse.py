"""Misuse a user can reach, as a table: each case is one line naming what is wrong and the fix,
with the documented exit code, and never a traceback. Run as a user runs it: a child process."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler.demo.embedded import LocalAws

SCALER = str(Path(sys.executable).with_name("scaler"))


def run(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`scaler ARGS` in a child process with local credentials and no real AWS config."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SCALER_"))}
    base |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(cwd / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "no-credentials"),
        "XDG_STATE_HOME": str(cwd / "state"),
    }
    return subprocess.run(
        [SCALER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=base | (env or {}),
        cwd=cwd,
        check=False,
    )


POLICY = "groups:\n  - name: crash-processor\n    auto_scaling_group: crash-asg\n    queue: q\n"


@pytest.mark.parametrize(
    ("case", "args", "env", "code", "says"),
    [
        (
            "a profile that does not exist",
            ["advise", "--policy", "p.yaml", "--profile", "nope"],
            {},
            2,
            "--profile 'nope': no such profile",
        ),
        (
            "an endpoint that is not a URL",
            ["advise", "--policy", "p.yaml", "--endpoint-url", "notaurl"],
            {},
            2,
            "--endpoint-url 'notaurl' is not a URL",
        ),
        (
            "an endpoint in the environment that is not a URL",
            ["advise", "--policy", "p.yaml"],
            {"SCALER_ENDPOINT_URL": "localhost:5000"},
            2,
            "SCALER_ENDPOINT_URL 'localhost:5000' is not a URL",
        ),
        (
            "a policy that does not exist",
            ["run", "--policy", "missing.yaml"],
            {},
            2,
            "missing.yaml",
        ),
        (
            "a state table named without a name",
            ["run", "--policy", "p.yaml"],
            {"SCALER_STATE": "dynamodb://"},
            2,
            "names no table; use dynamodb://TABLE",
        ),
        (
            "a state path that cannot be a file",
            ["history", "--group", "crash-asg"],
            {"SCALER_STATE": "/proc/no/such/dir/state.db"},
            2,
            "cannot open state file",
        ),
        (
            "a loop interval that is not one",
            ["run", "--policy", "p.yaml", "--every", "soon"],
            {},
            2,
            "soon",
        ),
        (
            "a history limit below one",
            ["history", "--group", "g", "--limit", "0"],
            {},
            2,
            "--limit 0: must be at least 1",
        ),
    ],
)
def test_misuse_is_one_line_and_the_documented_exit_code(
    tmp_path: Path, case: str, args: list[str], env: dict[str, str], code: int, says: str
) -> None:
    """inputs: a command line and environment; expected: the exit code and the one line."""
    (tmp_path / "p.yaml").write_text(POLICY)
    done = run(args, env=env, cwd=tmp_path)
    assert done.returncode == code, (case, done.stdout, done.stderr)
    assert says in done.stderr, (case, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, case
    assert len(done.stderr.strip().splitlines()) == 1, (case, done.stderr)


@pytest.mark.parametrize("args", [["signals"], ["policy", "schema"]])
def test_output_to_a_full_disk_is_one_line_and_exit_1(tmp_path: Path, args: list[str]) -> None:
    """`scaler ... >> /var/log/scaler.log` on a full disk: the run says it could not write."""
    with open("/dev/full", "w") as full:  # every write fails: ENOSPC
        done = subprocess.run(
            [SCALER, *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=tmp_path,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == "scaler: failed: cannot write the output: No space left on device"


def test_an_unknown_log_level_is_refused_with_the_levels(tmp_path: Path) -> None:
    """argparse's refusal: usage, then the one line naming the levels; exit 2."""
    done = run(["--log-level", "verbose", "signals"], env={}, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    levels = "'debug', 'info', 'warning', 'error', 'critical'"
    assert last.endswith(f"invalid choice: 'verbose' (choose from {levels})")


def test_output_piped_to_head_exits_quietly(aws: LocalAws, tmp_path: Path) -> None:
    """`scaler policy schema | head -1`: the reader leaves early; no BrokenPipeError, exit 0."""
    done = subprocess.run(
        f"{SCALER} policy schema | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert len(done.stdout) == 10
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


class _Garbage(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers every request 200 with a body no AWS client can read."""

    def do_POST(self) -> None:
        body = b"<html><body>Welcome to the captive portal</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def garbage_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_unreadable_dynamodb_answer_fails_the_command_not_the_process(
    garbage_endpoint: str, tmp_path: Path
) -> None:
    """DynamoDB state on an endpoint that answers with an HTML page: exit 1 and a reason, no
    traceback (the unreadable answer is a failed call, not a crash)."""
    (tmp_path / "p.yaml").write_text(POLICY)
    done = run(
        ["history", "--policy", "p.yaml", "--endpoint-url", garbage_endpoint],
        env={"SCALER_STATE": "dynamodb://state"},
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("scaler: failed: Query:")
