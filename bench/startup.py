"""Start-up cost of the `errlearn` CLI and of `import errlearn_sdk`, as ratios against baselines in the same run.

CPU time (user + system) of each child process, the median over interleaved rounds so the same machine noise
hits every command. Goals: `errlearn --help` and `errlearn version` within 5x of `python -c "import typer, rich"`
(what any Typer CLI pays); `import errlearn_sdk` under 50 ms of wall time above a bare interpreter.

    .venv/bin/python bench/startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess  # noqa: TID251 - the benchmark times child processes
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    'python -c "import typer, rich"': [sys.executable, "-c", "import typer, rich"],
    "errlearn --help": [str(BIN / "errlearn"), "--help"],
    "errlearn version": [str(BIN / "errlearn"), "version"],
    "python -c 'import errlearn_sdk'": [sys.executable, "-c", "import errlearn_sdk"],
}


def _once(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=os.environ | {"COLUMNS": "100"}
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the page cache and the .pyc files first
        _once(argv)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            samples[name].append(_once(argv))
    cpu = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    wall = {name: statistics.median(s[1] for s in runs) for name, runs in samples.items()}
    base = cpu['python -c "import typer, rich"']
    print(f"{'command':34} {'CPU s':>7} {'wall s':>7} {'x typer+rich':>13}")
    for name in COMMANDS:
        print(f"{name:34} {cpu[name]:7.3f} {wall[name]:7.3f} {cpu[name] / base:13.2f}")
    sdk_ms = (wall["python -c 'import errlearn_sdk'"] - wall["python -c pass"]) * 1000
    cli = {name: cpu[name] / base for name in ("errlearn --help", "errlearn version")}
    print("\nCLI ratios (goal <= 5.0): " + ", ".join(f"{k} {v:.2f}x" for k, v in cli.items()))
    print(f"import errlearn_sdk: {sdk_ms:.1f} ms above a bare interpreter (goal < 50 ms)")
    RESULTS.mkdir(exist_ok=True)
    report = {"rounds": args.rounds, "cpu_s": cpu, "wall_s": wall, "cli_ratio": cli, "sdk_import_ms": sdk_ms}
    (RESULTS / "startup.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
