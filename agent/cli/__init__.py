"""`errlearn` command line. Thin: parses, calls the core or the HTTP API, prints.

This root only wires the command groups together; each lives in its own module (`server`, `retrieval`,
`diagnose`, `run`, `recovery`, `guide`, `prune`) and imports its heavy dependencies inside the commands.
A new command goes into a new module here, registered with one line below.
"""

from __future__ import annotations

import typer

from agent.cli import diagnose, guide, patterns, prune, recovery, retrieval, run, server, sink

app = typer.Typer(help="errlearn: learns from every error your services throw.", no_args_is_help=True)

app.command()(server.version)
app.command()(server.serve)
app.command()(server.status)
app.command()(server.worker)
app.command()(retrieval.reindex)
app.command()(retrieval.similar)
app.add_typer(retrieval.knowledge_app, name="knowledge")
app.command()(diagnose.ask)
app.command()(diagnose.diagnose)
app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(run.run)
app.add_typer(recovery.recovery_app, name="recovery")
app.add_typer(guide.guide_app, name="guide")
app.command("learn")(guide.learn_command)
app.command("prune")(prune.prune_command)
app.add_typer(patterns.patterns_app, name="patterns")
app.add_typer(sink.sink_app, name="sink")


def _register_eval() -> None:
    try:  # evals/ ships in the same wheel; a trimmed install without it simply has no `eval` command
        from evals.cli import eval_command
    except ImportError:  # pragma: no cover
        return
    app.command("eval")(eval_command)


_register_eval()


def main() -> None:  # pragma: no cover
    app()
