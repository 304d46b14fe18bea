"""What a table change does to traffic: which rows move, to and from which proxies, and
which rows' connections the change could break.

Rows are compared by backend *IP*, never by index: inserting a backend in the middle of
the list renumbers everything after it without moving a single flow, and a diff that
reported that as churn would be useless for reviewing a change. Rows are send orders
(destination first, then the GUE hop list); "primary" is the destination and "secondary"
the first hop, so upstream's two-column tables read as before.

A row is *at risk* when a proxy that holds connections of that row is no longer in its new
send order, so second chance cannot reach it: the old destination (new connections went
there), and the draining proxies right behind it (the send order puts a draining proxy that
ranks before the destination there: it was this row's destination before it drained, and
its connections are finishing; one that ranks lower never took the row's flows, but a send
order does not record ranks, so a draining run behind the destination counts as a whole).
A draining proxy that the change removes or makes inactive is not counted: removing it is
the end of a drain, and its connections are expected to be gone. This is exactly the case
of "more changed candidates than the hop list can carry": with upstream's two columns, a
drain plus a fill in one row already exceeds it; with K candidates far fewer rows do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from glb_agent.table.send_order import two_columns
from glb_agent.table.spec import TABLE_ROWS, Backend, TableSpec
from glb_agent.table.summary import bind_text, table_label


@dataclass(frozen=True)
class Movement:
    """Rows gained and lost by one backend in one column (primary or secondary)."""

    before: int
    after: int
    gained: int
    lost: int

    def as_dict(self) -> dict[str, int]:
        return {"before": self.before, "after": self.after, "gained": self.gained, "lost": self.lost}


@dataclass(frozen=True)
class BackendChange:
    ip: str
    old: Backend | None  # None: added by the change
    new: Backend | None  # None: removed by the change
    primary: Movement
    secondary: Movement

    @property
    def changed(self) -> bool:
        return (
            self.old is None
            or self.new is None
            or (self.old.state, self.old.healthy) != (self.new.state, self.new.healthy)
            or self.primary.gained + self.primary.lost + self.secondary.gained + self.secondary.lost > 0
        )


@dataclass(frozen=True)
class TableDiff:
    index: int
    old: TableSpec
    new: TableSpec
    primary_changed: np.ndarray  # row numbers whose primary IP differs
    secondary_changed: np.ndarray  # row numbers whose secondary IP differs
    backends: tuple[BackendChange, ...]
    at_risk: np.ndarray  # row numbers whose connection holders are not all in the new row
    rows_changed: np.ndarray  # row numbers whose send order (any entry) differs

    @property
    def rows_at_risk(self) -> int:
        return int(self.at_risk.size)

    @property
    def unchanged(self) -> bool:
        return (
            not self.rows_changed.size
            and not self.primary_changed.size
            and not self.secondary_changed.size
            and (self.old.semantics, self.old.candidates) == (self.new.semantics, self.new.candidates)
            and not any(b.changed for b in self.backends)
            and self.old.binds == self.new.binds
            and self.old.hash_key == self.new.hash_key
        )


@dataclass(frozen=True)
class Diff:
    tables: tuple[TableDiff, ...]
    removed_tables: tuple[TableSpec, ...]  # in OLD beyond the length of NEW
    added_tables: tuple[TableSpec, ...]  # in NEW beyond the length of OLD

    @property
    def unchanged(self) -> bool:
        return not self.removed_tables and not self.added_tables and all(t.unchanged for t in self.tables)

    @property
    def rows_at_risk(self) -> int:
        """Rows at risk over every table (tables removed outright are not rows at risk:
        their traffic stops being served at all, which the diff reports separately)."""
        return sum(t.rows_at_risk for t in self.tables)


def _movement(old_col: np.ndarray, new_col: np.ndarray, n: int) -> list[Movement]:
    moved = old_col != new_col
    before = np.bincount(old_col, minlength=n)
    after = np.bincount(new_col, minlength=n)
    gained = np.bincount(new_col[moved], minlength=n)
    lost = np.bincount(old_col[moved], minlength=n)
    return [Movement(int(before[k]), int(after[k]), int(gained[k]), int(lost[k])) for k in range(n)]


def _ip_ids(spec: TableSpec, rows: np.ndarray, key: dict) -> np.ndarray:
    """Rows of backend indices -> rows of IP ids (the padding -1 stays -1)."""
    lookup = np.array([key[b.ip] for b in spec.backends] + [-1], dtype=np.int64)
    arr = np.asarray(rows, dtype=np.int64)
    return lookup[np.where(arr < 0, len(spec.backends), arr)]


def rows_at_risk(old: TableSpec, old_ids: np.ndarray, new: TableSpec, new_ids: np.ndarray,
                 ips: Sequence[object]) -> np.ndarray:
    """Row numbers where a connection holder of the old row is missing from the new one
    (see the module docstring); rows are IP ids as made by ``_ip_ids``."""
    old_by_ip = {b.ip: b for b in old.backends}
    new_by_ip = {b.ip: b for b in new.backends}
    draining = np.zeros(len(ips) + 1, dtype=bool)  # last entry: the padding id -1
    drained_away = np.zeros(len(ips) + 1, dtype=bool)
    for k, ip in enumerate(ips):
        b = old_by_ip.get(ip)
        if b is not None and b.state == "draining":
            draining[k] = True
            nb = new_by_ip.get(ip)
            drained_away[k] = nb is None or nb.state == "inactive"
    risk = np.zeros(old_ids.shape[0], dtype=bool)
    run = np.ones(old_ids.shape[0], dtype=bool)  # still in the run of draining right behind entry 0
    for j in range(old_ids.shape[1]):
        ids = old_ids[:, j]
        if j:
            run &= draining[ids]
        holder = (ids >= 0) & ~drained_away[ids] & run
        present = (new_ids == ids[:, None]).any(axis=1)
        risk |= holder & ~present
    return np.flatnonzero(risk)


def diff_table(
    old: TableSpec, old_rows: np.ndarray, new: TableSpec, new_rows: np.ndarray, index: int = 0
) -> TableDiff:
    """Compare one table before and after; rows are send orders, (65536, W) backend indices."""
    ips = list(dict.fromkeys([b.ip for b in old.backends] + [b.ip for b in new.backends]))
    key = {ip: k for k, ip in enumerate(ips)}
    old_ids, new_ids = _ip_ids(old, old_rows, key), _ip_ids(new, new_rows, key)
    old2, new2 = two_columns(old_ids), two_columns(new_ids)
    primary = _movement(old2[:, 0], new2[:, 0], len(ips))
    secondary = _movement(old2[:, 1], new2[:, 1], len(ips))
    old_by_ip = {b.ip: b for b in old.backends}
    new_by_ip = {b.ip: b for b in new.backends}
    backends = tuple(
        BackendChange(str(ip), old_by_ip.get(ip), new_by_ip.get(ip), primary[k], secondary[k])
        for k, ip in enumerate(ips)
    )
    width = max(old_ids.shape[1], new_ids.shape[1])
    pad_old = np.pad(old_ids, ((0, 0), (0, width - old_ids.shape[1])), constant_values=-1)
    pad_new = np.pad(new_ids, ((0, 0), (0, width - new_ids.shape[1])), constant_values=-1)
    return TableDiff(
        index=index,
        old=old,
        new=new,
        primary_changed=np.flatnonzero(old2[:, 0] != new2[:, 0]),
        secondary_changed=np.flatnonzero(old2[:, 1] != new2[:, 1]),
        backends=backends,
        at_risk=rows_at_risk(old, old_ids, new, new_ids, ips),
        rows_changed=np.flatnonzero((pad_old != pad_new).any(axis=1)),
    )


def diff_tables(
    old_specs: Sequence[TableSpec],
    old_rows: Sequence[np.ndarray],
    new_specs: Sequence[TableSpec],
    new_rows: Sequence[np.ndarray],
) -> Diff:
    """Pair tables by position, which is how directors identify them (binds map to an index)."""
    common = min(len(old_specs), len(new_specs))
    tables = tuple(diff_table(old_specs[i], old_rows[i], new_specs[i], new_rows[i], i) for i in range(common))
    return Diff(tables, tuple(old_specs[common:]), tuple(new_specs[common:]))


def _pct(n: int) -> str:
    return f"{100 * n / TABLE_ROWS:.2f}%"


def _backend_json(b: Backend | None) -> dict[str, Any] | None:
    return None if b is None else {"state": b.state, "healthy": b.healthy}


def to_json(diff: Diff) -> dict[str, Any]:
    tables = []
    for t in diff.tables:
        old_binds = [bind_text(b) for b in t.old.binds]
        new_binds = [bind_text(b) for b in t.new.binds]
        tables.append(
            {
                "index": t.index,
                "old_name": t.old.name,
                "new_name": t.new.name,
                "rows": TABLE_ROWS,
                "primary_changed": int(t.primary_changed.size),
                "secondary_changed": int(t.secondary_changed.size),
                "rows_changed": int(t.rows_changed.size),
                "rows_at_risk": t.rows_at_risk,
                "rows_at_risk_share": round(t.rows_at_risk / TABLE_ROWS, 6),
                "semantics": {"old": _semantics(t.old), "new": _semantics(t.new)},
                "hash_key_changed": t.old.hash_key != t.new.hash_key,
                "binds_added": [b for b in new_binds if b not in old_binds],
                "binds_removed": [b for b in old_binds if b not in new_binds],
                "backends": [
                    {
                        "ip": b.ip,
                        "old": _backend_json(b.old),
                        "new": _backend_json(b.new),
                        "primary": b.primary.as_dict(),
                        "secondary": b.secondary.as_dict(),
                    }
                    for b in t.backends
                ],
            }
        )
    return {
        "unchanged": diff.unchanged,
        "rows_at_risk": diff.rows_at_risk,
        "tables": tables,
        "tables_removed": [s.name or f"#{len(diff.tables) + i}" for i, s in enumerate(diff.removed_tables)],
        "tables_added": [s.name or f"#{len(diff.tables) + i}" for i, s in enumerate(diff.added_tables)],
    }


def _semantics(spec: TableSpec) -> str:
    return "upstream" if spec.semantics == "upstream" else f"candidates K={spec.candidates}"


def _state(b: Backend) -> str:
    return f"{b.state}, {'healthy' if b.healthy else 'unhealthy'}"


def render_text(diff: Diff) -> str:
    lines: list[str] = []
    for t in diff.tables:
        # Binary tables carry no names: label with whichever side has one.
        label = table_label(t.new if t.new.name else t.old, t.index)
        if t.old.name and t.new.name and t.old.name != t.new.name:
            label += f" (was {t.old.name!r})"
        p, s = int(t.primary_changed.size), int(t.secondary_changed.size)
        lines.append(
            f"{label}: primary changed in {p} of {TABLE_ROWS} rows ({_pct(p)}), secondary in {s} ({_pct(s)})"
        )
        risk = t.rows_at_risk
        lines.append(
            f"  rows at risk: {risk} of {TABLE_ROWS} ({_pct(risk)})"
            + (": a proxy holding their connections leaves the row (second chance cannot reach it)"
               if risk else "")
        )
        if _semantics(t.old) != _semantics(t.new):
            lines.append(f"  row semantics: {_semantics(t.old)} -> {_semantics(t.new)}")
        if t.old.hash_key != t.new.hash_key:
            lines.append("  hash_key changed: every flow is rehashed to a different row")
        old_binds = {bind_text(b) for b in t.old.binds}
        new_binds = {bind_text(b) for b in t.new.binds}
        lines.extend(f"  + bind {b}" for b in sorted(new_binds - old_binds))
        lines.extend(f"  - bind {b}" for b in sorted(old_binds - new_binds))
        for b in t.backends:
            if not b.changed:
                continue
            if b.old is None:
                what = f"+ {b.ip} added ({_state(b.new)})"  # type: ignore[arg-type]
            elif b.new is None:
                what = f"- {b.ip} removed (was {_state(b.old)})"
            elif (b.old.state, b.old.healthy) != (b.new.state, b.new.healthy):
                what = f"~ {b.ip} {_state(b.old)} -> {_state(b.new)}"
            else:
                what = f"  {b.ip}"
            lines.append(
                f"  {what}: primary {b.primary.before} -> {b.primary.after} "
                f"(+{b.primary.gained} -{b.primary.lost}), "
                f"secondary {b.secondary.before} -> {b.secondary.after} "
                f"(+{b.secondary.gained} -{b.secondary.lost})"
            )
    for i, spec in enumerate(diff.removed_tables):
        lines.append(f"- {table_label(spec, len(diff.tables) + i)} removed")
    for i, spec in enumerate(diff.added_tables):
        lines.append(f"+ {table_label(spec, len(diff.tables) + i)} added")
    if diff.unchanged:
        lines.append("no changes")
    return "\n".join(lines)
