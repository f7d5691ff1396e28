"""The evidence extractor: the deciding lines of long logs and tool outputs, shared by `errlearn run` and the evals."""

from __future__ import annotations

import pytest

from agent.capture.evidence import command_errors, extract_evidence, has_failure_signal
from evals.loaders import Incident
from evals.suites.events import incident_bodies

DESCRIBE = """Name:             giant-narwhal-6958c5bdd8-69gtn
Namespace:        app-02
Containers:
  main:
    Image:         busybox:1.35
    State:          Waiting
      Reason:       CrashLoopBackOff
    Last State:     Terminated
      Reason:       OOMKilled
      Exit Code:    137
    Ready:          False
    Restart Count:  16
Tolerations:                 node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
Events:
  Type     Reason     Age                   From     Message
  ----     ------     ----                  ----     -------
  Normal   Pulled     3m (x16 over 58m)     kubelet  Container image "busybox:1.35" already present on machine
  Warning  BackOff    3m19s (x256 over 58m) kubelet  Back-off restarting failed container main
"""


def _noise(n: int) -> list[str]:
    return [
        f"2025-06-12T08:{i // 60 % 60:02d}:{i % 60:02d}Z INFO request handled path=/api/items/{i} status=200"
        for i in range(n)
    ]


def test_the_deciding_line_is_found_in_the_middle_of_a_long_log() -> None:
    chain = [
        'Exception in thread "main" org.example.ReportFailed: report 42 failed',
        "\tat org.example.Report.run(Report.java:88)",
        "Caused by: org.example.StoreError: could not load rows",
        "\tat org.example.Store.load(Store.java:12)",
        "Caused by: java.net.ConnectException: Connection refused (db.internal:5432)",
    ]
    log = "\n".join(_noise(5000) + chain + _noise(5000))
    found = extract_evidence(log)
    assert found.headline == "Caused by: java.net.ConnectException: Connection refused (db.internal:5432)"
    assert all(line in found.lines for line in (chain[0], chain[2], chain[4]))
    assert not any("request handled" in line for line in found.lines)
    # The first N tokens of that log (what a naive cut shows) hold none of it.
    assert "Caused by" not in log[:4000]


def test_kubectl_describe_keeps_reason_exit_code_and_warning_events() -> None:
    found = extract_evidence(DESCRIBE)
    kept = "\n".join(found.lines)
    for wanted in (
        "Reason:       OOMKilled",
        "Exit Code:    137",
        "Reason:       CrashLoopBackOff",
        "Warning  BackOff",
    ):
        assert wanted in kept
    assert "Tolerations" not in kept and "already present on machine" not in kept
    assert found.exit_code == 137


def test_errlearn_run_and_the_incident_loader_share_the_extractor() -> None:
    output = "\n".join(
        [
            *_noise(300),
            "kubectl rollout status deploy/api",
            DESCRIBE,
            "error: deployment exceeded its progress deadline",
        ]
    )
    reported = command_errors(output)
    assert any("OOMKilled" in line for line in reported.lines)
    incident = Incident(
        id="case",
        question="What is wrong with the pod?",
        tool_outputs={"describe": output},
        expected_output=[],
        tags=[],
        no_issue=False,
    )
    body = incident_bodies(incident, "incident-001")[0]["error_message"]
    assert "Reason:       OOMKilled" in body and "request handled" not in body


@pytest.mark.parametrize(
    ("text", "failing"),
    [
        ("event-store v0.14.2 listening on 0.0.0.0:8080 (workers=4)", False),
        ("applied 0 migrations (database schema is up to date)", False),
        ('{"error": null, "status": "ok"}', False),
        ('asyncpg.exceptions.UndefinedColumnError column "x" does not exist', True),
        ("Warning  FailedScheduling  0/1 nodes are available", True),
        ("process exited with code 2", True),
    ],
)
def test_failure_signal(text: str, failing: bool) -> None:
    assert has_failure_signal(text) is failing
