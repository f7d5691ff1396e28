"""Deprecated: `agent.sdk` is now the separate distribution `errlearn-sdk` (`import errlearn_sdk`).

This thin re-export stays for one release (errlearn 0.2 removes it). Install the SDK alone with
`pip install ./sdk/python` and write `import errlearn_sdk as sdk`; the names are the same.
"""

import warnings

from errlearn_sdk import (
    Client,
    ClientConfig,
    ClientOptions,
    ErrlearnHandler,
    ErrlearnMiddleware,
    __version__,
    capture_exception,
    capture_message,
    close,
    default_spool_dir,
    flush,
    get_client,
    init,
    install_excepthooks,
    stats,
)

warnings.warn(
    "agent.sdk is deprecated: install errlearn-sdk (sdk/python) and import errlearn_sdk instead",
    DeprecationWarning,
    stacklevel=2,
)

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
