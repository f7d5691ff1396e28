"""The eval report: one JSON document with every metric and per-case results, and rich tables of it.

Shape (version 1):

    {"version": 1, "suite": "all", "data": [...], "started_at": ..., "seconds": ..., "config": {...},
     "metrics": {<flat: each suite's metrics, plus cases and seconds>},
     "suites": {"grouping": {"metrics": {...}, "by_kind": {"loghub": {...}},
                             "by_source": {"loghub/HDFS": {...}}, "notes": [...], "seconds": ...}, ...},
     "cases": [{"suite": ..., "source": ..., "id": ..., ...}, ...]}

A suite's metrics are the mean over the data kinds it ran on (counts are summed); a data kind's
metrics are the mean over its sources (Loghub systems, Defects4J projects) or, for our own cases,
incidents and runbooks, computed over all their cases.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from evals.suites.base import Metric, SuiteResult

REPORT_VERSION = 1
# Columns of the summary tables, per suite, in display order (others stay in the JSON only).
COLUMNS: dict[str, tuple[str, ...]] = {
    "grouping": (
        "cases",
        "true_groups",
        "patterns",
        "grouping_accuracy",
        "published_drain_ga",
        "grouping_f1",
        "pairwise_precision",
        "pairwise_recall",
        "pairwise_f1",
    ),
    "retrieval": ("cases", "recall_at_1", "recall_at_5", "mrr", "macro_recall_at_1", "macro_recall_at_5", "macro_mrr"),
    "diagnosis": (
        "cases",
        "schema_valid_rate",
        "citation_valid_rate",
        "no_issue_inconclusive_rate",
        "useful_rate",
        "confident_wrong_rate",
        "bullet_recall",
        "judge_bullet_recall",
        "latency_ms_p50",
        "latency_ms_mean",
        "output_tokens_mean",
    ),
    "safety": (
        "cases",
        "planted_secrets",
        "secrets_leaked",
        "leaked_in_store",
        "leaked_in_embeddings",
        "leaked_in_sinks",
        "leaked_in_prompts",
        "leaked_in_api",
        "leaked_in_logs",
        "unsafe_executions",
    ),
}
HEADERS = {
    "grouping_accuracy": "GA", "published_drain_ga": "Drain GA (pub.)", "grouping_f1": "FGA",
    "pairwise_precision": "pair P", "pairwise_recall": "pair R", "pairwise_f1": "pair F1", "true_groups": "groups",
    "recall_at_1": "R@1", "recall_at_5": "R@5", "mrr": "MRR",
    "macro_recall_at_1": "macro R@1", "macro_recall_at_5": "macro R@5", "macro_mrr": "macro MRR", "schema_valid_rate": "schema ok",
    "citation_valid_rate": "citations ok", "removed_citations": "removed cit.",
    "no_issue_inconclusive_rate": "no-issue → inconcl.", "issue_inconclusive_rate": "issue → inconcl.",
    "bullet_recall": "bullets", "judge_bullet_recall": "bullets (judge)", "latency_ms_mean": "ms mean",
    "latency_ms_p50": "ms p50", "useful_rate": "useful", "confident_wrong_rate": "conf. wrong",
    "input_tokens_mean": "tok in", "output_tokens_mean": "tok out", "planted_secrets": "secrets",
    "secrets_leaked": "leaked", "leaked_in_store": "store", "leaked_in_embeddings": "embed.",
    "leaked_in_sinks": "sinks", "leaked_in_prompts": "prompts", "leaked_in_api": "api", "leaked_in_logs": "logs",
    "unsafe_executions": "unsafe exec.",
}  # fmt: skip


def build_report(
    *,
    suite: str,
    paths: Sequence[Path],
    results: Sequence[SuiteResult],
    started_at: dt.datetime,
    seconds: float,
    config: dict[str, Any],
) -> dict[str, Any]:
    metrics: dict[str, Metric] = {}
    for result in results:
        metrics.update({k: v for k, v in result.metrics.items() if k not in ("cases", "seconds")})
    metrics["cases"] = sum(len(r.cases) for r in results)
    metrics["seconds"] = round(seconds, 2)
    return {
        "version": REPORT_VERSION,
        "suite": suite,
        "data": [str(p) for p in paths],
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "config": config,
        "metrics": metrics,
        "suites": {
            r.name: {
                "metrics": r.metrics,
                "by_kind": r.by_kind,
                "by_source": r.by_source,
                "notes": r.notes,
                "seconds": r.seconds,
                "cases": len(r.cases),
            }
            for r in results
        },
        "cases": [case for r in results for case in r.cases],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def _cell(value: Metric | str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def suite_table(name: str, section: dict[str, Any]) -> Table:
    """One row per source and data kind, then the suite's overall row."""
    columns = [c for c in COLUMNS.get(name, ()) if _present(c, section)]
    table = Table(title=f"{name}  ({section['seconds']:.1f} s)", title_justify="left")
    table.add_column("source", style="bold", no_wrap=True)
    for column in columns:
        table.add_column(HEADERS.get(column, column), justify="right")
    rows: list[tuple[str, dict[str, Any], str | None]] = []
    kinds = section["by_kind"]
    for kind, values in kinds.items():
        for source, measured in section["by_source"].items():
            if source.startswith(f"{kind}/"):
                rows.append((source, measured, None))
        rows.append(
            (f"{kind} (all)" if any(s.startswith(f"{kind}/") for s in section["by_source"]) else kind, values, "cyan")
        )
    if len(kinds) > 1:
        rows.append(("overall", section["metrics"], "bold cyan"))
    for label, values, style in rows:
        table.add_row(label, *(_cell(values.get(c)) for c in columns), style=style)
    return table


def _present(column: str, section: dict[str, Any]) -> bool:
    rows: Iterable[dict[str, Any]] = [*section["by_kind"].values(), *section["by_source"].values()]
    return any(r.get(column) is not None for r in rows)


def print_table(table: Table, console: Console) -> None:
    """Print `table`; when stdout is not a terminal (a pipe, a CI log) as wide as it needs, so no cell is cut to `…`."""
    if console.is_terminal:
        console.print(table)
        return
    needed = Measurement.get(console, console.options.update_width(100_000), table).maximum
    Console(file=console.file, width=max(console.width, needed), no_color=console.no_color).print(table)


def print_report(report: dict[str, Any], console: Console) -> None:
    for name, section in report["suites"].items():
        print_table(suite_table(name, section), console)
        for note in section["notes"]:
            console.print(f"  [dim]note:[/] {note}")
    console.print(f"[bold]{report['metrics']['cases']}[/] cases in {report['seconds']:.1f} s")
