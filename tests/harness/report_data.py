"""What a report shows, apart from how it is drawn: the run's outcomes and records
(``RunData``, as ``results.json`` holds them), the quantities' equations, and the
helpers the report's tables and its plots (``report_plots``) share.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.results import Record

QUANTITY_EQUATIONS = {
    "loss": "Eq. 1", "delta": "Eqs. 5, 14", "dW": "Eqs. 6, 15", "db": "Eqs. 8, 18",
    "W_step": "Eq. 7", "b_step": "Eq. 7", "W_traj": "Eq. 7, K steps", "b_traj": "Eq. 7, K steps",
    "W_online": "Eq. 7, online steps", "b_online": "Eq. 7, online steps",
    "jvp_loss": "Eqs. 1-5, forward mode", "jvp_a": "Eqs. 3-4, forward mode",
    "hvp_W": "R-operator on Eqs. 5, 14, 15", "hvp_b": "R-operator on Eqs. 5, 14, 18",
    "pe_dW": "Eqs. 6, 15 per example", "pe_db": "Eqs. 8, 18 per example",
}


@dataclass
class Outcome:
    """One test as pytest reported it."""

    nodeid: str
    outcome: str  # passed, failed, skipped, xfailed, xpassed, error
    reason: str = ""  # the skip reason, or the first line of the failure
    duration: float = 0.0

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]

    @property
    def function(self) -> str:
        return self.name.split("[", 1)[0]

    @property
    def param(self) -> str:
        return self.name[len(self.function) + 1:-1] if "[" in self.name else ""


@dataclass
class RunData:
    """Everything a report shows; ``environment`` is plain JSON (versions, settings)."""

    environment: dict
    outcomes: list[Outcome] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    training_runs: list[dict] = field(default_factory=list)  # see results.Results.training_runs

    def to_json(self) -> dict:
        """Records name their case by index into ``cases``: a case yields a dozen records."""
        cases: dict[str, int] = {}
        names = [f.name for f in fields(Record)]
        records = []
        for r in self.records:  # dataclasses.asdict deep-copies: several times slower
            d = {name: getattr(r, name) for name in names}
            d["case"] = cases.setdefault(r.case, len(cases))
            records.append(d)
        return {"environment": self.environment, "outcomes": [asdict(o) for o in self.outcomes],
                "cases": list(cases), "records": records, "training_runs": self.training_runs}

    @classmethod
    def from_json(cls, doc: dict) -> RunData:
        cases = doc.get("cases", [])
        records = [Record(**{**d, "activations": tuple(d["activations"]), "case": cases[d["case"]],
                             "entry_ratio": float(d["entry_ratio"]), "tensor_ratio": float(d["tensor_ratio"])})
                   for d in doc["records"]]
        runs = [{**r, "score": float(r["score"]), "params": _floats(r["params"])} for r in doc.get("training_runs", [])]
        return cls(doc["environment"], [Outcome(**o) for o in doc["outcomes"]], records, runs)

    def counts(self) -> Counter:
        return Counter(o.outcome for o in self.outcomes)


def _floats(nested: Any) -> Any:
    return [_floats(v) for v in nested] if isinstance(nested, list) else float(nested)


def column_of(param: str, env: dict) -> str:
    """The column of a test parameter id: the variant (``torch-cpu-float32``), the
    target and device (``jax-cpu`` for ``jax-cpu-leaky_relu@0``), else ``reference``."""
    variants = env.get("variants", [])
    keys = {v["id"] for v in variants} | {f"{v['target']}-{v['device']}" for v in variants}
    for key in sorted(keys, key=len, reverse=True):
        if param == key or param.startswith(key + "-"):
            return key
    return "reference"


def worst_first(ratio: float) -> float:
    """A ratio to sort by: nan (a comparison that could not be made) ranks as inf."""
    return math.inf if math.isnan(ratio) else ratio


Plot = Callable[[RunData, Path], bool]  # draws into the path; False when it has nothing to draw


