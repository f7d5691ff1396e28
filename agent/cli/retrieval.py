"""`errlearn reindex`, `similar` and `knowledge import`: the vector collections and what they find."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agent.cli import common
from agent.cli.common import console

knowledge_app = typer.Typer(help="Runbooks and notes that diagnoses draw on.", no_args_is_help=True)


def reindex() -> None:
    """Rebuild the vector collections (patterns and knowledge) from the database."""
    from rich.progress import Progress

    services = common.services()
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("indexing patterns", total=None)
            n, k = services.runtime.retrieval().reindex(
                lambda done, total: progress.update(task, completed=done, total=total)
            )
        console.print(f"re-indexed {n} patterns and {k} knowledge entries")
    finally:
        services.close()


def similar(
    pattern_id: Annotated[str | None, typer.Argument(help="a pattern id (pat_…)")] = None,
    text: Annotated[str | None, typer.Option(help="free text instead of a pattern")] = None,
    k: Annotated[int, typer.Option(min=1, max=50)] = 5,
    service: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Show the most similar past patterns and knowledge entries."""
    from agent.retrieval.service import SearchFilters

    if bool(pattern_id) == bool(text):
        common.fail("give a PATTERN_ID or --text (one of them)")
    services = common.services()
    try:
        retrieval = services.runtime.retrieval()
        retrieval.index_pending(10_000)
        filters = SearchFilters(service=service)
        if pattern_id:
            pattern = services.core.pattern(pattern_id)
            if pattern is None:
                common.fail(f"no pattern {pattern_id!r}")
            hits = retrieval.similar_to_pattern(pattern, k=k, filters=filters)
        else:
            hits = retrieval.search(services.core.scrubber.text(text or ""), k=k, filters=filters)
        table = Table(title="similar")
        for col in ("score", "kind", "id", "title", "why"):
            table.add_column(col)
        for h in hits:
            table.add_row(f"{h.score:.3f}", h.kind, h.id, h.title[:100], h.why.summary() if h.why else "")
        console.print(table)
    finally:
        services.close()


@knowledge_app.command("import")
def knowledge_import(path: Annotated[str, typer.Argument(help="a Markdown file or a folder of them")]) -> None:
    """Import Markdown runbooks / ERROR-XXX guide files into the knowledge base."""
    from pathlib import Path

    from agent.retrieval.knowledge import load_path

    p = Path(path)
    if not p.exists():
        common.fail(f"{path} does not exist")
    try:
        entries = load_path(p)
    except ValueError as exc:
        common.fail(str(exc))
    services = common.services()
    try:
        new, updated = services.runtime.retrieval().import_knowledge(entries, services.runtime.clock())
        console.print(f"{len(entries)} entries read from {path}: {new} new, {updated} updated")
    finally:
        services.close()
