"""Versioned prompt loading: latest version, strict variables, stable hashes, partials."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.llm import prompts
from agent.llm.prompts import MissingPromptVariable, PromptLibrary, PromptNotFound


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def library(tmp_path: Path) -> PromptLibrary:
    _write(tmp_path, "diag/system.v1.md.j2", "v1 for {{ service }}\n")
    _write(tmp_path, "diag/system.v2.md.j2", 'v2 for {{ service }}\n{% include "diag/_rules.v1.md.j2" %}')
    _write(tmp_path, "diag/_rules.v1.md.j2", "Answer in at most {{ limit }} words.\n")
    _write(tmp_path, "diag/user.v1.md.j2", "{% for line in lines %}- {{ line }}\n{% endfor %}")
    return PromptLibrary(tmp_path)


def test_latest_version_is_rendered_by_default(library: PromptLibrary) -> None:
    rendered = library.render("diag", "system", service="billing", limit=50)

    assert rendered.name == "diag/system"
    assert rendered.version == 2
    assert rendered.text.startswith("v2 for billing\n")


def test_explicit_version(library: PromptLibrary) -> None:
    rendered = library.render("diag", "system", version=1, service="billing")

    assert (rendered.version, rendered.text) == (1, "v1 for billing\n")


def test_versions_sort_numerically(tmp_path: Path) -> None:
    for version in (2, 10, 9):
        _write(tmp_path, f"a/p.v{version}.md.j2", f"version {version}")
    _write(tmp_path, "a/other.v11.md.j2", "another part")
    library = PromptLibrary(tmp_path)

    assert library.versions("a", "p") == [2, 9, 10]
    assert library.render("a", "p").text == "version 10"


def test_partial_is_included(library: PromptLibrary) -> None:
    rendered = library.render("diag", "system", service="billing", limit=50)

    assert "Answer in at most 50 words." in rendered.text


def test_missing_variable_raises(library: PromptLibrary) -> None:
    with pytest.raises(MissingPromptVariable, match="service"):
        library.render("diag", "system", version=1)


def test_missing_variable_inside_partial_raises(library: PromptLibrary) -> None:
    with pytest.raises(MissingPromptVariable, match="limit"):
        library.render("diag", "system", service="billing")


def test_loops_and_trailing_newline(library: PromptLibrary) -> None:
    assert library.render("diag", "user", lines=["a", "b"]).text == "- a\n- b\n"


def test_hash_is_stable_and_independent_of_variables(library: PromptLibrary, tmp_path: Path) -> None:
    first = library.render("diag", "system", service="billing", limit=50)
    second = library.render("diag", "system", service="search", limit=10)
    reopened = PromptLibrary(tmp_path).render("diag", "system", service="billing", limit=50)

    assert len(first.sha256) == 64
    assert int(first.sha256, 16) >= 0
    assert first.sha256 == second.sha256 == reopened.sha256
    assert first.sha256 != library.render("diag", "system", version=1, service="billing").sha256


def test_editing_a_partial_changes_the_hash(library: PromptLibrary, tmp_path: Path) -> None:
    before = library.render("diag", "system", service="s", limit=1).sha256
    _write(tmp_path, "diag/_rules.v1.md.j2", "Answer in at most {{ limit }} short words.\n")

    after = library.render("diag", "system", service="s", limit=1)

    assert after.sha256 != before
    assert "short words" in after.text


def test_unknown_prompt_and_version(library: PromptLibrary) -> None:
    with pytest.raises(PromptNotFound, match="nothing/system"):
        library.render("nothing", "system")
    with pytest.raises(PromptNotFound, match=r"available: \[1, 2\]"):
        library.render("diag", "system", version=7, service="s")
    assert library.versions("nothing", "system") == []


@pytest.mark.parametrize(("agent", "part"), [("..", "system"), ("diag", "../diag/system"), ("diag", "_rules")])
def test_paths_outside_the_library_and_partials_are_refused(library: PromptLibrary, agent: str, part: str) -> None:
    with pytest.raises(PromptNotFound, match="invalid prompt"):
        library.render(agent, part, service="s", limit=1)


def test_missing_partial_is_prompt_not_found(tmp_path: Path) -> None:
    _write(tmp_path, "a/p.v1.md.j2", '{% include "a/_gone.v1.md.j2" %}')

    with pytest.raises(PromptNotFound, match="_gone"):
        PromptLibrary(tmp_path).render("a", "p")


def test_computed_include_names_are_refused(tmp_path: Path) -> None:
    # The hash must not depend on variables, so every included template must be named literally.
    _write(tmp_path, "a/p.v1.md.j2", "{% include which %}")
    _write(tmp_path, "a/_x.v1.md.j2", "x")

    with pytest.raises(ValueError, match="string literals"):
        PromptLibrary(tmp_path).render("a", "p", which="a/_x.v1.md.j2")


def test_missing_root_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PromptNotFound, match="does not exist"):
        PromptLibrary(tmp_path / "absent")


def test_default_root_is_the_repository_prompts_folder() -> None:
    library = PromptLibrary()

    assert library.root == Path(__file__).resolve().parent.parent / "prompts"
    rendered = library.render("_example", "greeting", name="Ada", tone="friendly")
    assert rendered.version == 2
    assert rendered.text == "You are errlearn's example prompt. Greet Ada in one sentence.\nKeep a friendly tone.\n"
    # `default` works under StrictUndefined, so templates can still declare optional variables.
    assert library.render("_example", "greeting", name="Ada").text.endswith("Keep a plain tone.\n")


def test_installed_wheel_layout_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyproject force-includes prompts/ as agent/_prompts in the wheel.
    fake_package = tmp_path / "site-packages" / "agent"
    _write(fake_package, "_prompts/a/p.v1.md.j2", "packaged")
    monkeypatch.setattr(prompts, "_AGENT_DIR", fake_package)

    assert PromptLibrary().render("a", "p").text == "packaged"


def test_no_prompts_folder_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts, "_AGENT_DIR", tmp_path / "agent")

    with pytest.raises(PromptNotFound, match="no prompts folder"):
        PromptLibrary()
