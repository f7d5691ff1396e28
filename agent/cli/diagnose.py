"""`errlearn ask` and `diagnose`: the model's answers, printed or as JSON."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from agent.cli import common
from agent.cli.common import console


def ask(
    question: Annotated[str, typer.Argument(help='e.g. "why did the orchestrator fail?"')],
    service: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ask why something failed; the answer cites the events and patterns it relies on."""
    if len(question.strip()) < 3:
        common.fail("the question is too short")
    services = common.services()
    try:
        services.runtime.retrieval().index_pending(10_000)
        result = services.diagnoser.ask(
            services.core.scrubber.text(question), service=service, since=common.since(since)
        )
    except typer.Exit:
        raise
    except Exception as exc:
        common.fail(f"{type(exc).__name__}: {exc}")
    finally:
        services.close()
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "status": result.status,
                    "answer": result.answer,
                    "citations": result.citations,
                    "removed_citations": result.removed_citations,
                    "model": result.model,
                }
            )
            + "\n"
        )
        return
    console.print(f"[bold]{result.status}[/]: {result.answer}")
    for cid in result.citations:
        console.print(f"  cited: {cid}")


def diagnose(
    pattern_id: Annotated[str, typer.Argument(help="a pattern id (pat_…)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Diagnose a pattern now (re-runs the model) and print the result."""
    from agent.diagnose import PatternNotFound

    services = common.services()
    try:
        services.runtime.retrieval().index_pending(10_000)
        outcome = services.diagnoser.diagnose(pattern_id, force=True)
    except PatternNotFound:
        common.fail(f"no pattern {pattern_id!r}")
    except Exception as exc:
        common.fail(f"{type(exc).__name__}: {exc}")
    finally:
        services.close()
    d = outcome.diagnosis
    if as_json:
        sys.stdout.write(d.model_dump_json(indent=2) + "\n")
        return
    console.print(f"[bold]{d.status.value}[/] (confidence {d.confidence:.2f}) — {d.summary}")
    console.print(f"root cause: {d.root_cause}")
    for step in d.solution_steps:
        console.print(f"  • {step}")
    console.print(
        f"evidence: {', '.join(d.evidence) or '-'}   model: {d.model}   prompt: {d.prompt_name} v{d.prompt_version}"
    )
