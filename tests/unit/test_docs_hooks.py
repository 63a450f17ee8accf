"""The docs site's build hooks (scripts/mkdocs_hooks.py): the configuration table is generated from the
Settings class and can't miss or invent a setting; pages of other branches are wired into the nav."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
assert _spec
assert _spec.loader
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)


def _rows(table: str) -> dict[str, list[str]]:
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = cells
    return rows


def test_every_setting_has_a_row_with_its_variable_type_default_and_description() -> None:
    rows = _rows(hooks.settings_table())
    assert list(rows) == list(Settings.model_fields)
    for name, info in Settings.model_fields.items():
        _, env, kind, default, description = rows[name]
        assert env == f"`TIERWISE_{name.upper()}`"
        assert kind
        assert default
        assert info.description
        assert description == " ".join(info.description.split()).replace("|", "\\|")
    assert rows["port"][2:4] == ["integer", "`8000`"]
    assert rows["database_url"][2:4] == ["string (optional)", "unset"]
    assert rows["environment"][2] == "one of `development`, `production`"
    assert rows["sla_escalate_critical_at"][2] == "number, > 0, ≤ 1"
    assert rows["rate_limit_enabled"][3] == "`true`"
    # a secret's default is never printed
    assert "tierwise-development-secret" not in hooks.settings_table()


def test_a_setting_without_a_description_fails_the_build() -> None:
    class Partial(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_")
        documented: int = Field(default=1, description="has one")
        forgotten: int = 2

    with pytest.raises(PluginError, match=r"Partial\.forgotten has no description"):
        hooks.settings_table(Partial)


def test_the_configuration_page_holds_the_generated_table() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert hooks.SETTINGS_MARKER in page
    rendered = hooks.on_page_markdown(page, None, None, None)
    assert hooks.SETTINGS_MARKER not in rendered
    assert all(f"`TIERWISE_{name.upper()}`" in rendered for name in Settings.model_fields)


def test_pages_of_other_branches_and_benchmark_results_join_the_nav(tmp_path: Path) -> None:
    (tmp_path / "sec-partner.md").write_text("# Partner scope\n")
    (tmp_path / "sec-edge.md").write_text("# The edge\n")
    nav = [
        {"Home": "index.md"},
        {"Security": ["security/access-control.md"]},
        {"Rules": []},
        {"Benchmarks": [{"Overview": "benchmarks.md"}]},
    ]
    config = SimpleNamespace(docs_dir=str(tmp_path), nav=nav)
    hooks.on_config(config)
    results = sorted(p.name for p in (ROOT / "bench" / "results").glob("*.md"))
    assert results
    assert config.nav == [
        {"Home": "index.md"},
        {"Security": ["security/access-control.md", "sec-edge.md", "sec-partner.md"]},
        {"Benchmarks": [{"Overview": "benchmarks.md"}, *(f"benchmarks/{r}" for r in results)]},
    ]
    (tmp_path / "rules.md").write_text("# Rules\n")
    config = SimpleNamespace(docs_dir=str(tmp_path), nav=[{"Rules": []}])
    hooks.on_config(config)
    assert config.nav == [{"Rules": ["rules.md"]}]
