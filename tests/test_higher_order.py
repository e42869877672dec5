"""Beyond the single gradient: forward-mode tangents and per-example gradients of
torch.func and jax against the reference (``reference.jvp``, ``reference.per_example_gradients``).

The adapters' interface has no such calls, so each framework gets a small loss
written here with its public ops -- smooth activations and the losses sse, mse,
bce_logits and softmax_ce, as ``sum of terms x reduction scale`` -- and its own
transforms: ``torch.func.jvp`` / ``jax.jvp`` of the loss in the parameters, and
``torch.func.vmap(torch.func.grad(...))`` / ``jax.vmap(jax.grad(...))`` of one
example's term.

Tolerances come from the error model (``tests/error_model.py``), SAFETY x:
* loss tangent dE: ``test_reference_forward_mode.jvp_error_bound`` -- sum |tangent| x the
  bound of dE/dW, dE/db, plus the dot product's rounding;
* per-example dE/dW, dE/db: ``test_reference_per_example.per_example_error_bounds`` --
  the bound of the one-example gradient (Eq. 15 with a one-term sum), times the scale.
The loss tangent is held to the strict model entry-wise and the absolute-activation one
tensor-wise (``compare.Comparison``); per-example gradients, whose single products
expose each g' entry unsummed, to the absolute-activation model throughout, since the
frameworks form tanh' and sigmoid' from the rounded output (known_discrepancies.toml).  Deliberately broken variants prove each check can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from compare import Comparison, Mismatch
from error_model import SAFETY, error_bounds, fits_dtype
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import Case, build_case, cases
from test_reference_forward_mode import jvp_error_bound, tangent_of
from test_reference_per_example import per_example_error_bounds

import reference
from reference import losses

ACTIVATIONS = ("identity", "tanh", "sigmoid", "softplus", "gelu", "silu", "log_sigmoid")
LOSSES = ("sse", "mse", "bce_logits", "softmax_ce")
DTYPES = ("float64", "float32")
EXAMPLES = {"torch": 10, "jax": 4}  # jax compiles per new shape


def _strategy(dtype: str):
    return cases(dtype=dtype, depth=(1, 3), width=(2, 5), batch=(1, 4), activations=ACTIVATIONS, losses=LOSSES)


def _usable(case: Case) -> bool:
    b = error_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    return fits_dtype(b, case.dtype) and all(p.get("threshold", np.inf) == np.inf for _, p in case.network.activations)


# --- the frameworks' losses, transforms and deliberately broken variants -------------------

def _ops(framework: str):
    if framework == "torch":
        torch = pytest.importorskip("torch")
        F = torch.nn.functional
        return {"lib": torch, "softplus": lambda z, beta=1.0, threshold=np.inf: F.softplus(z, beta), "gelu": F.gelu, "silu": F.silu,
                "log_sigmoid": F.logsigmoid, "softmax": lambda z: F.softmax(z, dim=-1),
                "log_softmax": lambda z: F.log_softmax(z, dim=-1), "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnn = jax.nn
    return {"lib": jax, "softplus": lambda z, beta=1.0, threshold=np.inf: jnn.softplus(beta * z) / beta,
            "gelu": lambda z: jnn.gelu(z, approximate=False), "silu": jnn.silu, "log_sigmoid": jnn.log_sigmoid,
            "softmax": jnn.softmax, "log_softmax": jnn.log_softmax, "tanh": jax.numpy.tanh, "sigmoid": jnn.sigmoid}


def _loss_fn(ops, net: reference.Network, scale: float):
    def loss(params, x, t):
        a = x
        for (W, b), (name, p) in zip(params, net.activations):
            z = a @ W + b
            a = z if name == "identity" else ops[name](z, **p)
        if net.loss in ("sse", "mse"):
            terms = (0.5 if net.loss == "sse" else 1.0) * (a - t) ** 2
        elif net.loss == "bce_logits":
            terms = t * ops["softplus"](-a) + (1 - t) * ops["softplus"](a)
        else:
            terms = -t * ops["log_softmax"](a)
        return terms.sum() * scale
    return loss


def _arrays(framework: str, ops, case: Case):
    if framework == "torch":
        dt = getattr(ops["lib"], case.dtype)
        return lambda v: ops["lib"].tensor(np.asarray(v), dtype=dt)
    import jax.numpy as jnp
    return lambda v: jnp.asarray(np.asarray(v), dtype=case.dtype)


def framework_jvp(framework: str, case: Case, tangent) -> float:
    """dE along ``tangent`` (parameters only): torch.func.jvp or jax.jvp of the loss."""
    ops = _ops(framework)
    arr = _arrays(framework, ops, case)
    loss = _loss_fn(ops, case.network, losses.reduction_scale(case.network, len(case.x)))
    params = [(arr(W), arr(b)) for W, b in case.params]
    tps = [(arr(W), arr(b)) for W, b in tangent]
    x, t = arr(case.x), arr(case.t)
    f = lambda p: loss(p, x, t)
    jvp = ops["lib"].func.jvp if framework == "torch" else ops["lib"].jvp
    _, dE = jvp(f, (params,), (tps,))
    return float(np.asarray(dE, np.float64))


def framework_per_example(framework: str, case: Case) -> list[tuple[np.ndarray, np.ndarray]]:
    """vmap over examples of grad of one example's term (the batch's reduction scale kept)."""
    ops = _ops(framework)
    arr = _arrays(framework, ops, case)
    loss = _loss_fn(ops, case.network, losses.reduction_scale(case.network, len(case.x)))
    params = [(arr(W), arr(b)) for W, b in case.params]
    one = lambda p, xn, tn: loss(p, xn[None], tn[None])
    lib = ops["lib"]
    if framework == "torch":
        grads = lib.func.vmap(lib.func.grad(one), in_dims=(None, 0, 0))(params, arr(case.x), arr(case.t))
    else:
        grads = lib.vmap(lib.grad(one), in_axes=(None, 0, 0))(params, arr(case.x), arr(case.t))
    as_np = lambda g: np.asarray(g.detach() if framework == "torch" else g, dtype=np.float64)
    return [(as_np(gW), as_np(gb)) for gW, gb in grads]


def jvp_without_bias_tangent(framework: str, case: Case, tangent) -> float:
    return framework_jvp(framework, case, [(tW, 0 * tb) for tW, tb in tangent])


def jvp_of_the_last_layer_only(framework: str, case: Case, tangent) -> float:
    return framework_jvp(framework, case, [(0 * tW, 0 * tb) for tW, tb in tangent[:-1]] + tangent[-1:])


def per_example_summed_over_units(framework: str, case: Case):
    return [(np.broadcast_to(gW.sum(axis=1, keepdims=True), gW.shape), gb)
            for gW, gb in framework_per_example(framework, case)]


def per_example_without_reduction_scale(framework: str, case: Case):
    scale = losses.reduction_scale(case.network, len(case.x)) / losses.reduction_scale(case.network, 1)
    return [(gW / scale, gb / scale) for gW, gb in framework_per_example(framework, case)]


# --- checks -------------------------------------------------------------------------------

def check_jvp(jvp_fn, framework: str, case: Case, tangent) -> None:
    want, _, _ = reference.jvp(case.network, case.params, case.x, case.t, tangent, np.zeros_like(case.x))
    got = jvp_fn(framework, case, tangent)
    strict = SAFETY * jvp_error_bound(case, tangent, dtype=case.dtype)
    loose = SAFETY * jvp_error_bound(case, tangent, dtype=case.dtype, absolute=True)
    comp = Comparison("loss tangent dE = <dE/dparams, tangent> (forward mode of Eqs. 3-4, 1)", "jvp", case.dtype,
                      np.asarray(got), np.asarray(want), np.asarray(strict), np.asarray(loose))
    if comp.failed:
        raise Mismatch(f"{framework} {case.dtype}:\n{comp.describe()}\ncase: {case!r}")


def check_per_example(per_fn, framework: str, case: Case) -> None:
    want = reference.per_example_gradients(case.network, case.params, case.x, case.t)
    got = per_fn(framework, case)
    # The absolute-activation model entry by entry: torch and jax form tanh' and sigmoid'
    # from the rounded output (1 - y^2, y (1 - y)), as known_discrepancies.toml records.
    loose = per_example_error_bounds(case, dtype=case.dtype, absolute=True)
    failing = []
    for l in range(case.network.n_layers):
        n = l + 1
        for i, what, eq in ((0, "dE/dW", 15), (1, "dE/db", 18)):
            eq = {15: 6, 18: 8}[eq] if n == case.network.n_layers else eq  # the output layer's Eqs. 6, 8
            comp = Comparison(f"per-example {what} of layer {n} (Eq. {eq} before the batch sum)", f"pe{what}[{n}]",
                              case.dtype, got[l][i], want[l][i], SAFETY * loose[l][i], SAFETY * loose[l][i])
            if comp.failed:
                failing.append(comp.describe())
    if failing:
        raise Mismatch(f"{framework} {case.dtype}:\n" + "\n".join(failing) + f"\ncase: {case!r}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_loss_tangent_matches_reference_jvp(framework: str, dtype: str) -> None:
    _ops(framework)

    @settings(max_examples=EXAMPLES[framework], deadline=None)
    @given(case=_strategy(dtype), seed=st.integers(0, 2**16))
    def check(case, seed):
        assume(_usable(case))
        check_jvp(framework_jvp, framework, case, tangent_of(case, seed, with_x=False)[0])

    check()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_per_example_gradients_match_reference(framework: str, dtype: str) -> None:
    _ops(framework)

    @settings(max_examples=EXAMPLES[framework], deadline=None)
    @given(case=_strategy(dtype))
    def check(case):
        assume(_usable(case))
        check_per_example(framework_per_example, framework, case)

    check()


def _fixed_case(dtype: str) -> Case:
    net = reference.Network((3, 4, 2), ("tanh", "identity"), loss="sse", reduction="mean")
    return build_case(net, batch=3, dtype=dtype, lr=0.1, seed=1, scales=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("broken", [jvp_without_bias_tangent, jvp_of_the_last_layer_only], ids=lambda f: f.__name__)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_jvp_check_catches_a_broken_jvp(framework: str, broken) -> None:
    _ops(framework)
    case = _fixed_case("float64")
    tangent = tangent_of(case, 0, with_x=False)[0]
    check_jvp(framework_jvp, framework, case, tangent)  # the control passes
    with pytest.raises(Mismatch, match="loss tangent dE"):
        check_jvp(broken, framework, case, tangent)


@pytest.mark.parametrize("broken", [per_example_summed_over_units, per_example_without_reduction_scale],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_per_example_check_catches_broken_per_example_gradients(framework: str, broken) -> None:
    _ops(framework)
    case = _fixed_case("float64")
    check_per_example(framework_per_example, framework, case)  # the control passes
    with pytest.raises(Mismatch, match=r"per-example dE/d[Wb] of layer \d \(Eq\. \d+ before the batch sum\)"):
        check_per_example(broken, framework, case)
