"""What every comparison recorded, for the run summary and the report.

Each comparison records its error/allowed ratios; the summary prints the largest
ratio per target and dtype so everyone sees how tight the error model is.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from harness.compare import Comparison
from harness.known import Discrepancy, explain_failure

if TYPE_CHECKING:
    from harness.selection import Variant
    from harness.strategies import Case


@dataclass
class Record:
    test: str  # the test's node name, e.g. test_x[torch-cpu-float32]
    target: str
    device: str
    dtype: str
    quantity: str  # key prefix: loss, delta, dW, db, W_step, b_step
    activations: tuple[str, ...]
    entry_ratio: float
    tensor_ratio: float
    known: str | None  # the id(s) of the known entries that explained a failure, joined by '+'
    case: str


@dataclass
class Results:
    records: list[Record] = field(default_factory=list)
    # Crashes a known entry explained, and each entry's reproducer verdict, by entry id.
    crashes: Counter[str] = field(default_factory=Counter)
    reproducers: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> target -> verdict
    # Models trained by the post's training runs, as plain JSON for the report's figures:
    # test, target, device, dtype, experiment, passes, measure, score, params [[W, b], ...].
    training_runs: list[dict] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records.append(record)

    def as_json(self) -> list[dict]:
        return [asdict(r) for r in self.records]

    def merge(self, doc: dict) -> int:
        """Add a worker's records, crashes and reproducer verdicts (``payload``)."""
        for d in doc["records"]:
            self.add(Record(**{**d, "activations": tuple(d["activations"])}))
        self.crashes.update(doc.get("crashes", {}))
        for entry_id, verdicts in doc.get("reproducers", {}).items():
            self.reproducers.setdefault(entry_id, {}).update(verdicts)
        self.training_runs += doc.get("training_runs", [])
        return len(doc["records"])

    def payload(self) -> dict:
        return {"records": self.as_json(), "crashes": dict(self.crashes), "reproducers": self.reproducers,
                "training_runs": self.training_runs}

    def summary_lines(self, known: list[Discrepancy]) -> list[str]:
        lines = []
        if self.records:
            worst: dict[tuple[str, str], Record] = {}
            for r in self.records:
                k = (r.target, r.dtype)
                if r.known is None and (k not in worst or r.entry_ratio > worst[k].entry_ratio):
                    worst[k] = r
            lines += ["", "deltacheck: largest error/allowed per target and dtype, known discrepancies excluded (1.0 = at the bound)"]
            for (target, dtype), r in sorted(worst.items()):
                lines.append(
                    f"  {target:<12} {dtype:<9} entry-wise {r.entry_ratio:9.3g}  tensor-wise "
                    f"{r.tensor_ratio:9.3g}  ({r.quantity}, {len(self._of(target, dtype))} comparisons)"
                )
        rows = self.known_rows(known)
        if any(row[2] != "0" or row[4] != "0" or row[5] != "-" for row in rows):
            lines += ["", "deltacheck: known discrepancies (entry: versions; comparisons explained, largest "
                          "error/allowed explained, crashes explained; reproducer)"]
            lines += [f"  {row[0]}: {row[1]}; {row[2]}, {row[3]}, {row[4]}; {row[5]}" for row in rows]
        return lines

    def known_rows(self, known: list[Discrepancy]) -> list[list[str]]:
        """Per entry: id, its version verdict, the comparisons it explained (alone or with
        other entries), the largest entry-wise error/allowed among them, the crashes it
        explained, and its reproducer's verdict -- the console's and the report's numbers."""
        explained: dict[str, list[float]] = {}
        for r in self.records:
            for entry_id in (r.known or "").split("+"):
                if entry_id:
                    explained.setdefault(entry_id, []).append(r.entry_ratio)
        rows = []
        for d in known:
            ratios = explained.get(d.id, [])
            applies, why = d.version_verdict
            rows.append([d.id, why if applies else f"out of range: {why}", str(len(ratios)),
                         f"{max(ratios):.3g}" if ratios else "-", str(self.crashes.get(d.id, 0)),
                         "; ".join(f"{t}: {v}" for t, v in sorted(self.reproducers.get(d.id, {}).items())) or "-"])
        return rows

    def _of(self, target: str, dtype: str) -> list[Record]:
        return [r for r in self.records if r.target == target and r.dtype == dtype]


_KEY = re.compile(r"^[A-Za-z_]+")


@dataclass
class Recorder:
    """Per test: records comparisons and sorts failures into known and unexplained."""

    results: Results
    nodeid: str
    name: str
    known: list[Discrepancy]
    seed: int
    profile: str

    def check(self, variant: Variant, case: Case, comps: list[Comparison]) -> list[Comparison]:
        """Record every comparison; return the failing ones no known entry explains."""
        acts = {name for name, _ in case.network.activations}
        case_text = repr(case)
        applicable = functools.cache(
            lambda d: d.applies(variant.target, variant.device, variant.dtype, self.name, case))
        failing = []
        for c in comps:
            match = _KEY.match(c.key)
            assert match is not None, f"comparison key {c.key!r} starts with no quantity name"
            quantity = match.group(0)
            explained = explain_failure(self.known, applicable, c, case) if c.failed else []
            known = "+".join(d.id for d in explained) or None
            self.results.add(Record(
                self.name, variant.target, variant.device, variant.dtype, quantity,
                tuple(sorted(acts)), c.entry_ratio, c.tensor_ratio, known, case_text,
            ))
            if c.failed and known is None:
                failing.append(c)
        return failing

    def explain_crash(self, variant: Variant, case: Case, exc: BaseException) -> str | None:
        """The id of a known entry that names this exception (``raises``) and applies to
        the case: e.g. torch's softplus(threshold=inf) overflowing into bce's range check."""
        for d in self.known:
            if d.raises is not None and d.raises.matches(exc) and d.applies(
                    variant.target, variant.device, variant.dtype, self.name, case):
                self.results.crashes[d.id] += 1
                return d.id
        return None

    def record_training_run(self, target: str, device: str, dtype: str, experiment: str, passes: int,
                            measure: str, score: float, params: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """A trained model of the post's experiments, for the report's figures."""
        self.results.training_runs.append({
            "test": self.name, "target": target, "device": device, "dtype": dtype, "experiment": experiment,
            "passes": passes, "measure": measure, "score": score,
            "params": [[W.tolist(), b.tolist()] for W, b in params],
        })

    def rerun_command(self) -> str:
        return (
            f"pytest '{self.nodeid}' --hypothesis-profile={self.profile} "
            f"--hypothesis-seed={self.seed}"
        )
