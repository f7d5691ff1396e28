"""errlearn's capture SDK: report a service's errors to an errlearn server at negligible cost.

Standard library only (orjson is used when installed). `pip install errlearn-sdk` (from `sdk/python/`).

    import errlearn_sdk as sdk

    sdk.init("http://127.0.0.1:8090", key="...", service="billing")
    try:
        charge()
    except Exception:
        sdk.capture_exception()

See docs/sdk.md.
"""

from errlearn_sdk._version import __version__
from errlearn_sdk.api import capture_exception, capture_message, close, flush, get_client, init, stats
from errlearn_sdk.client import Client, ClientConfig
from errlearn_sdk.integrations import ErrlearnHandler, ErrlearnMiddleware, install_excepthooks
from errlearn_sdk.options import ClientOptions, default_spool_dir

__all__ = [
    "Client",
    "ClientConfig",
    "ClientOptions",
    "ErrlearnHandler",
    "ErrlearnMiddleware",
    "__version__",
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
