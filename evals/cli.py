"""`errlearn eval SUITE --data PATH`: the eval runner's command line (registered in agent/cli/__init__.py).

    app.command("eval")(eval_command)

Also runnable alone: `python -m evals.cli grouping --data ../shared/evaldata/loghub2-2k`.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

console = Console()
err_console = Console(stderr=True)


class SuiteName(StrEnum):
    grouping = "grouping"
    retrieval = "retrieval"
    diagnosis = "diagnosis"
    safety = "safety"
    all = "all"


class RichProgress:
    """The runner's progress callbacks shown as one rich progress bar per step."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, label: str, total: int | None) -> None:
        if self._task is not None:  # one bar at a time: the finished step gives way to the next
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)


def eval_command(
    suite: Annotated[SuiteName, typer.Argument(help="which suite to run")],
    data: Annotated[
        list[Path],
        typer.Option("--data", metavar="PATH", help="data folder or file (repeatable); formats are detected"),
    ],
    out: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="a fast slice: at most N items per source, where an item is a Loghub line, a Defects4J bug (all its "
            "traces), a JSONL case, an incident or a runbook query",
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            help="model id to judge diagnoses with (via the configured provider); `configured`: the configured model"
        ),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="exit 1 when a metric is below its threshold")] = False,
    thresholds: Annotated[
        Path | None, typer.Option(help="thresholds file for --check", show_default="evals/thresholds.toml")
    ] = None,
    no_knowledge: Annotated[
        bool, typer.Option("--no-knowledge", help="do not import the seed knowledge/ before diagnosing")
    ] = False,
) -> None:
    """Run an eval suite on errlearn's real pipeline (fresh temporary data dir) and report its metrics."""
    # The pipeline (the model stack, Chroma) loads here, not when `errlearn --help` builds the command list.
    from agent.llm.providers import ModelUnavailable
    from evals.dataset import DatasetError
    from evals.report import print_report, write_report
    from evals.runner import DEFAULT_THRESHOLDS, SEED_KNOWLEDGE, EvalError, RunOptions, check_thresholds, run_eval

    thresholds = thresholds or DEFAULT_THRESHOLDS

    logging.getLogger("chromadb").setLevel(logging.ERROR)
    options = RunOptions(limit=limit, judge=judge, knowledge=None if no_knowledge else SEED_KNOWLEDGE)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err_console, transient=True) as bar:
            report = run_eval(suite.value, data, options, progress=RichProgress(bar))
    except (EvalError, DatasetError, ModelUnavailable) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(report, console)
    if out is not None:
        write_report(report, out)
        console.print(f"report written to [bold]{out}[/]")
    if check:
        results = check_thresholds(report, thresholds)
        failed = [r for r in results if r.failed]
        for r in results:
            style = "red" if r.failed else ("dim" if r.value is None else "green")
            console.print(f"[{style}]{r.describe()}[/]")
        if not results:
            console.print(f"[yellow]no threshold in {thresholds} applies to this run[/]")
        if failed:
            err_console.print(f"[bold red]{len(failed)} metric(s) below threshold[/]")
            raise typer.Exit(1)


app = typer.Typer(add_completion=False)
app.command("eval")(eval_command)

if __name__ == "__main__":
    typer.run(eval_command)
