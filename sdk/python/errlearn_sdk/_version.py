"""The SDK's own version (released apart from the server; `errlearn_sdk.__version__`)."""

__version__ = "0.1.0"
