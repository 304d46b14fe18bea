"""docs/config-reference.md must match the models it documents."""

from __future__ import annotations

from pathlib import Path

from glb_agent.config.docgen import reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"


def test_reference_doc_is_generated_from_current_models() -> None:
    assert DOC.read_text() == reference_markdown(), (
        "docs/config-reference.md is stale: run `glb-agent config-reference > docs/config-reference.md`"
    )


def test_reference_documents_every_section() -> None:
    text = reference_markdown()
    for section in ("## Fleet", "## Bgp", "## Director", "## Proxy", "## Service", "## ServiceBackend",
                    "## HealthCheck", "## PortRange"):
        assert section in text
