"""The module-level API: one process-wide client set by `init()`, and functions that use it.

The functions do nothing (and return False) before `init()` or after `close()`, so libraries can call
them unconditionally.
"""

from __future__ import annotations

from typing import Any, Unpack

from errlearn_sdk.client import Client, ClientConfig
from errlearn_sdk.options import SeverityName

_client: Client | None = None


def init(url: str, key: str, service: str, **config: Unpack[ClientConfig]) -> Client:
    """Create the process-wide client (closing a previous one) and return it.

    Args:
        url: base URL of the errlearn server, e.g. `http://127.0.0.1:8090`.
        key: ingest API key.
        service: this service's name.
        **config: sample_rate, environment, release, max_queue, batch_size, flush_interval, spool_dir,
            spool_max_bytes, per_type_limit, ... (see `ClientOptions`).

    Raises:
        ValueError: on unusable options.
    """
    global _client
    client = Client(url, key, service, **config)
    previous, _client = _client, client
    if previous is not None:
        previous.close()
    return client


def get_client() -> Client | None:
    """The client set by `init()`, or None."""
    return _client


def capture_exception(exc: BaseException | None = None, **kwargs: Any) -> bool:
    """`Client.capture_exception` on the process-wide client; False when there is none."""
    client = _client
    try:
        return client.capture_exception(exc, **kwargs) if client is not None else False
    except TypeError:  # a wrong keyword (e.g. two values for `exc`): still never raise into the application
        return False


def capture_message(message: object, severity: SeverityName = "medium", **kwargs: Any) -> bool:
    """`Client.capture_message` on the process-wide client; False when there is none."""
    client = _client
    try:
        return client.capture_message(message, severity, **kwargs) if client is not None else False
    except TypeError:
        return False


def flush(timeout: float = 5.0) -> bool:
    """`Client.flush` on the process-wide client; True when there is nothing to flush."""
    client = _client
    return client.flush(timeout) if client is not None else True


def close(timeout: float | None = None) -> None:
    """Close the process-wide client and forget it."""
    global _client
    client, _client = _client, None
    if client is not None:
        client.close(timeout)


def stats() -> dict[str, int]:
    """`Client.stats` of the process-wide client (empty without one)."""
    client = _client
    return client.stats() if client is not None else {}
