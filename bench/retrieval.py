"""Retrieval benchmarks for errlearn's vector memory.

speed    indexing throughput and query latency at 1k / 10k / 100k stored patterns (synthetic but
         realistic error texts), per available embedder, against an exact numpy search as baseline.
quality  recall@1, recall@5 and MRR@10 on recorded data (../shared/evaldata): Defects4J traces
         (a new trace of a bug must find its bug's stored trace) and alert runbooks (an alert name or
         description must find its runbook), plus embeddings/s on those texts.

Run:
    .venv/bin/python bench/retrieval.py speed [--sizes 1000,10000,100000] [--embedders wordllama,minilm]
    .venv/bin/python bench/retrieval.py quality [--evaldata ../shared/evaldata]
    .venv/bin/python bench/retrieval.py hybrid [--sizes 100000]   (bench/hybrid.py: ingest, index, hybrid query)

MiniLM needs the optional extra (sentence-transformers + torch, ~1.5 GB): run the same file with a venv
that has it (PYTHONPATH=. /path/to/venv/bin/python bench/retrieval.py ...).
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ingest.template import mask
from agent.retrieval.embedders import Embedder, EmbedderUnavailable, make_embedder
from agent.retrieval.text import error_embedding_text
from agent.store.vectors import VectorStore

# --- shared helpers --------------------------------------------------------------------------------


class RecordingEmbedder:
    """Passes through to an embedder and keeps the stored vectors, for the exact-search baseline."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self.recording = True
        self.chunks: list[np.ndarray] = []  # float32, not lists of Python floats: 8x less memory
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - started
        if self.recording:
            self.chunks.append(np.asarray(out, dtype=np.float32))
        return out

    def matrix(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros((0, self.dimension), dtype=np.float32)


def load_embedders(kinds: Sequence[str], ollama_url: str) -> Iterator[tuple[str, Embedder | None, str]]:
    """(kind, embedder or None, note) for each kind; an unavailable one comes with the reason."""
    for kind in kinds:
        started = time.perf_counter()
        try:
            embedder = make_embedder(kind, ollama_url=ollama_url, timeout=5.0)
        except EmbedderUnavailable as exc:
            yield kind, None, f"skipped: {exc}"
            continue
        yield kind, embedder, f"loaded in {time.perf_counter() - started:.1f} s"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- synthetic error patterns ----------------------------------------------------------------------

SERVICES = [
    "billing",
    "checkout",
    "search",
    "accounts",
    "inventory",
    "shipping",
    "notifications",
    "reports",
    "ingest",
    "auth",
    "payments",
    "catalog",
    "gateway",
    "scheduler",
    "images",
    "recommendations",
    "orders",
    "pricing",
    "analytics",
    "mailer",
    "webhooks",
    "exports",
    "profiles",
    "ledger",
    "fraud",
    "media",
    "subscriptions",
    "support",
    "warehouse",
    "loyalty",
]
LAYERS = ["api", "services", "repo", "db", "workers", "clients", "models", "utils", "handlers", "jobs"]
NOUNS = [
    "user",
    "order",
    "invoice",
    "payment",
    "cart",
    "item",
    "account",
    "session",
    "token",
    "report",
    "shipment",
    "product",
    "price",
    "refund",
    "coupon",
    "address",
    "customer",
    "tenant",
    "webhook",
    "export",
    "image",
]
VERBS = [
    "get",
    "create",
    "update",
    "load",
    "save",
    "charge",
    "refund",
    "sync",
    "parse",
    "validate",
    "render",
    "send",
    "publish",
    "consume",
    "compute_total",
    "apply_discount",
    "resolve",
    "fetch",
    "retry",
    "serialize",
]
FIELDS = [
    "user_id",
    "email",
    "order_id",
    "sku",
    "price",
    "currency",
    "address",
    "token",
    "session_id",
    "tenant_id",
    "invoice_no",
    "quantity",
    "discount_code",
    "country",
    "locale",
    "amount",
    "status",
    "created_at",
    "plan",
]
HOSTS = ["db-primary", "redis-cache", "search-es", "payments-api", "auth-svc", "s3.internal", "kafka-broker"]
REASONS = [
    "Connection refused",
    "Connection reset by peer",
    "timeout expired",
    "No route to host",
    "Name or service not known",
    "server closed the connection unexpectedly",
]
# (error type, template with {slots}); placeholders like <NUM> are what the ingest masking leaves.
FAMILIES = [
    ("psycopg.OperationalError", "connection to server at <IP>, port <NUM> failed: {reason}"),
    ("sqlalchemy.exc.IntegrityError", 'duplicate key value violates unique constraint "{noun}s_{field}_key"'),
    (
        "sqlalchemy.exc.OperationalError",
        "(sqlite3.OperationalError) database is locked [SQL: UPDATE {noun}s SET {field}=? WHERE id = ?]",
    ),
    ("KeyError", "'{field}'"),
    ("AttributeError", "'NoneType' object has no attribute '{field}'"),
    ("TypeError", "unsupported operand type(s) for +: 'NoneType' and '{kind}'"),
    ("ValueError", "invalid literal for int() with base <NUM>: '{field}'"),
    ("httpx.ReadTimeout", "timed out while reading from {host}"),
    (
        "requests.exceptions.ConnectionError",
        "HTTPConnectionPool(host='{host}', port=<NUM>): Max retries exceeded"
        " with url: /v1/{noun}s (Caused by {reason})",
    ),
    ("java.lang.NullPointerException", 'Cannot invoke "{Noun}.get{Field}()" because "{noun}" is null'),
    ("java.lang.IllegalStateException", "{Noun}Service is not initialized"),
    ("java.util.ConcurrentModificationException", "null while iterating {noun}s"),
    ("TimeoutError", "{verb} {noun} did not complete within <NUM>s"),
    ("PermissionError", "[Errno <NUM>] Permission denied: '<PATH>/{noun}s'"),
    ("FileNotFoundError", "[Errno <NUM>] No such file or directory: '<PATH>/{noun}.json'"),
    ("redis.exceptions.ConnectionError", "Error <NUM> connecting to {host}:<NUM>. {reason}."),
    ("json.decoder.JSONDecodeError", "Expecting value: line <NUM> column <NUM> (char <NUM>) in {noun} payload"),
    ("pydantic_core.ValidationError", "<NUM> validation error for {Noun}Create {field} Field required"),
    ("MemoryError", "cannot allocate <NUM> bytes for {noun} buffer"),
    ("ZeroDivisionError", "division by zero in {noun} {field}"),
    ("RecursionError", "maximum recursion depth exceeded while calling {verb}"),
    ("TypeError", "Cannot read properties of undefined (reading '{field}')"),
    ("UnhandledPromiseRejection", "{verb} {noun} failed: {reason}"),
    ("runtime.Error", "index out of range [<NUM>] with length <NUM> in {noun}s"),
    ("context.DeadlineExceeded", "context deadline exceeded while calling {host}"),
    ("grpc.RpcError", "StatusCode.UNAVAILABLE: failed to connect to all addresses; {reason}"),
    ("OSError", "[Errno <NUM>] No space left on device while writing {noun} export"),
    ("ssl.SSLCertVerificationError", "certificate verify failed: certificate has expired ({host})"),
    ("botocore.exceptions.ClientError", "An error occurred (AccessDenied) when calling the Put{Noun} operation"),
    ("kafka.errors.KafkaTimeoutError", "Failed to update metadata after <NUM> secs for topic {noun}-events"),
    ("celery.exceptions.SoftTimeLimitExceeded", "task {service}.{verb}_{noun} exceeded soft time limit"),
    ("stripe.error.CardError", "Your card was declined: {field} is invalid"),
    ("django.db.utils.ProgrammingError", 'relation "{noun}s" does not exist'),
    ("UnicodeDecodeError", "'utf-8' codec can't decode byte 0x<HEX> in position <NUM>: invalid start byte"),
    ("AssertionError", "expected {field} to be set on {noun}"),
    ("LookupError", "unknown {field} for {noun} <ID>"),
    ("NotImplementedError", "{verb} is not supported for {noun}s"),
    ("asyncio.CancelledError", "{verb} {noun} task was cancelled"),
    ("jwt.exceptions.ExpiredSignatureError", "Signature has expired for {noun} token"),
    ("sqlalchemy.exc.TimeoutError", "QueuePool limit of size <NUM> overflow <NUM> reached, connection timed out"),
]
KINDS = ["int", "str", "float", "dict", "list", "Decimal"]


@dataclass(frozen=True)
class SynthPattern:
    service: str
    error_type: str
    template: str
    frames: tuple[str, ...]

    def text(self) -> str:
        return error_embedding_text(
            service=self.service, error_type=self.error_type, template=self.template, frames=self.frames
        )


def _frame(rng: random.Random, service: str) -> str:
    return f"{service}.{rng.choice(LAYERS)}.{rng.choice(NOUNS)}s.{rng.choice(VERBS)}_{rng.choice(NOUNS)}"


def synth_pattern(rng: random.Random) -> SynthPattern:
    service = rng.choice(SERVICES)
    error_type, template = rng.choice(FAMILIES)
    noun, fld = rng.choice(NOUNS), rng.choice(FIELDS)
    filled = template.format(
        reason=rng.choice(REASONS),
        noun=noun,
        Noun=noun.capitalize(),
        field=fld,
        Field="".join(p.capitalize() for p in fld.split("_")),
        host=rng.choice(HOSTS),
        kind=rng.choice(KINDS),
        verb=rng.choice(VERBS),
        service=service,
    )
    frames = tuple(_frame(rng, service) for _ in range(rng.randint(2, 5)))
    return SynthPattern(service, error_type, filled, frames)


def new_occurrence(rng: random.Random, known: SynthPattern) -> SynthPattern:
    """The same error again through another call path: innermost frame kept, the outer ones changed."""
    frames = (known.frames[0], *(_frame(rng, known.service) for _ in range(rng.randint(1, 3))))
    return SynthPattern(known.service, known.error_type, known.template, frames)


# --- speed -----------------------------------------------------------------------------------------


@dataclass
class SpeedRow:
    embedder: str
    size: int
    index_per_s: float = float("nan")
    embed_per_s: float = float("nan")
    query_p50_ms: float = float("nan")
    query_p99_ms: float = float("nan")
    embed_p50_ms: float = float("nan")
    exact_p50_ms: float = float("nan")
    ann_recall5: float = float("nan")
    known_at5: float = float("nan")
    rss_mb: float = float("nan")
    note: str = ""


def bench_speed(
    embedder: Embedder, sizes: Sequence[int], queries: int, seed: int, max_size: int | None
) -> Iterator[SpeedRow]:
    rng = random.Random(seed)
    recorder = RecordingEmbedder(embedder)
    patterns: list[SynthPattern] = []
    with tempfile.TemporaryDirectory(prefix="errlearn-bench-") as tmp:
        store = VectorStore.open(recorder, path=Path(tmp))
        for size in sorted(sizes):
            if max_size is not None and size > max_size:
                yield SpeedRow(embedder.name, size, note="skipped: too slow, see --minilm-max")
                continue
            # Grow the collection to `size` (the rate measured is for this increment).
            new = [synth_pattern(rng) for _ in range(size - len(patterns))]
            recorder.recording, recorder.seconds = True, 0.0
            started = time.perf_counter()
            for i in range(0, len(new), 5000):
                chunk = new[i : i + 5000]
                store.upsert(
                    "patterns",
                    [f"p{len(patterns) + i + j}" for j in range(len(chunk))],
                    [p.text() for p in chunk],
                    [{"service": p.service, "error_type": p.error_type, "resolved": False} for p in chunk],
                )
            elapsed = time.perf_counter() - started
            index_rate, embed_rate = len(new) / elapsed, len(new) / max(recorder.seconds, 1e-9)
            patterns.extend(new)
            stored = recorder.matrix()

            recorder.recording = False
            probe_ids = [rng.randrange(len(patterns)) for _ in range(queries)]
            texts = [new_occurrence(rng, patterns[i]).text() for i in probe_ids]
            store.query("patterns", texts[0], k=5)  # warm-up
            query_ms, embed_ms, exact_ms, overlap, known = [], [], [], 0, 0
            for source, text in zip(probe_ids, texts, strict=True):
                t0 = time.perf_counter()
                vector = np.asarray(embedder.embed([text])[0], dtype=np.float32)
                t1 = time.perf_counter()
                exact = set(np.argpartition(-(stored @ vector), 5)[:5].tolist())
                t2 = time.perf_counter()
                hits = store.query("patterns", text, k=5)
                t3 = time.perf_counter()
                embed_ms.append((t1 - t0) * 1e3)
                exact_ms.append((t2 - t1) * 1e3)
                query_ms.append((t3 - t2) * 1e3)
                found = {int(h.id[1:]) for h in hits}
                overlap += len(found & exact)
                known += source in found
            yield SpeedRow(
                embedder.name,
                size,
                index_per_s=index_rate,
                embed_per_s=embed_rate,
                query_p50_ms=percentile(query_ms, 50),
                query_p99_ms=percentile(query_ms, 99),
                embed_p50_ms=percentile(embed_ms, 50),
                exact_p50_ms=percentile(exact_ms, 50),
                ann_recall5=overlap / (5 * queries),
                known_at5=known / queries,
                rss_mb=peak_rss_mb(),
            )


def run_speed(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[SpeedRow] = []
    for kind, embedder, note in load_embedders(args.embedders.split(","), args.ollama_url):
        print(f"{kind}: {note}", flush=True)
        if embedder is None:
            continue
        max_size = args.minilm_max if kind == "minilm" else None
        for row in bench_speed(embedder, sizes, args.queries, args.seed, max_size):
            rows.append(row)
            print(
                f"  {row.size:>7} stored: {row.index_per_s:,.0f} patterns/s (embedding {row.embed_per_s:,.0f}/s), "
                f"query p50 {row.query_p50_ms:.1f} ms p99 {row.query_p99_ms:.1f} ms {row.note}",
                flush=True,
            )
    print()
    print_table(
        [
            "embedder",
            "stored",
            "index/s",
            "embed/s",
            "query p50 ms",
            "p99 ms",
            "embed p50 ms",
            "exact p50 ms",
            "ANN recall@5",
            "known@5",
            "peak RSS MB",
            "note",
        ],
        [
            [
                r.embedder,
                f"{r.size:,}",
                f"{r.index_per_s:,.0f}",
                f"{r.embed_per_s:,.0f}",
                f"{r.query_p50_ms:.2f}",
                f"{r.query_p99_ms:.2f}",
                f"{r.embed_p50_ms:.2f}",
                f"{r.exact_p50_ms:.2f}",
                f"{r.ann_recall5:.3f}",
                f"{r.known_at5:.3f}",
                f"{r.rss_mb:,.0f}",
                r.note,
            ]
            for r in rows
        ],
    )
    print(
        "\nquery = embed + Chroma top-5 (end to end); exact = numpy brute force over the same vectors (embed "
        "excluded); ANN recall@5 = overlap of Chroma's top-5 with the exact top-5; known@5 = a new occurrence "
        "finds the pattern it came from in its top-5."
    )


# --- quality: recorded data ------------------------------------------------------------------------

_JAVA_FRAMEWORK = (
    "java.",
    "javax.",
    "sun.",
    "jdk.",
    "com.sun.",
    "org.junit.",
    "junit.",
    "org.apache.tools.ant.",
    "org.hamcrest.",
    "org.gradle.",
    "worker.org.gradle.",
)
_FRAME_LINE = re.compile(r"^\s*at ([\w$.<>]+)\(")


@dataclass
class Trace:
    bug: str
    error_type: str
    message: str
    frames: list[str]
    raw: str

    def text(self, project: str) -> str:
        return error_embedding_text(
            service=project, error_type=self.error_type, template=mask(self.message), frames=self.frames
        )


def load_defects4j(root: Path) -> dict[str, list[Trace]]:
    """Traces by bug (`Project-id`); frames are the in-app ones (no JDK, JUnit or Ant frames)."""
    bugs: dict[str, list[Trace]] = defaultdict(list)
    for path in sorted(root.glob("*/trigger_tests/*"), key=lambda p: (p.parts[-3], int(p.name))):
        bug = f"{path.parts[-3]}-{path.name}"
        for block in re.split(r"^--- ", path.read_text(errors="replace"), flags=re.M)[1:]:
            lines = block.splitlines()[1:]
            head: list[str] = []
            frames: list[str] = []
            for line in lines:
                if line.startswith("Caused by:"):
                    break  # the outermost exception is what a service reports first
                match = _FRAME_LINE.match(line)
                if match:
                    frame = match.group(1)
                    if not frame.startswith(_JAVA_FRAMEWORK):
                        frames.append(frame)
                elif not frames:
                    head.append(line)
            first = " ".join(head).strip()
            error_type, _, message = first.partition(": ") if ": " in first else (first, "", "")
            bugs[bug].append(Trace(bug, error_type.strip(), message.strip(), frames, block[:2000]))
    return dict(bugs)


@dataclass
class Runbook:
    alert: str
    title: str
    sections: dict[str, str]
    description: str = ""
    document: str = ""


_MD_NOISE = [
    (re.compile(r"<[^>]+>"), " "),
    (re.compile(r"\[([^\]]*)\]\[[^\]]*\]|\[([^\]]*)\]\([^)]*\)"), r"\1\2"),
    (re.compile(r"`"), ""),
    (re.compile(r"\s+"), " "),
]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")


def _plain(markdown: str) -> str:
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    for rx, repl in _MD_NOISE:
        text = rx.sub(repl, text)
    return text.strip()


def split_camel(name: str) -> str:
    return " ".join(re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", name))


def load_runbooks(root: Path) -> list[Runbook]:
    """Runbooks with a document that holds out the first sentence of Meaning (used as a query) and the
    CamelCase alert name (the other query): neither query is a substring of what is indexed."""
    books = []
    for path in sorted(root.glob("*/*.md")):
        if path.name.startswith("_"):
            continue
        text = path.read_text(errors="replace")
        front = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
        title = ""
        if front:
            text = text[front.end() :]
            found = re.search(r"^title:\s*(.+)$", front.group(1), flags=re.M)
            title = found.group(1).strip() if found else ""
        sections: dict[str, str] = {}
        for part in re.split(r"^## ", text, flags=re.M)[1:]:
            heading, _, body = part.partition("\n")
            sections[heading.strip().lower()] = _plain(body)
        alert = path.stem
        book = Runbook(alert, title or split_camel(alert), sections)
        meaning = sections.get("meaning", "")
        if meaning:
            sentences = _SENTENCE_END.split(meaning)
            taken = 1
            while taken < len(sentences) and len(" ".join(sentences[:taken])) < 40:
                taken += 1
            book.description = re.sub(re.escape(alert), "this alert", " ".join(sentences[:taken]), flags=re.I)
            meaning = " ".join(sentences[taken:])
        body = " ".join(x for x in (meaning, sections.get("impact", ""), sections.get("diagnosis", "")) if x)
        book.document = f"{book.title}\n{re.sub(re.escape(alert), '', body)}"[:2000]
        books.append(book)
    return books


def score_row(ranks: Sequence[int]) -> list[str]:
    """queries, recall@1, recall@5, MRR@10 from 1-based ranks (0 = not in the top 10)."""
    n = len(ranks) or 1
    r1 = sum(r == 1 for r in ranks) / n
    r5 = sum(1 <= r <= 5 for r in ranks) / n
    mrr = sum(1 / r for r in ranks if r) / n
    return [str(len(ranks)), f"{r1:.3f}", f"{r5:.3f}", f"{mrr:.3f}"]


def rank_of(hits: Sequence[str], wanted: str) -> int:
    return hits.index(wanted) + 1 if wanted in hits else 0


def evaluate(embedder: Embedder, corpus: dict[str, str], queries: Sequence[tuple[str, str]]) -> list[int]:
    """Index `corpus` (id -> text) in a fresh embedded store, run `queries` (wanted id, text): the rank of
    the wanted id in each top 10 (0 = absent)."""
    with tempfile.TemporaryDirectory(prefix="errlearn-quality-") as tmp:
        store = VectorStore.open(embedder, path=Path(tmp))
        ids = list(corpus)
        store.upsert("knowledge", ids, [corpus[i] for i in ids], [{"n": n} for n in range(len(ids))])
        return [rank_of([h.id for h in store.query("knowledge", text, k=10)], wanted) for wanted, text in queries]


def embedding_speed(embedder: Embedder, texts: Sequence[str]) -> tuple[float, float]:
    """(texts/s embedded in batches of 256, p50 ms to embed one text alone)."""
    started = time.perf_counter()
    for i in range(0, len(texts), 256):
        embedder.embed(texts[i : i + 256])
    batch_rate = len(texts) / (time.perf_counter() - started)
    single = []
    for text in texts[:100]:
        t0 = time.perf_counter()
        embedder.embed([text])
        single.append((time.perf_counter() - t0) * 1e3)
    return batch_rate, percentile(single, 50)


def run_quality(args: argparse.Namespace) -> None:
    evaldata = Path(args.evaldata)
    if not evaldata.is_dir():
        raise SystemExit(f"no evaldata at {evaldata}: pass --evaldata PATH (the project's ../shared/evaldata)")
    bugs = load_defects4j(evaldata / "defects4j-traces")
    runbooks = load_runbooks(evaldata / "runbooks")
    multi = {b: ts for b, ts in bugs.items() if len(ts) >= 2}
    print(
        f"defects4j: {sum(map(len, bugs.values()))} traces, {len(bugs)} bugs indexed (first trace of each), "
        f"{sum(len(t) - 1 for t in multi.values())} queries from {len(multi)} bugs with >= 2 traces"
    )
    print(
        f"runbooks: {len(runbooks)} indexed, {len(runbooks)} name queries, "
        f"{sum(bool(b.description) for b in runbooks)} description queries"
    )

    assertion = re.compile(
        r"(junit\.framework\.|org\.junit\.|java\.lang\.)?(AssertionFailedError|ComparisonFailure"
        r"|AssertionError)$"
    )
    rows: list[list[str]] = []
    speeds: list[list[str]] = []
    for kind, embedder, note in load_embedders(args.embedders.split(","), args.ollama_url):
        print(f"{kind}: {note}", flush=True)
        if embedder is None:
            continue
        all_texts: list[str] = []
        for variant in ("deliberate", "raw"):

            def render(trace: Trace, variant: str = variant) -> str:
                return trace.text(trace.bug.split("-")[0]) if variant == "deliberate" else trace.raw

            corpus = {bug: render(traces[0]) for bug, traces in bugs.items()}
            pairs = [(bug, t) for bug, traces in multi.items() for t in traces[1:]]
            ranks = evaluate(embedder, corpus, [(bug, render(t)) for bug, t in pairs])
            exceptions = [r for r, (_, t) in zip(ranks, pairs, strict=True) if not assertion.match(t.error_type)]
            rows.append([embedder.name, f"defects4j {variant} text, all", *score_row(ranks)])
            rows.append([embedder.name, f"defects4j {variant} text, exceptions only", *score_row(exceptions)])
            all_texts += [*corpus.values(), *(render(t) for _, t in pairs)]
        docs = {b.alert: b.document for b in runbooks}
        for label, queries in (
            (
                "runbooks, alert name",
                [(b.alert, f"[FIRING:1] {b.alert} (severity=warning namespace=prod)") for b in runbooks],
            ),
            ("runbooks, description", [(b.alert, b.description) for b in runbooks if b.description]),
        ):
            rows.append([embedder.name, label, *score_row(evaluate(embedder, docs, queries))])
        trace_texts = [t.text(t.bug.split("-")[0]) for ts in bugs.values() for t in ts]
        for label, texts in (
            ("defects4j deliberate", trace_texts),
            ("defects4j raw", [t.raw for ts in bugs.values() for t in ts]),
            ("runbook documents", list(docs.values())),
        ):
            rate, single_ms = embedding_speed(embedder, texts)
            mean_chars = sum(map(len, texts)) / len(texts)
            speeds.append([embedder.name, label, f"{mean_chars:,.0f}", f"{rate:,.0f}", f"{single_ms:.2f}"])
    print()
    print_table(["embedder", "set", "queries", "recall@1", "recall@5", "MRR@10"], rows)
    print()
    print_table(["embedder", "texts", "mean chars", "embeddings/s (batch)", "one text p50 ms"], speeds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedders", default="wordllama,minilm", help="comma-separated kinds to compare")
    parser.add_argument("--ollama-url", default="http://127.0.0.1:11434")
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", help="indexing throughput and query latency by collection size")
    speed.add_argument("--sizes", default="1000,10000,100000", help="comma-separated collection sizes")
    speed.add_argument("--queries", type=int, default=200, help="queries timed at each size")
    speed.add_argument("--minilm-max", type=int, default=10_000, help="largest size indexed with minilm (slow)")
    speed.add_argument("--seed", type=int, default=7)
    hybrid = sub.add_parser("hybrid", help="ingest, index and hybrid-query N patterns through the real pipeline")
    hybrid.add_argument("--sizes", default="100000", help="comma-separated pattern counts (one fresh run each)")
    hybrid.add_argument("--queries", type=int, default=300, help="queries timed per size")
    hybrid.add_argument("--seed", type=int, default=7)
    quality = sub.add_parser("quality", help="recall@k and MRR on ../shared/evaldata")
    quality.add_argument("--evaldata", default=str(Path(__file__).resolve().parents[2] / "shared" / "evaldata"))
    args = parser.parse_args(argv)
    if args.command == "speed":
        run_speed(args)
    elif args.command == "hybrid":
        from bench.hybrid import report, run_hybrid

        report([run_hybrid(int(n), args.queries, args.seed) for n in args.sizes.split(",")])
    else:
        run_quality(args)


if __name__ == "__main__":
    main()
