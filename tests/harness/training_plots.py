"""The report's figures of the post's training runs (``test_post_training_runs.py``).

* ``training_classification.png`` -- a row per classification run (AND, OR, XOR,
  RING, without and with the hidden layer), a column for the reference and for
  each target and device: the trained model's output over the plane (shaded where
  it exceeds 0.5, the 0.5 line drawn), the training data on top, the accuracy and
  the number of passes in the title.
* ``training_regression.png`` -- a panel per regression run (2.5 + sin(x), |x|):
  the noisy data, the noiseless curve, and the fitted curve of the reference and of
  each target and device, with its RMS error against the curve.

One dtype is drawn, float32 where the run has it (the frameworks' default), else
float64, else the first recorded; the other dtypes' models are in ``results.json``.
Each plot returns False when the run recorded no trained model for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import reference
from harness import post_experiments as pe

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from harness.report_data import Plot, RunData

DPI = 90
PREFERRED_DTYPES = ("float32", "float64", "float16", "bfloat16")
CMAP = "RdBu_r"
RESOLUTION = 61
LEVELS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def _save(fig: Figure, path: Path) -> bool:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return True


def _shown(runs: list[dict], names: tuple[str, ...]) -> tuple[str | None, list[str], dict]:
    """The dtype drawn, the columns (reference first), and the models by (experiment, column)."""
    runs = [r for r in runs if r.get("experiment") in names]
    dtypes = {r["dtype"] for r in runs}
    dtype = next((d for d in PREFERRED_DTYPES if d in dtypes), min(dtypes, default=None))
    models: dict[tuple[str, str], dict] = {}
    for r in runs:
        if r["dtype"] == dtype:
            column = "reference" if r["target"] == "reference" else f"{r['target']}-{r['device']}"
            models.setdefault((r["experiment"], column), r)
    columns = sorted({c for _, c in models}, key=lambda c: (c != "reference", c))
    return dtype, columns, models


def _params(run: dict) -> reference.Params:
    return [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in run["params"]]


def _surface(ax: Axes, experiment: pe.Experiment, run: dict) -> None:
    x, t = experiment.x, experiment.t[:, 0]
    lo, hi = x.min(axis=0) - 0.3, x.max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], RESOLUTION), np.linspace(lo[1], hi[1], RESOLUTION))
    with np.errstate(all="ignore"):
        out = reference.forward(experiment.network, _params(run), np.c_[gx.ravel(), gy.ravel()]).a[-1]
    out = out.reshape(gx.shape)
    # Bands rather than a smooth image: the PNG, embedded in the HTML report, stays small.
    ax.contourf(gx, gy, np.nan_to_num(out, nan=0.5), levels=LEVELS, cmap=CMAP, vmin=0, vmax=1, alpha=0.6)
    if np.nanmin(out) < 0.5 < np.nanmax(out):
        ax.contour(gx, gy, out, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(x[:, 0], x[:, 1], c=t, cmap=CMAP, vmin=0, vmax=1, s=6, edgecolors="k", linewidths=0.3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{run['measure']} {run['score']:.2f}, {run['passes']} passes", fontsize=7)


def plot_classification(data: RunData, path: Path) -> bool:
    names = tuple(n for n in pe.NAMES if n not in pe.CURVES)
    dtype, columns, models = _shown(data.training_runs, names)
    rows = [n for n in names if any((n, c) in models for c in columns)]
    if not rows:
        return False
    height = 1.75 * len(rows) + 0.8
    fig = Figure(figsize=(1.9 * len(columns) + 0.8, height))
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    fig.subplots_adjust(top=1 - 0.8 / height, bottom=0.1 / height, hspace=0.3, wspace=0.1)
    for i, name in enumerate(rows):
        experiment = pe.experiment(name)
        for j, column in enumerate(columns):
            ax = axes[i][j]
            if (name, column) in models:
                _surface(ax, experiment, models[(name, column)])
            else:
                ax.set_axis_off()
            if i == 0:
                ax.annotate(column, (0.5, 1.2), xycoords="axes fraction", ha="center", fontsize=9, weight="bold")
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(f"decision surfaces after online training, {dtype} (output > 0.5 red, the 0.5 line black)",
                 fontsize=9, y=1 - 0.15 / height)
    return _save(fig, path)


def plot_regression(data: RunData, path: Path) -> bool:
    names = tuple(pe.CURVES)
    dtype, columns, models = _shown(data.training_runs, names)
    panels = [n for n in names if any((n, c) in models for c in columns)]
    if not panels:
        return False
    fig = Figure(figsize=(6 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    grid = pe.GRID
    for ax, name in zip(axes, panels):
        experiment = pe.experiment(name)
        ax.plot(experiment.x[:, 0], experiment.t[:, 0], ".", color="0.6", ms=4, label="noisy data")
        ax.plot(grid[:, 0], pe.CURVES[name](grid)[:, 0], "k--", lw=1, label="noiseless curve")
        for k, column in enumerate(columns):
            run = models.get((name, column))
            if run is None:
                continue
            with np.errstate(all="ignore"):
                fit = reference.forward(experiment.network, _params(run), grid).a[-1][:, 0]
            style = "-" if column == "reference" else (0, (4, 1 + k))
            ax.plot(grid[:, 0], fit, ls=style, lw=2.2 if column == "reference" else 1.3,
                    label=f"{column} ({run['measure']} {run['score']:.3f}, {run['passes']} passes)")
        ax.set_title(f"{name}: {'2.5 + sin(x)' if name == 'sin' else '|x|'}, {dtype}", fontsize=9)
        ax.set_xlabel("x")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return _save(fig, path)


PLOTS: dict[str, Plot] = {"training_classification.png": plot_classification, "training_regression.png": plot_regression}
