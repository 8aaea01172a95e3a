"""Shared fixtures: one local AWS (moto server over HTTP) per test session, reset per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.session
import pytest
from moto.cloudwatch.models import CloudWatchBackend

from scaler.aws import Clients, make_clients
from scaler.demo.embedded import LOCAL_CREDENTIALS, LocalAws, local_aws
from scaler.logs import configure_logging
from tests.speedups import indexed_get_metric_data, shared_model_loader

# moto's EC2 loads about 2,600 images into each region's backend on every reset: 1-4 s of CPU
# for each test that uses the local AWS. The tests launch from one image, so moto is given only
# that one. Read when moto's EC2 is first imported (by the server fixture), which is after this.
os.environ.setdefault("MOTO_AMIS_PATH", str(Path(__file__).parent / "data" / "amis.json"))


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    """Warnings and above only; tests that look at log events use capture_logs()."""
    configure_logging("warning")


@pytest.fixture(autouse=True, scope="session")
def _home_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary home for the whole session, before any module's fixtures: code given its own
    environ falls back to ~/.local, and matplotlib caches fonts under ~ (here and in the CLI
    subprocesses). `make test` writes nothing into the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(autouse=True)
def _state_outside_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default state file lives in a temporary folder: tests never write to ~/.local."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
    monkeypatch.delenv("SCALER_STATE", raising=False)
    monkeypatch.delenv("SCALER_KILL_SWITCH", raising=False)
    monkeypatch.delenv("SCALER_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True, scope="session")
def _same_answers_less_work() -> Iterator[None]:
    """moto's GetMetricData in one pass per query; service models parsed once (see speedups)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CloudWatchBackend, "get_metric_data", indexed_get_metric_data)
        patch.setattr(botocore.session, "create_loader", shared_model_loader)
        yield


@pytest.fixture(scope="session")
def aws_server() -> Iterator[LocalAws]:
    """A moto server on a free loopback port, shared by the session."""
    with local_aws() as server:
        yield server


@pytest.fixture
def aws(aws_server: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """The local AWS, emptied before the test; real credentials can never leak in."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws_server.reset()
    return aws_server


@pytest.fixture
def clients(aws: LocalAws) -> Clients:
    """Real boto3 clients pointed at the local AWS over HTTP."""
    session = boto3.Session(**LOCAL_CREDENTIALS)
    return make_clients(session, endpoint_url=aws.endpoint_url)


# The longest tests and modules (pytest --durations, 2026-11-23), handed out first: xdist gives
# tests to its workers in collection order, so a long test collected last would leave one
# worker running it alone at the end. Order changes nothing else: the tests are independent.
SLOWEST_FIRST = (
    "tests/test_simulate_cli.py",
    "tests/test_demo_serve.py",
    "tests/test_iam.py::test_each_policy_grants_exactly_what_its_modes_call",
    "tests/test_alerts_fuzz.py",
    "tests/test_catalog.py::test_fetch_all_types_skips_those_without_ebs_limits",
    "tests/test_export.py",
    "tests/test_report.py",
    "tests/test_live.py::test_demo_diagnoses_the_incident_live",
    "tests/test_simulate_policies.py",
    "tests/test_apply_e2e.py",
    "tests/test_cloudwatch.py::test_calls_are_the_minimum_for_any_number_of_groups",
    "tests/test_rails.py::test_rails_properties_over_any_sequence",
    "tests/test_speedups.py",
    "tests/test_backtest_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The SLOWEST_FIRST tests first, in that order; every other test after, as collected."""

    def rank(item: pytest.Item) -> int:
        prefixes = (i for i, prefix in enumerate(SLOWEST_FIRST) if item.nodeid.startswith(prefix))
        return next(prefixes, len(SLOWEST_FIRST))

    items.sort(key=rank)
