"""Messages from Jinja2 templates: `{name}.subject.txt`, `{name}.txt` (plain text) and `{name}.html`,
branded per issuer. AUTHPI_EMAIL_TEMPLATES_DIR overrides the built-in templates file by file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

BUILT_IN = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=8)
def _environments(override: str | None) -> tuple[Environment, Environment]:
    dirs = ([override] if override else []) + [str(BUILT_IN)]
    loader = ChoiceLoader([FileSystemLoader(d) for d in dirs])
    text = Environment(loader=loader, autoescape=False, undefined=StrictUndefined,
                       keep_trailing_newline=True)
    html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined)
    return text, html


def render_email(name: str, context: dict[str, Any], templates_dir: Path | None = None) -> Rendered:
    text_env, html_env = _environments(str(templates_dir) if templates_dir else None)
    subject = text_env.get_template(f"{name}.subject.txt").render(**context)
    return Rendered(subject=" ".join(subject.split())[:250],
                    text=text_env.get_template(f"{name}.txt").render(**context),
                    html=html_env.get_template(f"{name}.html").render(**context))
