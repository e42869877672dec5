"""The post's training runs, replayed by every target through ``train_online``.

Each run of ``post_experiments`` (AND, OR, XOR, RING with and without a hidden
layer; 2.5 + sin(x) and |x| regression) is handed to the target as its
``(example index, lr)`` schedule -- the visiting order and annealed learning rate of
``reference.train_online`` for the same seed -- with data and initial parameters
rounded to the dtype under test.

* The first ``STEPS`` updates follow the reference's trajectory from the same
  rounded start (float64) within the error model's growing bound for online steps
  (``error_model_online``): each update's bound feeds the next as parameter errors.
* The trained models reach the post's results (``post_experiments.EXPECTED``):
  AND and OR learned by both architectures, XOR and RING only with the hidden layer,
  the regressions within RMS 0.2 of the noiseless curve -- and the reference, on
  the same rounded data and schedule, reaches them too.  Under the ``thorough``
  profile every run is the post's full run (100 passes for classification, 150 for
  regression).  Under ``ci`` and ``dev`` the runs are shortened to ``SHORT_RUNS``
  (measured per online step, CPU: torch ~0.4 ms, torch-func ~0.65 ms, jax-jit
  ~0.15 ms, un-jitted jax 7-9 ms -- the full runs cost 110k steps per variant, 17k
  shortened), and un-jitted jax, whose every primitive is dispatched one by one,
  runs them under ``thorough`` only.  bfloat16's full regressions are skipped
  (``STALLS``): its updates round away before the fit is done.

The trained models (framework's and reference's) go to the report's figures
(``training_plots``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import settings

import reference
from adapters.interface import Unsupported, capability
from adapters.registry import load_target
from harness import post_experiments as pe
from harness.compare import Comparison, Mismatch
from harness.crossval import problem_of
from harness.error_model import SAFETY
from harness.error_model_online import online_trajectory, online_trajectory_bounds
from harness.post_experiments import Expectation
from harness.results import Recorder, Results
from harness.selection import Variant

STEPS = 25  # updates compared step by step; all in the first pass (lr 0.5 or 0.02)
FULL_RUN_PROFILES = ("thorough",)
SLOW_TARGETS = {"jax": "un-jitted jax dispatches every primitive of every step (7-9 ms an online step, "
                       "17k steps a variant shortened, 110k full)"}
# Full runs that a dtype cannot finish, as rounding dictates rather than as a bug.
_BF16_STALL = ("bfloat16 keeps 8 significant bits: once the fit is close, an update lr dE/dw (lr = 0.02 x "
               "0.99^pass, residuals near the noise sd 0.1) is below half an ulp of a weight of order 1 and "
               "rounds away, so the full regression stalls short of RMS 0.2 (0.16-0.27 after 150 passes on "
               "torch, torch-func and jax-jit; 0.19 with only the parameters rounded to bfloat16 after each "
               "float64 step); the shortened run is checked under ci and dev")
STALLS = {("bfloat16", "sin"): _BF16_STALL, ("bfloat16", "abs"): _BF16_STALL}
# Shortened runs: the fewest passes (of 5, 10, 30) after which the reference reaches the
# post's result on every dtype (its accuracies there: 0.98-1.0 where the problem is
# learned, 0.29 and 0.65 where it is not).  A regression needs its 150 passes to fit
# within RMS 0.2; after 30 its E per example is held to 0.05 instead (the reference:
# 0.026 for sin, 0.030 for |x|, from 2.2 and 2.7 before training).
SHORT_RUNS: dict[str, tuple[int, Expectation | None]] = {
    "AND-hidden0": (5, None), "OR-hidden0": (5, None), "AND-hidden4": (10, None), "OR-hidden4": (10, None),
    "XOR-hidden0": (10, None), "RING-hidden0": (10, None), "XOR-hidden4": (30, None), "RING-hidden4": (30, None),
    "sin": (30, Expectation("loss per example", at_most=0.05)),
    "abs": (30, Expectation("loss per example", at_most=0.05)),
}


@dataclass(frozen=True)
class OnlineRun:
    """What a comparison is about, for the recorder and the failure message."""

    experiment: str
    network: reference.Network
    params: reference.Params = field(repr=False)
    x: np.ndarray = field(repr=False)
    t: np.ndarray = field(repr=False)
    dtype: str
    steps: int
    passes: int

    def __repr__(self) -> str:
        return (f"OnlineRun(experiment={self.experiment!r}, sizes={self.network.sizes}, "
                f"activations={tuple(n for n, _ in self.network.activations)}, loss={self.network.loss!r}, "
                f"dtype={self.dtype!r}, steps={self.steps}, passes={self.passes})")

    def rebuild(self) -> str:
        return (f"run = post_experiments.experiment({self.experiment!r}).rounded({self.dtype!r}); "
                f"schedule = run.schedule(epochs={self.passes})[:{self.steps}]")


def _train(variant, run: OnlineRun, schedule) -> list[reference.Params]:
    try:
        train_online = capability(variant.adapter, "train_online")
        history = train_online(problem_of(run), device=variant.device, dtype=variant.dtype, schedule=schedule)
    except Unsupported as exc:
        pytest.skip(f"unsupported: {exc}")
    assert len(history) == len(schedule), (
        f"{variant.id}: train_online returned {len(history)} parameter sets for a schedule of {len(schedule)} steps")
    return history


def _failure(variant, run: OnlineRun, failing, recorder, what: str) -> str:
    return "\n".join([
        f"{variant.id}: {what}", "", *[c.describe() for c in failing], "",
        f"run: {run!r}",
        f"rebuild it: {run.rebuild()}; then adapters.registry.load_target({variant.target!r}).train_online("
        f"crossval.problem_of(run), device={variant.device!r}, dtype={variant.dtype!r}, schedule=schedule)",
        f"rerun exactly this test: {recorder.rerun_command()}",
    ])


@pytest.mark.parametrize("name", pe.NAMES)
def test_first_online_updates_follow_the_reference_trajectory(variant, recorder, name):
    """Update k of the first ``STEPS`` is within the error model's bound after k online
    steps of the reference's update k, from the same rounded start."""
    _check_first_updates(variant, recorder, name)


class _ReplaysAnotherSchedule:
    """The real torch target, handed a schedule changed by ``change``: a planted bug."""

    def __init__(self, change) -> None:
        self.target, self.change = load_target("torch"), change
        self.name, self.framework = "torch-planted", "torch"

    def train_online(self, problem, *, device: str, dtype: str, schedule):
        return self.target.train_online(problem, device=device, dtype=dtype, schedule=self.change(list(schedule)))


def _one_lr_off(schedule):
    n, lr = schedule[7]
    return [*schedule[:7], (n, lr * (1 + 1e-6)), *schedule[8:]]


def _two_swapped(schedule):
    return [*schedule[:3], schedule[4], schedule[3], *schedule[5:]]


@pytest.mark.parametrize("change", [_one_lr_off, _two_swapped], ids=["one-lr-off-by-1e-6", "two-examples-swapped"])
def test_the_trajectory_check_catches_a_step_off_the_schedule(change):
    pytest.importorskip("torch")
    variant = Variant("torch-planted", "cpu", "float64", _ReplaysAnotherSchedule(change))
    recorder = Recorder(Results(), "planted", "planted", [], 0, "ci")  # its records stay out of the report
    with pytest.raises(Mismatch, match="online updates of XOR-hidden4 leave the reference's trajectory"):
        _check_first_updates(variant, recorder, "XOR-hidden4")


def _check_first_updates(variant, recorder, name: str) -> None:
    exp = pe.experiment(name).rounded(variant.dtype)
    schedule = exp.schedule(epochs=1)[:STEPS]
    run = OnlineRun(name, exp.network, exp.params, exp.x, exp.t, variant.dtype, STEPS, 1)
    history = _train(variant, run, schedule)
    expected = online_trajectory(exp.network, exp.params, exp.x, exp.t, schedule)
    kw = dict(dtype=variant.dtype, schedule=schedule)
    strict = online_trajectory_bounds(exp.network, exp.params, exp.x, exp.t, **kw)
    loose = online_trajectory_bounds(exp.network, exp.params, exp.x, exp.t, absolute=True, **kw)
    k = min(len(strict), len(loose))
    if k == 0:
        pytest.skip(f"{name} in {variant.dtype}: the error model cannot bound even the first step")
    failing = recorder.check(variant, run, _drift(run, history[:k], expected[:k], strict[:k], loose[:k]))
    if failing:
        raise Mismatch(_failure(variant, run, failing, recorder,
                                f"the first {k} online updates of {name} leave the reference's trajectory"))


def _drift(run: OnlineRun, history, expected, strict, loose) -> list[Comparison]:
    """One comparison per layer's W and b, stacked over the steps: the first index of
    an entry is the step (0 = after the first update)."""
    k, out = len(history), []
    for l in range(run.network.n_layers):
        for j, key in enumerate(("W", "b")):
            got = np.stack([p[l][j] for p in history])
            want = np.stack([p[l][j] for p in expected])
            bound = np.stack([s[j][l] for s in strict])
            lbound = np.stack([s[j][l] for s in loose])
            out.append(Comparison(
                f"{key} of layer {l + 1} after each of the first {k} online updates of {run.experiment} "
                "(first index: update - 1), Eq. 7", f"{key}_online[{l + 1}]", run.dtype, got, want,
                SAFETY * bound, SAFETY * lbound))
    return out


def _plan(variant, name: str) -> tuple[int, Expectation]:
    """Passes and expectation of ``name`` under the current hypothesis profile."""
    exp = pe.experiment(name)
    if settings.get_current_profile_name() in FULL_RUN_PROFILES:
        if (variant.dtype, name) in STALLS:
            pytest.skip(STALLS[(variant.dtype, name)])
        return exp.epochs, exp.expected
    if variant.target in SLOW_TARGETS:
        pytest.skip(f"{SLOW_TARGETS[variant.target]}: its training runs run under --hypothesis-profile=thorough")
    passes, short = SHORT_RUNS[name]
    return passes, short or exp.expected


@pytest.mark.parametrize("name", pe.NAMES)
def test_training_run_reaches_the_posts_result(variant, recorder, name):
    """The target's trained model reaches the post's result, as the reference's does
    on the same rounded data and schedule (shortened outside ``thorough``)."""
    passes, expected = _plan(variant, name)
    exp = pe.experiment(name).rounded(variant.dtype)
    schedule = exp.schedule(epochs=passes)
    run = OnlineRun(name, exp.network, exp.params, exp.x, exp.t, variant.dtype, len(schedule), passes)
    final = _train(variant, run, schedule)[-1]
    rerun = f"run: {run!r}\nrebuild it: {run.rebuild()}\nrerun exactly this test: {recorder.rerun_command()}"
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in final), (
        f"{variant.id}: after {passes} passes of {name} the parameters are not finite\n{rerun}")
    ref_final, _ = pe.reference_run(name, variant.dtype, passes)
    got, ref = _score(exp, final, expected.measure), _score(exp, ref_final, expected.measure)
    recorder.record_training_run("reference", "cpu", variant.dtype, name, passes, expected.measure, ref, ref_final)
    recorder.record_training_run(variant.target, variant.device, variant.dtype, name, passes, expected.measure,
                                 got, final)
    assert expected.met(ref), (
        f"the reference itself reaches {expected.measure} {ref:.3g} on {name} in {variant.dtype} after {passes} "
        f"passes, expected {expected}: the run plan (SHORT_RUNS, post_experiments.EXPECTED) is wrong")
    assert expected.met(got), (
        f"{variant.id}: after {passes} passes of {name} the model reaches {expected.measure} {got:.3g}, expected "
        f"{expected} (the reference: {ref:.3g})\n{rerun}")


def _score(exp: pe.Experiment, params: reference.Params, measure: str) -> float:
    if measure == "loss per example":
        return float(reference.loss(exp.network, params, exp.x, exp.t) / len(exp.x))
    return exp.score(params)
