"""`scaler demo --serve`: the seeded local AWS kept running, for every command of the README.

Starts the moto server (on `--port`, or a free port), seeds the incident, and writes a working
directory: a policy for the demo group (its state file beside it, PagerDuty and Slack pointed at
a local receiver), and the bundled metric-math sample alarm (examples/alarms) with its times
moved onto the seeded incident, plus its OK. Then it prints the endpoint and commands to paste
into another shell, prints each page the local receiver gets, and runs until stopped.
Called by `scaler demo --serve` (cli/demo.py).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import scaler
from scaler.alerts.safe import clean
from scaler.aws import make_clients
from scaler.demo.embedded import LOCAL_CREDENTIALS, local_aws, local_session
from scaler.demo.incident import DEMO_POLICY, DemoIncident, seed_demo_incident

__all__ = ["READY", "SAMPLE_ALARMS", "restamp", "serve"]

#: The line printed once everything is up (tests and scripts wait for it).
READY = "ready: Ctrl-C stops the local AWS"
SAMPLE_ALARMS = Path(scaler.__file__).resolve().parents[2] / "examples" / "alarms"
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def restamp(text: str, shift: timedelta) -> str:
    """Every ISO time in `text` moved by `shift` (the sample alarms onto the seeded incident)."""

    def move(match: re.Match[str]) -> str:
        when = datetime.strptime(match.group(), "%Y-%m-%dT%H:%M:%S") + shift
        return when.strftime("%Y-%m-%dT%H:%M:%S")

    return _STAMP.sub(move, text)


def serve(*, port: int, stop: threading.Event, out: TextIO) -> None:
    """Run the demo's local AWS and receiver until `stop` is set; print the commands to `out`."""
    with (
        local_aws(port) as server,
        tempfile.TemporaryDirectory(prefix="scaler-demo-") as workdir,
        _receiver(out, Path(workdir) / "received.jsonl") as receiver_url,
    ):
        server.reset()
        clients = make_clients(local_session(), endpoint_url=server.endpoint_url)
        demo = seed_demo_incident(clients, datetime.now(UTC))
        files = _write_files(Path(workdir), demo, receiver_url)
        print(_instructions(server.endpoint_url, receiver_url, demo, files), file=out, flush=True)
        stop.wait()


def _write_files(workdir: Path, demo: DemoIncident, receiver_url: str) -> dict[str, Path]:
    group = DEMO_POLICY.groups[0]
    policy = workdir / "policy.yaml"
    policy.write_text(
        "# Written by `scaler demo --serve`: the demo group on the local AWS.\n"
        "groups:\n"
        f"  - name: {group.name}\n"
        f"    auto_scaling_group: {group.asg_name}\n"
        f"    queue: {group.queue_name}\n"
        f"    min_size: {group.min_size}\n"
        f"    max_size: {group.max_size}\n"
        "state:\n"
        f"  path: {workdir / 'state.db'}\n"
        "alerts:\n"
        "  budget_seconds: 8\n"
        "  destinations:\n"
        "    - type: pagerduty\n"
        "      routing_key: {env: PAGERDUTY_ROUTING_KEY}\n"
        f"      url: {receiver_url}/v2/enqueue\n"
        "    - type: slack\n"
        "      webhook_url: {env: SLACK_WEBHOOK_URL}\n",
        encoding="utf-8",
    )
    files = {"policy": policy}
    # The samples page 9 minutes into the throttle in the trace's own time; move them with it.
    for name, sample in (
        ("alarm", "sns-metric-math.json"),
        ("alarm_ok", "sns-metric-math-ok.json"),
    ):
        source = SAMPLE_ALARMS / sample
        if source.is_file():
            target = workdir / sample
            target.write_text(restamp(source.read_text("utf-8"), demo.shift), encoding="utf-8")
            files[name] = target
    return files


def _instructions(
    endpoint: str, receiver_url: str, demo: DemoIncident, files: dict[str, Path]
) -> str:
    seeded = demo.seeded
    policy = files["policy"]
    env = {
        "SCALER_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": LOCAL_CREDENTIALS["region_name"],
        "PAGERDUTY_ROUTING_KEY": "demo-routing-key",
        "SLACK_WEBHOOK_URL": f"{receiver_url}/slack",
    }
    lines = [
        f"scaler demo --serve: a local AWS at {endpoint} (moto server) holds ASG "
        f"{seeded.asg_name}, queue {seeded.queue_name} and {seeded.datapoints:,} CloudWatch "
        f"datapoints: the crash-report fleet whose EBS burst ran out at {demo.onset:%H:%M} UTC.",
        f"A local PagerDuty and Slack at {receiver_url} print what they receive, below.",
        f"Files: {policy.parent}",
        "",
        "In another shell, paste:",
        "export " + " ".join(f"{k}={v}" for k, v in env.items()),
        f"scaler advise --policy {policy}",
        f"scaler run --policy {policy}",
        f"scaler history --policy {policy}",
    ]
    if "alarm" in files:
        lines += [
            f"scaler enrich --policy {policy} {files['alarm']}",
            f"scaler enrich --policy {policy} {files['alarm']} --send",
        ]
    if "alarm_ok" in files:
        lines.append(f"scaler enrich --policy {policy} {files['alarm_ok']} --send")
    if "alarm" not in files:
        lines.append(f"(no sample alarms: {SAMPLE_ALARMS} is not here; run from a checkout)")
    return "\n".join([*lines, "", READY])


@contextmanager
def _receiver(out: TextIO, log: Path) -> Iterator[str]:
    """A local stand-in for PagerDuty's Events API and a Slack webhook: one line per page."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 1 << 20))
            try:
                body: Any = json.loads(raw)
            except json.JSONDecodeError:
                body = {}
            pagerduty = self.path.startswith("/v2/enqueue")
            status, answer = (202, b'{"status":"success"}') if pagerduty else (200, b"ok")
            with lock:
                with log.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"path": self.path, "body": body}) + "\n")
                print(_received(pagerduty, body), file=out, flush=True)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="demo-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _received(pagerduty: bool, body: Any) -> str:
    if not isinstance(body, dict):
        return "received: (not a JSON object)"
    if pagerduty:
        payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
        head = f"pagerduty received: {body.get('event_action')} {body.get('dedup_key')}"
        return clean(f"{head}: {payload.get('summary', '')}" if payload else head, 400)
    return clean(f"slack received: {body.get('text', '')}", 400)
