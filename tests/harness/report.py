"""The conformance report: what a run saw, as Markdown, self-contained HTML, JSON and plots.

A report directory holds ``report.md`` (plots as files beside it), ``report.html``
(the same text, plots embedded as data URIs so the one file opens anywhere),
``results.json`` (environment, every test outcome and every comparison record,
what ``tests/harness/matrix.py`` merges across versions) and the PNG plots drawn by
``report_plots``.  ``write_report`` builds the directory beside the target and swaps
it in, so a run that fails or is interrupted while writing leaves the previous
report as it was.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.report_data import QUANTITY_EQUATIONS, Outcome, Plot, RunData, worst_first
from harness.results import Record

# Subdirectories that belong to other runs (each tox env's report) and survive a swap.
PRESERVED = ("matrix",)
STYLE = ("body{font-family:sans-serif;max-width:1400px;margin:auto}table{border-collapse:collapse;"
         "font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}")


def strict_json(obj: Any) -> Any:
    """``obj`` with every inf and NaN written as the string "inf", "-inf" or "nan": JSON
    has no such numbers (Python's Infinity and NaN tokens break other parsers), and
    ``float()`` reads the strings back."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def load(directory: Path) -> RunData:
    """The run recorded in ``directory/results.json``."""
    path = Path(directory) / "results.json"
    try:
        return RunData.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a deltacheck results file: {exc}") from exc


def worst_per_target(records: Sequence[Record]) -> list[list[str]]:
    """Rows of the largest error/allowed table: per target and dtype, unexplained records."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.target, r.dtype), []).append(r)
    rows = []
    for (target, dtype), rs in sorted(groups.items()):
        open_ = [r for r in rs if r.known is None] or rs
        e = max(open_, key=lambda r: worst_first(r.entry_ratio))
        t = max(open_, key=lambda r: worst_first(r.tensor_ratio))
        rows.append([target, dtype, f"{e.entry_ratio:.3g}", f"{t.tensor_ratio:.3g}",
                     f"{e.quantity} ({QUANTITY_EQUATIONS.get(e.quantity, '?')})", ", ".join(e.activations),
                     str(len(rs)), str(sum(r.known is not None for r in rs)), e.case])
    return rows


# A report is a list of blocks, rendered twice: ("h", level, text), ("p", text),
# ("table", headers, rows), ("img", file name, caption).
Block = tuple


def blocks(data: RunData, images: Sequence[str]) -> list[Block]:
    env = data.environment
    counts = data.counts()
    out: list[Block] = [
        ("h", 1, "deltacheck conformance report"),
        ("p", f"{env.get('started', '?')}, {env.get('duration_s', 0):.1f} s, exit status "
              f"{env.get('exitstatus', '?')}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))),
        ("p", (f"Hypothesis profile {env.get('profile')!r} ({env.get('max_examples')} examples per test), "
               f"seed {env.get('seed')}; rerun with `{env.get('rerun', '')}`")),
        ("h", 2, "Versions"),
        ("table", ["package", "version"], [[k, str(v)] for k, v in env.get("versions", {}).items()]),
        ("h", 2, "Targets, devices and precision"),
        ("table", ["target", "framework", "version", "devices", "precision"],
         [[name, t["framework"], t.get("version") or "-", ", ".join(t.get("devices", [])) or "-",
           "; ".join(f"{d}: {m}" for d, m in t.get("precision", {}).items()) or t.get("missing") or "-"]
          for name, t in env.get("targets", {}).items()]),
    ]
    if data.records:
        out += [("h", 2, "Largest error/allowed per target and dtype (1.0 = at the bound)"),
                ("table", ["target", "dtype", "entry-wise", "tensor-wise", "quantity", "activations",
                           "comparisons", "known", "case"], worst_per_target(data.records))]
    if env.get("known_discrepancies"):
        out += [("h", 2, "Known discrepancies"),
                ("table", ["entry", "versions", "comparisons explained", "largest error/allowed explained",
                           "crashes explained", "reproducer"], env["known_discrepancies"])]
    captions = {"outcomes.png": "Outcomes per property (rows) and framework version, device, dtype (columns)",
                "ratios.png": "Entry-wise error/allowed per target and dtype",
                "worst.png": "Worst error/allowed per activation and per quantity",
                "training_classification.png": "The post's classification runs: decision surfaces of the trained "
                                               "models (output > 0.5 shaded), reference and every target",
                "training_regression.png": "The post's regression runs: the trained models' curves, reference "
                                           "and every target, over the noisy data and the noiseless curve"}
    out += [("img", name, captions.get(name, name)) for name in images]
    out += _outcome_blocks(data.outcomes)
    return out


def _outcome_blocks(outcomes: Sequence[Outcome]) -> list[Block]:
    out: list[Block] = []
    bad = [o for o in outcomes if o.outcome in ("failed", "error", "xpassed")]
    if bad:
        out += [("h", 2, f"Failures ({len(bad)})"),
                ("table", ["test", "outcome", "message"], [[o.nodeid, o.outcome, o.reason] for o in bad])]
    skips = Counter(o.reason for o in outcomes if o.outcome in ("skipped", "xfailed"))
    if skips:
        out += [("h", 2, f"Skips and expected failures ({sum(skips.values())})"),
                ("table", ["tests", "reason"], [[str(n), r] for r, n in skips.most_common()])]
    return out


def markdown(bs: Sequence[Block]) -> str:
    lines: list[str] = []
    for b in bs:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1]})", ""]
        elif b[0] == "table":
            lines += [_md_row(b[1]), _md_row(["---"] * len(b[1]))] + [_md_row(r) for r in b[2]] + [""]
    return "\n".join(lines)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def render_html(bs: Sequence[Block], directory: Path) -> str:
    head = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>deltacheck report</title><style>{STYLE}</style>"
    parts = [head + "</head><body>"]
    esc = html.escape
    for b in bs:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{esc(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{esc(b[1])}</p>")
        elif b[0] == "img":
            data = base64.b64encode((directory / b[1]).read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{esc(b[2])}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(b[2])}</figcaption></figure>")
        elif b[0] == "table":
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in b[1]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in b[2]]
            parts.append("</table>")
    return "\n".join(parts + ["</body></html>"])


def fill(directory: Path, data: RunData, plots: dict[str, Plot]) -> None:
    """Every report file, written into ``directory``."""
    (directory / "results.json").write_text(json.dumps(strict_json(data.to_json()), allow_nan=False))
    images = [name for name, plot in plots.items() if plot(data, directory / name)]
    bs = blocks(data, images)
    (directory / "report.md").write_text(markdown(bs))
    (directory / "report.html").write_text(render_html(bs, directory))


def write_report(target: Path, data: RunData, plots: dict[str, Plot] | None = None) -> float:
    """Write the report into ``target`` atomically; returns the seconds it took.

    The files go into a fresh directory beside ``target`` that replaces it only once
    complete; on any exception (KeyboardInterrupt included) the old report stays.
    """
    start = time.perf_counter()
    if plots is None:
        from harness import report_plots  # matplotlib is imported only when a report is drawn

        plots = report_plots.PLOTS
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"report directory {str(target)!r} exists and is not a directory; "
                                 "give --report-dir a directory path or 'none'")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp = _aside(target, "tmp")
    tmp.mkdir()
    try:
        fill(tmp, data, plots)
        for name in PRESERVED:
            if (target / name).is_dir() and not (tmp / name).exists():
                shutil.copytree(target / name, tmp / name)
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return time.perf_counter() - start


def _swap(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first and
    restored if the rename fails (directories cannot be replaced in one rename)."""
    old = _aside(target, "old")
    had_old = target.exists()
    if had_old:
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if had_old:
            os.rename(old, target)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def _aside(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{time.time_ns()}-{os.getpid()}")  # sorts by time


def _recover(target: Path) -> None:
    """A process killed between the two renames of ``_swap`` left the old report aside."""
    if not target.exists():
        aside = sorted(target.parent.glob(f".{target.name}.old-*"))
        if aside:
            os.rename(aside[-1], target)
