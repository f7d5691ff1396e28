"""The one settings class. Read only by composition roots (api/app.py, cli.py, worker, evals)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """errlearn settings; every field is read from `ERRLEARN_<NAME>` or a `.env` file."""

    model_config = SettingsConfigDict(env_prefix="ERRLEARN_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    """All embedded state (SQLite database, Chroma, JSONL sinks, generated keys) lives here."""
    database_url: str | None = None
    """SQLAlchemy URL; default `sqlite:///<data_dir>/errlearn.db`. PostgreSQL: `postgresql+psycopg://...`."""
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Comma-separated ingest keys (may ingest and read)."""
    admin_key: SecretStr | None = None
    """Key for admin endpoints (reset, learning, approvals). Also allowed to ingest and read."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body accepted; larger bodies get 413."""
    max_stack_bytes: int = Field(default=64 * 1024, ge=1024)
    """Stack traces longer than this are truncated (head and tail kept) and marked, not rejected."""
    max_message_bytes: int = Field(default=16 * 1024, ge=256)
    """Error messages longer than this are truncated and marked."""
    max_batch_items: int = Field(default=1000, ge=1)
    """Most events accepted in one `/errors/batch` request."""

    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL: an acknowledged event survives power loss, not just a crash (group commit pays for it)."""
    sqlite_checkpoint_every_s: float = Field(default=0.5, ge=0)
    """SQLite: WAL checkpoints on a thread of their own every this many seconds, off the writer's commits
    (0: SQLite's automatic checkpoint inside the COMMIT that fills 1,000 WAL pages)."""
    writer_max_batch: int = Field(default=2000, ge=1)
    """Most events the writer commits in one transaction (group commit)."""
    writer_fold_every_s: float = Field(default=1.0, ge=0)
    """How often, at most, the writer adds the appended tallies (on SQLite, for patterns: the events committed
    since) into pattern totals and counters while it commits (also when it goes idle, starts and stops).
    Reads add what is not folded yet, so counts are exact either way; 0 folds after every commit."""

    scrub_emails: bool = True
    """Replace e-mail addresses with `[REDACTED:email]`."""
    sink_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Size at which a `logs/errors/<service>-errors.jsonl` sink is rotated."""
    sink_backups: int = Field(default=5, ge=0)
    sink_max_age_days: int = Field(default=30, ge=1)
    """Sink archives and rotated files older than this are deleted."""
    retention_days: int = Field(default=30, ge=0)
    """Events received longer ago are deleted (except samples and referenced ones); 0 keeps them forever."""
    retention_keep_samples: int = Field(default=10, ge=1)
    """Newest events per pattern kept however old."""
    retention_batch: int = Field(default=500, ge=1, le=5000)
    """Events deleted per transaction (short transactions: ingest is never blocked for long)."""
    retention_interval_minutes: float = Field(default=60, gt=0)

    embedder: Literal["wordllama", "minilm", "ollama"] = "wordllama"
    """Embedding model: wordllama (embedded, default), minilm (optional extra), ollama (production)."""
    chroma_url: str | None = None
    """A Chroma server (`chroma run`), e.g. http://127.0.0.1:8000; default: embedded Chroma in the data dir."""
    ollama_url: str = "http://127.0.0.1:11434"
    """Ollama server for the `ollama` embedder and LLM provider."""
    ollama_embed_model: str = "nomic-embed-text"

    llm: Literal["embedded", "ollama", "openai", "litellm"] = "embedded"
    """Model provider: embedded (llama.cpp + SmolLM2 from PyPI), ollama, openai (any compatible server), litellm."""
    llm_model: str | None = None
    """Model id: ollama default `qwen2.5:7b`; required for openai/litellm; embedded uses its GGUF."""
    llm_base_url: str | None = None
    """openai-compatible server URL (`.../v1`) or LiteLLM api_base; ollama uses ERRLEARN_OLLAMA_URL when unset."""
    llm_api_key: SecretStr | None = None
    llm_gguf_path: Path | None = None
    """embedded: any local GGUF file instead of the bundled SmolLM2-135M-Instruct."""
    llm_context_tokens: int = Field(default=2048, ge=512)
    """The model's context window (prompt and answer): prompt budgets, and the embedded llama.cpp's one slot
    (its KV cache: ~23 KB a token for SmolLM2-135M, 47 MB at 2048)."""
    llm_prompt_cache_mb: int = Field(default=0, ge=0, le=65536)
    """embedded: MiB llama.cpp may keep of earlier prompts' KV state to reuse a shared prefix (`--cache-ram`).
    0 (off): llama.cpp's default of 8 GiB made one server grow ~40 MB per distinct diagnosis prompt (976 MB
    after 40); the one slot still reuses the prefix it shares with the previous prompt."""
    llm_max_output_tokens: int = Field(default=768, ge=16)
    """Generation cap. Answers are bounded by their schema (~350 tokens at every bound); the headroom covers
    JSON escapes that cost extra tokens, so a small model is never cut off mid-answer."""
    llm_timeout_s: float = Field(default=120.0, gt=0)
    llm_threads: int | None = Field(default=None, ge=1)
    """embedded: llama.cpp CPU threads; default half the usable cores (more threads than free cores is far slower)."""
    llm_temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    llm_tools: bool = False
    """Give the chat agent read-only tools (for models that call tools well, e.g. a 7B+ Ollama model)."""
    min_similarity: float = Field(default=0.55, ge=-1, le=1)
    """Retrieved patterns/knowledge below this cosine similarity are not put in front of the model."""
    min_confidence: float = Field(default=0.35, ge=0, le=1)
    """Diagnoses below this confidence are stored as inconclusive."""
    diagnose_new_patterns: bool = True
    """Queue a diagnosis job for every new pattern (the worker runs them)."""

    # -- diagnosis paths (issue 18: known causes first, the model picks, a quality gate) --
    diagnosis_mode: Literal["auto", "pick", "write"] = "auto"
    """How a model takes part when no known cause matches strongly: `pick` (choose one of the nearest
    known causes or none, fill short slots; code writes the diagnosis), `write` (free-form root cause).
    auto: pick on the embedded model, write on ollama/openai/litellm."""
    known_cause_min_score: float = Field(default=0.487, ge=-1, le=1)
    """A knowledge or guide entry at least this similar to a pattern's evidence is its diagnosis, written
    by code without a model (calibrated on the eval data's dev half: docs/models.md)."""
    known_cause_pick_min_score: float = Field(default=0.4, ge=-1, le=1)
    """Entries at least this similar are offered to the model to pick from (at most four)."""

    recovery_config: Path | None = None
    """Allow-listed recovery actions: our YAML/JSON form or the seed's `error_monitor_config.json`."""
    recovery_dry_run: bool = True
    """Record what a recovery action would run without running it (turn off deliberately)."""
    guide_path: Path = Path("docs/ERROR_PREVENTION_GUIDE.md")
    """Where approved guide entries are rendered."""
    learning_interval_minutes: float = Field(default=5.0, gt=0)
    """Run a learning pass this often when new errors arrived."""
    guide_match_similarity: float = Field(default=0.8, ge=-1, le=1)
    """A pattern this similar to an approved guide entry is linked to it (a revision drafted), not given its own."""
    learning_max_model_calls: int = Field(default=20, ge=1)
    """Model calls per learning run; the rest waits for the next run."""
    learning_stale_minutes: float = Field(default=60, gt=0)
    """A learning run still running after this long is taken for dead."""

    # -- grouping v2 (issue 13): the background merge pass over template patterns ---------------
    grouping_merge_every_s: float = Field(default=30, gt=0)
    """The worker runs the merge pass (`agent.store.merges`) this often; ingest honours its decisions at once."""
    grouping_merge_min_values: int = Field(default=4, ge=2)
    """A word taking this many values in one place among templates otherwise equal is a parameter (merged)."""
    grouping_merge_min_context: int = Field(default=3, ge=1)
    """...and only around at least this many fixed words (one-word messages are not merged that way)."""

    worker: bool = True
    """Run the background worker (indexing, diagnosis, learning) inside `errlearn serve`."""
    worker_poll_s: float = Field(default=1.0, gt=0)
    worker_busy_share: float = Field(default=0.05, gt=0, le=1)
    """While events arrive, the worker's indexing and jobs take at most this share of the time (small batches,
    then a rest) and learning/retention wait (10 minutes at most), so an in-process worker leaves ingest its
    throughput; idle, it runs flat out. 1: never hold back."""

    metrics_public: bool = True
    """Serve `GET /metrics` without a key, like most Prometheus exporters; false: any API key is needed."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """`errlearn worker` serves its own Prometheus metrics (jobs, model calls, recovery) on this port; unset: off."""

    ui_session_hours: float = Field(default=12, gt=0, le=720)
    """How long a UI sign-in lasts (absolute, not sliding)."""

    log_json: bool = False
    """Log errlearn's own records as JSON lines."""
    log_level: str = "INFO"

    # -- ingest at scale (issue 16): backpressure, processes per box -----------------------------------
    writer_max_queued_events: int = Field(default=20_000, ge=1)
    """Events waiting for the writer before ingest answers 503 with `Retry-After` (bounds memory)."""
    backpressure_retry_after_s: int = Field(default=1, ge=0, le=3600)
    """The `Retry-After` seconds sent with a backpressure 503."""
    workers: int | None = Field(default=None, ge=1, le=64)
    """`errlearn serve` processes; default: the usable CPU cores with a Chroma server (`chroma_url`), else 1
    (embedded Chroma belongs to one process)."""

    # -- the Redis Streams ingest buffer (issue 16, docs/operations.md): off unless a URL is set ------------
    ingest_buffer_url: str | None = None
    """Redis URL, e.g. redis://127.0.0.1:6379/0: ingest answers once an event is durably in a Redis stream and
    consumers store it at the database's pace. Unset (default): ingest answers after the database commit."""
    ingest_buffer_stream: str = Field(default="errlearn:ingest", min_length=1, max_length=200)
    ingest_buffer_group: str = Field(default="errlearn", min_length=1, max_length=200)
    """The consumer group every consuming process joins (one group per errlearn deployment)."""
    ingest_buffer_max_entries: int = Field(default=50_000, ge=1)
    """Stream entries (one per ingest request) not yet stored before ingest answers 503 + Retry-After; entries
    are never trimmed, so nothing acknowledged is dropped to keep the bound."""
    ingest_buffer_claim_idle_s: float = Field(default=30.0, gt=0, le=86_400)
    """An entry pending this long for one consumer (it died) is claimed by another and stored again."""
    ingest_buffer_durability: Literal["auto", "off"] = "auto"
    """auto: refuse to start unless Redis has `appendonly yes` + `appendfsync always`, or `appendonly yes` on
    Redis >= 7.2 (each add then waits with WAITAOF); off: trust whatever the server does."""
    ingest_buffer_consume: bool = True
    """This process (`serve` and `worker`) stores entries from the stream; false: it only adds to it."""

    # Hardening (issue 15): bounded shutdown.
    shutdown_grace_s: float = Field(default=10.0, gt=0, le=600)
    """SIGTERM/SIGINT: how long `serve` and `worker` take at most to stop. Requests in flight get this long,
    the writer commits what it acknowledged, a model call still running is abandoned (its job is queued again)
    and the process exits, stopping an embedded llama.cpp even mid-generation."""
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """A connection that has not sent its first request's headers within this is closed (slow clients)."""
    http_keep_alive_s: int = Field(default=5, ge=1, le=300)
    """An idle keep-alive connection is closed after this (uvicorn's `timeout_keep_alive`)."""
    http_max_connections_per_address: int = Field(default=64, ge=1, le=100_000)
    """Open connections one client address may hold; more are closed at once."""
    learning_lease_s: float = Field(default=60.0, ge=1, le=3600)
    """A learning run renews a lease every quarter of this; one whose process died is taken for dead after it."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            if len(key.get_secret_value()) < 16:
                raise ValueError("every API key needs at least 16 characters")
        return value

    @field_validator("admin_key")
    @classmethod
    def _admin_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the admin key needs at least 16 characters")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'errlearn.db').resolve()}"

    @property
    def sink_dir(self) -> Path:
        return self.data_dir / "logs" / "errors"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return Settings()
