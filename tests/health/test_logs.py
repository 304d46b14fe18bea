"""Structured logs: one JSON object per line; journald priority prefix only on the journal."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import os
import tempfile

import pytest

from glb_agent import logs


def test_one_json_object_per_line_with_fields() -> None:
    buf = io.StringIO()
    logs.setup(logging.INFO, stream=buf)
    log = logs.get("health")
    logs.event(log, "backend_down", logging.WARNING, service="web",
               backend=ipaddress.IPv4Address("198.18.0.21"), detail="a\nb", event="shadowed")
    logs.event(log, "debug_only", logging.DEBUG, x=1)  # below the level: not written
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["event"] == "backend_down" and first["level"] == "warning"
    assert first["logger"] == "glb_agent.health" and first["ts"].endswith("Z")
    assert first["backend"] == "198.18.0.21" and first["detail"] == "a\nb"
    assert first["field_event"] == "shadowed"  # a field never overwrites the event name
    second = json.loads(lines[1])
    assert second["event"] == "failed" and "ValueError: boom" in second["exception"]


def test_syslog_priority_prefix_only_when_stderr_is_the_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryFile("w+") as fh:
        st = os.fstat(fh.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.stderr_is_journal(fh)
        logs.setup(logging.INFO, stream=fh)
        logs.event(logs.get("x"), "hello", logging.ERROR)
        fh.seek(0)
        line = fh.read().strip()
        assert line.startswith("<3>{") and json.loads(line[3:])["event"] == "hello"
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")
        assert not logs.stderr_is_journal(fh)
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not logs.stderr_is_journal(io.StringIO())
