"""Versioned prompt templates: `prompts/<agent>/<part>.v<N>.md.j2`, rendered with Jinja2.

A released version is never edited: add `v<N+1>` and compare both on the eval suite. Partials (files whose name
starts with `_`) are pulled in with `{% include "<agent>/_<name>.v<N>.md.j2" %}`; they cannot be rendered on their
own. Rendering is strict: a variable the template uses but the caller did not pass raises `MissingPromptVariable`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

_AGENT_DIR = Path(__file__).resolve().parent.parent  # the `agent` package
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # no leading "_": partials are not rendered directly
_FILE = re.compile(r"(?P<part>[A-Za-z0-9_][A-Za-z0-9_-]*)\.v(?P<version>[1-9][0-9]*)\.md\.j2")


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered prompt and the identity of the template that produced it.

    Attributes:
        name: `<agent>/<part>`.
        version: the template version that was rendered.
        sha256: hash of the template source and every partial it includes (not of `text`): the same for every
            render of one version, and different if anyone edits the template or a partial it uses. Store it with
            each draft so results can be traced to the exact prompt.
        text: the rendered prompt.
    """

    name: str
    version: int
    sha256: str
    text: str


class PromptNotFound(LookupError):
    """No such prompt, version or prompt folder."""


class MissingPromptVariable(ValueError):
    """The template uses a variable the caller did not pass."""


def default_prompts_root() -> Path:
    """The packaged `agent/_prompts` (wheel install) or the source tree's `prompts/` folder."""
    for candidate in (_AGENT_DIR / "_prompts", _AGENT_DIR.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise PromptNotFound(
        f"no prompts folder: neither {_AGENT_DIR / '_prompts'} (installed wheel) nor "
        f"{_AGENT_DIR.parent / 'prompts'} (source checkout) exists"
    )


class PromptLibrary:
    """Finds, renders and hashes versioned prompt templates under one root folder."""

    def __init__(self, root: Path | None = None) -> None:
        """Open the library.

        Args:
            root: the folder holding `<agent>/` subfolders; default `default_prompts_root()`.
        """
        self.root = Path(root) if root is not None else default_prompts_root()
        if not self.root.is_dir():
            raise PromptNotFound(f"prompts folder {self.root} does not exist")
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.root),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # prompts are Markdown for a model, not HTML
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def versions(self, agent: str, part: str) -> list[int]:
        """The versions of `<agent>/<part>` that exist, oldest first (empty if none)."""
        _check_name(agent, _NAME, "agent")
        _check_name(part, _PART, "part")
        folder = self.root / agent
        if not folder.is_dir():
            return []
        found = []
        for path in folder.iterdir():
            match = _FILE.fullmatch(path.name)
            if match and match["part"] == part and path.is_file():
                found.append(int(match["version"]))
        return sorted(found)

    def render(self, agent: str, part: str, *, version: int | None = None, **variables: Any) -> RenderedPrompt:
        """Render one prompt.

        Args:
            agent: the prompt folder, e.g. `diagnosis`.
            part: e.g. `system` or `user`.
            version: which version; None renders the latest.
            **variables: the template's variables; all it uses must be given.

        Raises:
            PromptNotFound: no such prompt or version.
            MissingPromptVariable: the template uses a variable that was not passed.
        """
        available = self.versions(agent, part)
        if not available:
            raise PromptNotFound(f"no prompt {agent}/{part}.v<N>.md.j2 under {self.root}")
        chosen = available[-1] if version is None else version
        if chosen not in available:
            raise PromptNotFound(f"{agent}/{part} has no version {chosen} (available: {available})")
        template_name = f"{agent}/{part}.v{chosen}.md.j2"
        # Hash first: it also checks that every partial exists, so a missing one is a PromptNotFound.
        sha256 = self._template_hash(template_name)
        try:
            text = self._env.get_template(template_name).render(**variables)
        except jinja2.UndefinedError as exc:
            raise MissingPromptVariable(f"{template_name}: {exc.message}") from exc
        return RenderedPrompt(name=f"{agent}/{part}", version=chosen, sha256=sha256, text=text)

    def _template_hash(self, template_name: str) -> str:
        # Not cached: templates are small, and a cache would go stale if a file changed under a running service.
        digest = hashlib.sha256()
        for name in sorted(self._closure(template_name)):
            source = self._source(name)
            digest.update(f"{name}\0{len(source)}\0".encode())
            digest.update(source.encode())
        return digest.hexdigest()

    def _closure(self, template_name: str) -> set[str]:
        """The template and every template it includes, imports or extends, transitively."""
        seen: set[str] = set()
        pending = [template_name]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            for referenced in jinja2.meta.find_referenced_templates(self._env.parse(self._source(name))):
                if referenced is None:
                    # A computed name would make the hash depend on the variables; keep prompts traceable.
                    raise ValueError(f"{name}: include/import template names must be string literals")
                pending.append(referenced)
        return seen

    def _source(self, template_name: str) -> str:
        loader = self._env.loader
        assert loader is not None
        try:
            source, _, _ = loader.get_source(self._env, template_name)
        except jinja2.TemplateNotFound as exc:
            raise PromptNotFound(f"template {template_name} not found under {self.root}") from exc
        return source


def _check_name(value: str, pattern: re.Pattern[str], what: str) -> None:
    # Names become paths: refuse separators and "..", so a caller cannot read files outside the root.
    if not pattern.fullmatch(value):
        raise PromptNotFound(f"invalid prompt {what} name {value!r}")
