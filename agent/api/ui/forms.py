"""HTML form bodies (`application/x-www-form-urlencoded`), parsed without python-multipart.

The UI's forms carry short text only (no uploads), so the standard library's parser is enough and the
app needs no extra dependency. The body size is already bounded by `BodyLimitMiddleware`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FIELDS = 100
FORM_TYPE = "application/x-www-form-urlencoded"


class Form(dict[str, str]):
    """Field name → value (the last one when a name repeats)."""

    def text(self, name: str, limit: int = 2000) -> str:
        """A field's value, stripped and cut to `limit` characters ('' when absent)."""
        return self.get(name, "").strip()[:limit]

    def lines(self, name: str, limit: int = 1000) -> list[str]:
        """A textarea holding one item per line, as a list of non-empty lines."""
        return [line.strip()[:limit] for line in self.get(name, "").splitlines() if line.strip()]


async def read_form(request: Request) -> Form:
    """The request's form fields (parsed once per request; empty for other content types)."""
    cached = getattr(request.state, "ui_form", None)
    if isinstance(cached, Form):
        return cached
    form = Form()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method not in ("GET", "HEAD") and content_type == FORM_TYPE:
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
        except (UnicodeDecodeError, ValueError):
            pairs = []  # a mangled body is treated as an empty form: the CSRF check refuses it
        form.update(pairs)
    request.state.ui_form = form
    return form
