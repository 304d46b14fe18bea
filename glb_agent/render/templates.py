"""The jinja2 environment shared by every renderer (strict: a missing variable is a bug)."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("glb_agent", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # JSON and config files, not HTML
    )


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
