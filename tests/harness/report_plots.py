"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state).

* ``outcomes.png`` -- pass/fail per property (test function) and framework version,
  device and dtype.
* ``ratios.png`` -- the distribution of entry-wise error/allowed per target and dtype.
* ``worst.png`` -- the largest error/allowed per activation and per quantity.
* ``training_classification.png``, ``training_regression.png`` -- the models the
  post's training runs trained (``training_plots``).

Each plot returns False when the run has nothing for it to show.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from harness import training_plots
from harness.report_data import QUANTITY_EQUATIONS, Plot, RunData, column_of, worst_first

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.image import AxesImage

    from harness.results import Record

FLOOR = 1e-6  # ratios below (exact agreement included) are drawn here on the log axes
CEILING = 1e15  # and ratios above, infinite (a non-finite entry) or nan, here
# Outcome shown by a cell holding several tests: the most alarming one wins.
SEVERITY = ("skipped", "xfailed", "passed", "xpassed", "failed", "error")
COLOURS = ("#d9d9d9", "#fdb863", "#5aae61", "#b2abd2", "#d7191c", "#7f0000")
DPI = 90


def _plain_log_labels(axis: Axis) -> None:
    """Tick labels as 1e-06 rather than mathtext: parsing mathtext costs a second per plot."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: Path) -> bool:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return True


def _clipped(ratio: float) -> float:
    return CEILING if not ratio <= CEILING else max(ratio, FLOOR)  # nan fails every comparison


def _columns(data: RunData) -> list[str]:
    """Record columns ``target dtype``, in the order targets were selected."""
    order = list(data.environment.get("targets", {}))
    keys = {(r.target, r.dtype) for r in data.records}
    return [f"{t} {d}" for t, d in sorted(keys, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1]))]


def plot_ratios(data: RunData, path: Path) -> bool:
    if not data.records:
        return False
    groups: dict[str, list[float]] = defaultdict(list)
    known: dict[str, list[float]] = defaultdict(list)
    for r in data.records:
        (known if r.known else groups)[f"{r.target} {r.dtype}"].append(_clipped(r.entry_ratio))
    cols = _columns(data)
    fig = Figure(figsize=(9, 0.45 * len(cols) + 1.2))
    ax = fig.add_subplot()
    jitter = np.random.default_rng(0)
    for i, c in enumerate(cols, 1):
        values = np.asarray(groups[c])
        if values.size:
            ax.scatter(values, i + jitter.uniform(-0.3, 0.3, values.size), s=4, alpha=0.3, color="#2c7bb6",
                       rasterized=True, linewidths=0)
            ax.plot([np.median(values), values.max()], [i, i], "|", color="k", ms=14, mew=2)
        if known[c]:
            ax.plot(known[c], [i] * len(known[c]), "x", color=COLOURS[4], ms=5, label="known discrepancy")
    ax.set_yticks(range(1, len(cols) + 1), [f"{c} ({len(groups[c])})" for c in cols])
    ax.set_xscale("log")
    _plain_log_labels(ax.xaxis)
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.set_xlabel(f"entry-wise error / allowed, one dot per comparison; bars: median and largest\n"
                  f"(1 = at the bound; below {FLOOR:g}, exact agreement included, drawn at {FLOOR:g}; "
                  f"above {CEILING:g}, inf and nan at {CEILING:g})")
    ax.invert_yaxis()
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:1], labels[:1], loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def _worst_grid(data: RunData, rows: list[str], keys_of: Callable[[Record], Iterable[str]]) -> np.ndarray:
    cols = _columns(data)
    grid = np.full((len(rows), len(cols)), np.nan)
    for r in data.records:
        if r.known:
            continue
        j = cols.index(f"{r.target} {r.dtype}")
        for key in keys_of(r):
            i = rows.index(key)
            grid[i, j] = np.fmax(grid[i, j], max(worst_first(r.entry_ratio), FLOOR))
    return grid


def _heatmap(ax: Axes, grid: np.ndarray, rows: list[str], cols: list[str], title: str, norm: LogNorm) -> AxesImage:
    shown = np.ma.masked_where(np.isnan(grid), np.where(np.isinf(grid), CEILING, grid))
    image = ax.imshow(shown, aspect="auto", cmap="YlOrRd", norm=norm)
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.1g}", ha="center", va="center", fontsize=7, color="w" if norm(v) > 0.6 else "k")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_title(title, fontsize=9)
    return image


def plot_worst(data: RunData, path: Path) -> bool:
    """Largest unexplained ratio per activation (every activation of the case's
    network) and per quantity, for each target and dtype."""
    if not any(r.known is None for r in data.records):
        return False
    cols = _columns(data)
    acts = sorted({a for r in data.records for a in r.activations})
    order = list(QUANTITY_EQUATIONS)
    quantities = sorted({r.quantity for r in data.records}, key=lambda q: order.index(q) if q in order else 99)
    by_act = _worst_grid(data, acts, lambda r: r.activations)
    by_quantity = _worst_grid(data, quantities, lambda r: (r.quantity,))
    finite = by_act[np.isfinite(by_act)]
    norm = LogNorm(1e-4, max(1.0, float(finite.max(initial=1.0))), clip=True)  # inf draws as the top
    fig = Figure(figsize=(3.5 + 0.55 * len(cols), 0.25 * (len(acts) + len(quantities)) + 2.5))
    top, bottom = fig.subplots(2, 1, height_ratios=[len(acts), len(quantities)], sharex=True)
    _heatmap(top, by_act, acts, cols, "per activation in the network", norm)
    labels = [f"{q} ({QUANTITY_EQUATIONS.get(q, '?')})" for q in quantities]
    image = _heatmap(bottom, by_quantity, labels, cols, "per quantity", norm)
    bar = fig.colorbar(image, ax=[top, bottom], shrink=0.6, label="largest error / allowed\n(known discrepancies excluded)")
    _plain_log_labels(bar.ax.yaxis)
    return _save(fig, path)


def _outcome_cells(data: RunData) -> dict[tuple[str, str], list[str]]:
    """Outcomes by (row, column): a row per property run against a framework, and one
    row for every test that runs none (the reference and the suite's own machinery)."""
    env = data.environment
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for o in data.outcomes:
        cells[(o.function, column_of(o.param, env))].append(o.outcome)
    framework_rows = {f for f, c in cells if c != "reference"}
    merged: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (f, c), xs in cells.items():
        merged[(f if f in framework_rows else "tests that run no framework", c)] += xs
    return merged


def plot_outcomes(data: RunData, path: Path) -> bool:
    """One cell per property and column; a column whose every test skipped is left out
    and counted beneath the grid."""
    if not data.outcomes:
        return False
    cells = _outcome_cells(data)
    rows = sorted(dict.fromkeys(f for f, _ in cells), key=lambda f: f.startswith("tests that run no"))
    order = ["reference"]
    for v in data.environment.get("variants", []):
        order += [f"{v['target']}-{v['device']}", v["id"]]
    all_cols = sorted(dict.fromkeys(c for _, c in cells), key=lambda c: order.index(c) if c in order else len(order))
    cols = [c for c in all_cols if any(x != "skipped" for (_, c2), xs in cells.items() if c2 == c for x in xs)]
    cols = cols or all_cols
    grid = np.full((len(rows), len(cols)), np.nan)
    fig = Figure(figsize=(4 + 0.32 * len(cols), 2.2 + 0.3 * len(rows)))
    ax = fig.add_subplot()
    for (f, c), xs in cells.items():
        if c in cols:
            i, j = rows.index(f), cols.index(c)
            grid[i, j] = max(SEVERITY.index(x) if x in SEVERITY else 5 for x in xs)
            bad = sum(x in ("failed", "error", "xpassed") for x in xs)
            if len(xs) > 1 or bad:
                ax.text(j, i, f"{bad}/{len(xs)}" if bad else str(len(xs)), ha="center", va="center", fontsize=6)
    ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=ListedColormap(COLOURS), vmin=-0.5, vmax=5.5)
    env = data.environment
    versions = {name: f"{t['framework']} {t.get('version') or '-'}" for name, t in env.get("targets", {}).items()}
    ax.set_xticks(range(len(cols)), [_column_label(c, env, versions) for c in cols], rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    hidden = len(all_cols) - len(cols)
    if hidden:
        ax.set_xlabel(f"{hidden} column(s) where every test skipped are not shown", fontsize=7)
    ax.set_title("a number: the tests in a cell; a/b: a of b failed; the most severe outcome colours it", fontsize=7)
    for k, colour in enumerate(COLOURS):
        ax.plot([], [], "s", color=colour, label=SEVERITY[k])
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    return _save(fig, path)


def _column_label(column: str, env: dict, versions: dict[str, str]) -> str:
    for v in env.get("variants", []):
        if column in (v["id"], f"{v['target']}-{v['device']}"):
            return f"{column} ({versions.get(v['target'], '?')})"
    return column


PLOTS: dict[str, Plot] = {"outcomes.png": plot_outcomes, "ratios.png": plot_ratios, "worst.png": plot_worst,
                          **training_plots.PLOTS}
