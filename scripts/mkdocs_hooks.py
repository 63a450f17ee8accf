"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``), run at build time.

- ``<!-- settings-table -->`` in a page becomes the configuration table, generated from the pydantic fields of
  ``infra.settings.Settings`` (name, environment variable, type, default, description), so it can't drift from
  the code. A field without a description fails the build.
- Each ``bench/results/*.md`` (written by the benchmarks) becomes a page ``benchmarks/<name>.md``, listed
  under "Benchmarks" in the nav.
- Pages other branches add as ``docs/sec-*.md`` and ``docs/rules*.md`` are put into the nav's "Security" and
  "Rules" sections by themselves; a section with no page is left out.
"""

from __future__ import annotations

import enum
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any

import annotated_types
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

SETTINGS_MARKER = "<!-- settings-table -->"
# nav section -> the docs/ files (glob) it collects, after the pages it lists itself
AUTO_SECTIONS = {"Security": "sec-*.md", "Rules": "rules*.md"}
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
RESULTS_SECTION = "Benchmarks"

_TYPE_NAMES: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    Decimal: "decimal",
    Path: "path",
    SecretStr: "secret string",
}


def _type(annotation: Any, info: FieldInfo) -> str:
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        [annotation] = [a for a in args if a is not type(None)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        text = "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    elif annotation in _TYPE_NAMES:
        text = _TYPE_NAMES[annotation]
    else:
        raise PluginError(f"settings table: no name for the type {annotation!r}; add it to _TYPE_NAMES")
    bounds = {
        annotated_types.Ge: ("≥", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("≤", "le"),
        annotated_types.Lt: ("<", "lt"),
    }
    for constraint in info.metadata:
        for kind, (sign, attribute) in bounds.items():
            if isinstance(constraint, kind):
                text += f", {sign} {getattr(constraint, attribute)}"
    return text + (" (optional)" if optional else "")


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "a development value (refused in production)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    return f"`{value}`"


def _env_names(name: str, info: FieldInfo, prefix: str) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, str):
        return [alias.upper()]
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices]
    return [f"{prefix}{name}".upper()]


def settings_table(settings: type[BaseSettings] | None = None) -> str:
    """The Markdown table of every setting (of ``infra.settings.Settings`` by default), in the order of the class."""
    if settings is None:
        from infra.settings import Settings

        settings = Settings
    prefix = settings.model_config.get("env_prefix", "")
    rows = [
        "| setting | environment variable | type | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, info in settings.model_fields.items():
        if not info.description:
            raise PluginError(
                f"{settings.__name__}.{name} has no description: give it Field(description=...) in infra/settings.py "
                "(the configuration page is generated from it)"
            )
        env = "<br>".join(f"`{n}`" for n in _env_names(name, info, prefix))
        description = " ".join(info.description.split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {env} | {_type(info.annotation, info)} | {_default(info.default)} | {description} |")
    return "\n".join(rows) + "\n"


def _results() -> list[Path]:
    return sorted(RESULTS.glob("*.md"))


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    docs = Path(config.docs_dir)
    nav: list[Any] = config.nav or []
    sections = {
        section: sorted(p.relative_to(docs).as_posix() for p in docs.glob(pattern))
        for section, pattern in AUTO_SECTIONS.items()
    }
    sections[RESULTS_SECTION] = [f"benchmarks/{p.name}" for p in _results()]
    for section, found in sections.items():
        for i, entry in enumerate(list(nav)):
            if isinstance(entry, dict) and section in entry:
                pages = list(entry[section] or [])
                listed = {p if isinstance(p, str) else next(iter(p.values())) for p in pages}
                pages += [f for f in found if f not in listed]
                if pages:
                    nav[i] = {section: pages}
                else:
                    nav.remove(entry)
                break
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for result in _results():
        files.append(File.generated(config, f"benchmarks/{result.name}", abs_src_path=str(result)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if SETTINGS_MARKER in markdown:
        return markdown.replace(SETTINGS_MARKER, settings_table())
    return markdown
