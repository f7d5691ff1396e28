"""errlearn's capture SDK: report a service's errors to an errlearn server at negligible cost.

    from agent import sdk

    sdk.init("http://127.0.0.1:8090", key="...", service="billing")
    try:
        charge()
    except Exception:
        sdk.capture_exception()

See docs/sdk.md.
"""

from agent.sdk.api import capture_exception, capture_message, close, flush, get_client, init, stats
from agent.sdk.client import Client, ClientConfig
from agent.sdk.integrations import ErrlearnHandler, ErrlearnMiddleware, install_excepthooks
from agent.sdk.options import ClientOptions, default_spool_dir

__all__ = [
    "Client",
    "ClientConfig",
    "ClientOptions",
    "ErrlearnHandler",
    "ErrlearnMiddleware",
    "capture_exception",
    "capture_message",
    "close",
    "default_spool_dir",
    "flush",
    "get_client",
    "init",
    "install_excepthooks",
    "stats",
]
