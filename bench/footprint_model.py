"""What llama.cpp's prompt cache costs: the embedded server's RSS over distinct prompts, bounded vs llama.cpp's default.

Each variant runs in a fresh process: it starts `EmbeddedServer` (SmolLM2-135M, ctx 2048), sends `--prompts`
distinct ~1,800-token prompts (the size of a diagnosis prompt) with a short answer, and samples the process's
RSS after each. Reports the growth per prompt and the ratio of the default's final RSS to the bounded one's.

    .venv/bin/python bench/footprint_model.py [--prompts 8] [--cache-mb 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # noqa: TID251 - each variant runs in a fresh process
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.smaps import breakdown

LLAMA_DEFAULT_CACHE_MB = 8192
WORDS = [
    "alpha",
    "bravo",
    "cobalt",
    "delta",
    "ember",
    "falcon",
    "garnet",
    "harbor",
    "indigo",
    "jasper",
    "kestrel",
    "lumen",
    "marble",
    "nimbus",
    "onyx",
    "pylon",
]


def one_variant(cache_mb: int, prompts: int) -> dict[str, object]:
    """Runs inside the child process: one server, `prompts` distinct prompts, RSS after each."""
    import httpx

    from agent.llm.embedded import EmbeddedServer, default_gguf_path

    server = EmbeddedServer(default_gguf_path(), ctx=2048, prompt_cache_mb=cache_mb)
    server.start()
    started = breakdown(os.getpid())
    rss: list[float] = []
    with httpx.Client(timeout=600, trust_env=False) as client:
        for i in range(prompts):
            text = " ".join(f"{WORDS[(i * 7 + j * 3) % 16]}{i * j % 97}" for j in range(500))
            client.post(
                f"{server.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {server.api_key}"},
                json={"model": server.model_name, "messages": [{"role": "user", "content": text}], "max_tokens": 8},
            ).raise_for_status()
            rss.append(breakdown(os.getpid())["total"])
    final = breakdown(os.getpid())
    server.stop()
    growth = (rss[-1] - rss[0]) / max(len(rss) - 1, 1)
    return {
        "cache_mb": cache_mb,
        "rss_mb_started": started["total"],
        "rss_mb_per_prompt": rss,
        "growth_mb_per_prompt": round(growth, 1),
        "groups_mb_final": final,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--cache-mb", type=int, default=0, help="the bounded variant (errlearn's default: 0)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(one_variant(args.child, args.prompts)))
        return
    runs = {}
    for label, cache_mb in (("llama_default", LLAMA_DEFAULT_CACHE_MB), ("bounded", args.cache_mb)):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(cache_mb), "--prompts", str(args.prompts)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs[label] = json.loads(out.strip().splitlines()[-1])
    default_final = runs["llama_default"]["rss_mb_per_prompt"][-1]  # type: ignore[index]
    bounded_final = runs["bounded"]["rss_mb_per_prompt"][-1]  # type: ignore[index]
    report = {"prompts": args.prompts, **runs, "ratio_default_to_bounded": round(default_final / bounded_final, 2)}
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "footprint_model.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
