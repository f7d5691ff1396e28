"""Turn recorded data into ingest bodies, the way a service or a capture wrapper would send them.

- Loghub line: one service per system (`loghub-hdfs`), `error_type` "LogLine", message = Content.
- Defects4J trace: service `defects4j-<project>`, the exception type, its message, the whole trace.
- Our own case: its `event`, unchanged.
- Incident: one event per recorded tool output, all under one service per incident, with the
  question as `context`. The first line is the question followed by `[<tool>]`: the same shape for
  every tool of an incident, so Drain puts them in one pattern (template "<question> <*>", which
  is also what retrieval embeds) while each stays a distinct event in the model's evidence. The
  body is the output's deciding lines from `agent.capture.evidence.extract_evidence` (the extractor
  `errlearn run` uses): a service reports the error line, not a whole `kubectl describe`, and only
  the start of a message reaches the model (the evidence context shows ~120 tokens of each event).
"""

from __future__ import annotations

import re
from typing import Any

from agent.capture.evidence import extract_evidence
from evals.dataset import EvalCase
from evals.loaders import Incident, LogLine, Trace

MAX_SERVICE = 64
MAX_ERROR_TYPE = 256
INCIDENT_MESSAGE_CHARS = 4000
INCIDENT_LINES = 24
"""Deciding lines kept per tool output."""
INCIDENT_EVENTS = 8
"""Tool outputs turned into events per incident (the evidence context shows at most five)."""

_SERVICE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def service_name(text: str) -> str:
    """A valid ingest service name from any text (letters, digits, `._-`; at most 64 characters)."""
    name = _SERVICE_CHARS.sub("-", text).strip("-._")[:MAX_SERVICE].rstrip("-._")
    return name or "service"


def own_body(case: EvalCase) -> dict[str, Any]:
    return case.event.model_dump(mode="json", exclude_none=True)


def loghub_body(line: LogLine) -> dict[str, Any]:
    return {
        "service": service_name(f"loghub-{line.system.lower()}"),
        "error_type": "LogLine",
        # The API refuses an empty message; Loghub has a few empty Contents (one true group).
        "error_message": line.content or "-",
        "severity": "low",
    }


def trace_body(trace: Trace) -> dict[str, Any]:
    first = trace.text.split("\n", 1)[0].strip()
    error_type = trace.exception_type[:MAX_ERROR_TYPE] or "Exception"
    _, sep, message = first.partition(":")
    return {
        "service": service_name(f"defects4j-{trace.project.lower()}"),
        "context": trace.test_name,
        "error_type": error_type,
        "error_message": (message.strip() if sep else "") or error_type,
        "severity": "high",
        "stack_trace": trace.text,
    }


def salient_text(output: str, limit: int = INCIDENT_MESSAGE_CHARS) -> str:
    """The output's deciding lines (errlearn's evidence extractor, the one `errlearn run` uses), cut at
    `limit` characters; the first lines when the extractor finds nothing."""
    found = extract_evidence(output, max_lines=INCIDENT_LINES)
    if found.lines:
        return "\n".join(found.lines)[:limit]
    return "\n".join(line.rstrip() for line in output.splitlines() if line.strip())[:limit]


def incident_bodies(incident: Incident, service: str) -> list[dict[str, Any]]:
    """One event per non-empty tool output (at most `INCIDENT_EVENTS`); the question alone if none."""
    context = incident.question[:4000]
    # One line, bounded: Drain and the template use the first line only.
    headline = " ".join(incident.question.split())[:300] or "incident"
    bodies: list[dict[str, Any]] = []
    for tool, output in incident.tool_outputs.items():
        body = salient_text(output)
        if not body:
            continue
        tool_name = _SERVICE_CHARS.sub("_", tool)[:120] or "tool"
        bodies.append(
            {
                "service": service,
                "context": context,
                "error_type": "IncidentEvidence",
                "error_message": f"{headline} [{tool_name}]\n{body}",
                "severity": "medium",
            }
        )
        if len(bodies) >= INCIDENT_EVENTS:
            break
    if not bodies:
        bodies.append(
            {
                "service": service,
                "context": context,
                "error_type": "IncidentEvidence",
                "error_message": f"{headline} [question]\n{incident.question[:INCIDENT_MESSAGE_CHARS]}",
                "severity": "medium",
            }
        )
    return bodies
