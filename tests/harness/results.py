"""What every comparison recorded, for the run summary and the report.

Each comparison records its error/allowed ratios; the summary prints the largest
ratio per target and dtype so everyone sees how tight the error model is.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass, field

from harness.compare import Comparison
from harness.known import Discrepancy


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
    known: str | None
    case: str


@dataclass
class Results:
    records: list[Record] = field(default_factory=list)
    used_known: set[int] = field(default_factory=set)  # indices into the known list
    # Models trained by the post's training runs, as plain JSON for the report's figures:
    # test, target, device, dtype, experiment, passes, measure, score, params [[W, b], ...].
    training_runs: list[dict] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records.append(record)

    def as_json(self) -> list[dict]:
        return [asdict(r) for r in self.records]

    def summary_lines(self, known: list[Discrepancy]) -> list[str]:
        if not self.records:
            return []
        worst: dict[tuple[str, str], Record] = {}
        for r in self.records:
            k = (r.target, r.dtype)
            if r.known is None and (k not in worst or r.entry_ratio > worst[k].entry_ratio):
                worst[k] = r
        lines = ["", "deltacheck: largest error/allowed per target and dtype (1.0 = at the bound)"]
        for (target, dtype), r in sorted(worst.items()):
            lines.append(
                f"  {target:<12} {dtype:<9} entry-wise {r.entry_ratio:9.3g}  tensor-wise "
                f"{r.tensor_ratio:9.3g}  ({r.quantity}, {len(self._of(target, dtype))} comparisons)"
            )
        known_hits = [r for r in self.records if r.known]
        if known_hits:
            lines.append(f"deltacheck: {len(known_hits)} entry-wise finding(s) matched known discrepancies")
        tests_run = {r.test for r in self.records}
        for i, d in enumerate(known):
            pattern = d.test.replace("[", "[[]")
            if i not in self.used_known and any(fnmatch.fnmatchcase(t, pattern) for t in tests_run):
                scope = ", ".join(
                    part for part in (
                        d.quantity and f"quantity {d.quantity}",
                        d.activations and f"activations {'/'.join(d.activations)}",
                        d.losses and f"losses {'/'.join(d.losses)}",
                        d.when and f"when {d.when}",
                    ) if part
                )
                lines.append(
                    f"deltacheck: WARNING known discrepancy #{i + 1} ({d.test}; {scope or 'any'}) "
                    "matched nothing in the tests it names: a finding that disappeared, or a case "
                    "this run did not draw"
                )
        return lines

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

    def check(self, variant, case, comps: list[Comparison]) -> list[Comparison]:
        acts = {name for name, _ in case.network.activations}
        case_text = repr(case)
        failing = []
        for c in comps:
            quantity = _KEY.match(c.key).group(0)
            reason = None
            if c.failed:
                for i, d in enumerate(self.known):
                    if d.explains(self.name, c, case):
                        reason = d.reason
                        self.results.used_known.add(i)
                        break
            self.results.add(Record(
                self.name, variant.target, variant.device, variant.dtype, quantity,
                tuple(sorted(acts)), c.entry_ratio, c.tensor_ratio, reason, case_text,
            ))
            if c.failed and reason is None:
                failing.append(c)
        return failing

    def explain_crash(self, case) -> str | None:
        """The reason of a known discrepancy that names a condition this case meets
        (``when = ...``), for an adapter that raises instead of returning: e.g.
        torch's softplus(threshold=inf) overflowing into bce's range check."""
        for i, d in enumerate(self.known):
            if d.when is not None and d.explains_case(self.name, case):
                self.results.used_known.add(i)
                return d.reason
        return None

    def record_training_run(self, target: str, device: str, dtype: str, experiment: str, passes: int,
                            measure: str, score: float, params) -> None:
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
