"""The differential loop: generate, predict, run, compare; count; explain mismatches.

A *target* bundles a generator (``make(seed, index) -> (category, frame, mutations)``), a
model (``decide(frame) -> Outcome``) and a *runner*, the data plane under test. A runner is
anything with ``run(frame) -> (verdict, bytes)`` and ``counters() -> dict[str, int]``: today
the XDP programs under BPF_PROG_TEST_RUN (tests/fuzz/env.py); a DPDK director can plug in
the same way and be compared with the same model or with the XDP runner's bytes.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from tests.fuzz.model import VERDICT_NAMES, Outcome


class Runner(Protocol):
    """A data plane that can be handed one frame at a time."""

    def run(self, frame: bytes) -> tuple[int, bytes]:
        """Verdict (XDP action number) and the frame as it leaves."""

    def counters(self) -> dict[str, int]:
        """Cumulative counters, flat: name -> value (only differences are compared)."""


class Generator(Protocol):
    def make(self, seed: int, index: int) -> tuple[str, bytes, list[str]]: ...


class Model(Protocol):
    def decide(self, frame: bytes) -> Outcome: ...


@dataclass
class Target:
    """One program under test with its generator, model and counter mapping."""

    name: str
    gen: Generator
    model: Model
    runner: Runner
    expect: Callable[[Outcome], Iterable[tuple[str, int]]]  # counter increments of an outcome
    # Entered around every batch of runs: the proxy's lookups need the calling thread in its
    # namespace, and only while the fuzzer runs (pytest runs other tests in between).
    scope: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext


@dataclass
class Mismatch:
    target: str
    seed: int
    index: int
    category: str
    mutations: list[str]
    frame: bytes
    expected: Outcome
    actual: tuple[int, bytes]
    what: str  # "verdict/bytes" or "counters"
    detail: str = ""

    def report(self) -> str:
        v, b = self.actual
        lines = [
            f"MISMATCH ({self.what}) {self.target} seed={self.seed} index={self.index} category={self.category} "
            f"mutations={','.join(self.mutations) or '-'}",
            f"  frame    ({len(self.frame)}): {self.frame.hex()}",
            f"  expected ({len(self.expected.frame)}): {self.expected.describe()}",
            f"  actual   ({len(b)}): {VERDICT_NAMES.get(v, v)} {b.hex()}",
        ]
        if self.detail:
            lines.append(f"  {self.detail}")
        lines.append(f"  reproduce: python -m tests.fuzz run {self.target} --seed {self.seed} --index {self.index}")
        return "\n".join(lines)


@dataclass
class Result:
    target: str
    seed: int
    start: int
    packets: int = 0
    seconds: float = 0.0
    categories: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)  # "VERDICT group/reason"
    mutations: Counter = field(default_factory=Counter)
    mismatches: list[Mismatch] = field(default_factory=list)
    mismatch_count: int = 0

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        out = [f"{self.target}: {self.packets} packets (seed {self.seed}, from index {self.start}) in "
               f"{self.seconds:.1f} s = {self.pps:.0f} packets/s, {self.mismatch_count} mismatches"]
        out.append("  categories: " + ", ".join(f"{k} {v}" for k, v in sorted(self.categories.items())))
        out.append("  outcomes:   " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))
        out.append("  mutated:    " + ", ".join(f"{k} {v}" for k, v in sorted(self.mutations.items())))
        return "\n".join(out)


def _delta(before: dict[str, int], after: dict[str, int]) -> Counter:
    return Counter({k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)})


def fuzz(target: Target, seed: int, count: int, *, start: int = 0, chunk: int = 2048, keep: int = 20,
         progress: Callable[[str], None] | None = None) -> Result:
    """Run packets ``start .. start+count`` of ``seed`` through ``target``; compare each verdict and
    output frame with the model, and the counters per chunk (a chunk whose counters disagree is
    replayed packet by packet to name the packet). Keeps the first ``keep`` mismatches."""
    res = Result(target.name, seed, start)
    t0 = time.perf_counter()
    last = t0
    end = start + count
    for base in range(start, end, chunk):
        with target.scope():
            _chunk(target, seed, base, min(base + chunk, end), res, keep)
        now = time.perf_counter()
        if progress and now - last > 10:
            last = now
            progress(f"{target.name}: {res.packets}/{count} packets, {res.packets / (now - t0):.0f}/s, "
                     f"{res.mismatch_count} mismatches")
    res.seconds = time.perf_counter() - t0
    return res


def _chunk(target: Target, seed: int, base: int, stop: int, res: Result, keep: int) -> None:
    """Packets ``base .. stop``: each compared, then the chunk's counters as a whole."""
    gen, model, runner = target.gen, target.model, target.runner
    before = runner.counters()
    want_counts: Counter = Counter()
    bad: set[int] = set()
    for i in range(base, stop):
        cat, frame, muts = gen.make(seed, i)
        want = model.decide(frame)
        got = runner.run(frame)
        res.categories[cat] += 1
        for m in muts:
            res.mutations[m] += 1
        res.outcomes[f"{VERDICT_NAMES.get(want.verdict)} {want.group + '/' if want.group else ''}{want.reason}"] += 1
        for k, v in target.expect(want):
            want_counts[k] += v
        if got[0] != want.verdict or got[1] != want.frame:
            bad.add(i)
            _record(res, Mismatch(target.name, seed, i, cat, muts, frame, want, got, "verdict/bytes"), keep)
    got_counts = _delta(before, runner.counters())
    if +got_counts != +want_counts:
        _locate_counter_mismatch(target, seed, base, stop, bad, res, keep)
    res.packets += stop - base


def _record(res: Result, m: Mismatch, keep: int) -> None:
    res.mismatch_count += 1
    if len(res.mismatches) < keep:
        res.mismatches.append(m)


def _locate_counter_mismatch(target: Target, seed: int, base: int, stop: int, bad: set[int], res: Result,
                             keep: int) -> None:
    found = False
    for i in range(base, stop):
        cat, frame, muts = target.gen.make(seed, i)
        want = target.model.decide(frame)
        before = target.runner.counters()
        got = target.runner.run(frame)
        delta = _delta(before, target.runner.counters())
        exp = Counter(dict(target.expect(want)))
        if +delta != +exp and i not in bad:
            found = True
            _record(res, Mismatch(target.name, seed, i, cat, muts, frame, want, got, "counters",
                                  f"counters expected {dict(+exp)} got {dict(+delta)}"), keep)
    if not found and not bad:  # counters moved without a packet explaining it (e.g. another user of the map)
        _record(res, Mismatch(target.name, seed, base, "-", [], b"", Outcome(0, b"", None), (0, b""),
                              "counters", f"chunk {base}-{stop} counters differ but no single packet does"),
                keep)


def replay(target: Target, seed: int, index: int) -> str:
    """One packet, fully explained (for a reproducer)."""
    cat, frame, muts = target.gen.make(seed, index)
    want = target.model.decide(frame)
    before = target.runner.counters()
    with target.scope():
        got = target.runner.run(frame)
    delta = _delta(before, target.runner.counters())
    same = got[0] == want.verdict and got[1] == want.frame and +delta == +Counter(dict(target.expect(want)))
    return "\n".join([
        f"{target.name} seed={seed} index={index} category={cat} mutations={','.join(muts) or '-'}",
        f"  frame    ({len(frame)}): {frame.hex()}",
        f"  expected ({len(want.frame)}): {want.describe()}",
        f"  actual   ({len(got[1])}): {VERDICT_NAMES.get(got[0], got[0])} {got[1].hex()}",
        f"  counters moved: {dict(+delta)}",
        "  => " + ("same" if same else "MISMATCH"),
    ])
