"""A local AWS (the moto server, over HTTP) for the demo and the tests: same code path as AWS."""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import boto3

from scaler.errors import InputError, ScalerError

__all__ = ["LOCAL_CREDENTIALS", "LocalAws", "local_aws", "local_session"]

# Credentials the moto server accepts; they never reach a real AWS endpoint.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def local_session() -> boto3.Session:
    """A boto3 session with the local credentials (never the machine's own)."""
    return boto3.Session(**LOCAL_CREDENTIALS)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LocalAws:
    """A running local endpoint; `reset()` empties every service."""

    endpoint_url: str

    def reset(self) -> None:
        """Forget every resource and datapoint (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        # Generous: a server that holds many resources, on a busy machine, takes a while.
        with urllib.request.urlopen(request, timeout=60):
            pass


def _answer_instance_refreshes() -> None:
    """Teach moto's server DescribeInstanceRefreshes, answered as AWS answers a group that never
    had a refresh. Without it moto sends an HTML error page, and scaler (rightly) holds every
    action on an answer it cannot read."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    if hasattr(AutoScalingResponse, "describe_instance_refreshes"):
        return

    def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
        return ActionResult({"InstanceRefreshes": []})

    AutoScalingResponse.describe_instance_refreshes = describe_instance_refreshes  # type: ignore[attr-defined]


@contextlib.contextmanager
def local_aws(port: int = 0) -> Iterator[LocalAws]:
    """Start a moto server on a loopback port (0: a free one) for the duration of the block."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ScalerError(
            "the embedded AWS needs moto[server]: install scaler with its demo extra "
            "(pip install 'scaler[demo]', or `make install`)"
        ) from exc
    # werkzeug logs every request, and a traceback for each API moto lacks, to stderr.
    logging.getLogger("werkzeug").disabled = True
    _answer_instance_refreshes()
    from scaler.demo.moto_metrics import teach_indexed_get_metric_data

    teach_indexed_get_metric_data()
    if port:
        _check_free(port)  # moto's server thread would die on a taken port, and start() hang
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalAws(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


def _check_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InputError(
                f"--port {port}: {exc.strerror or exc}; choose another port (or 0 for a free one)"
            ) from None
