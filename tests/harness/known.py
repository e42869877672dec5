"""Known discrepancies: documented framework findings, each a claim about framework versions.

A file (``tests/suite/known_discrepancies.toml`` for the built-in targets; an outside
adapter passes its own with ``--known-discrepancies``, which may be repeated) lists
entries such as::

    [[discrepancy]]
    id = "torch-hardsigmoid-float32-sixth"    # unique; names the entry in every report
    targets = ["torch", "torch-func"]          # the targets it was observed on (exact names)
    versions = { torch = "==2.13.0" }          # PEP 440 specifiers on installed distributions
    devices = ["cpu"]                          # optional: device kinds (default: any)
    dtypes = ["float64"]                       # optional (default: any)
    tests = ["test_every_quantity_matches_reference"]   # optional test names (default: any)
    quantities = ["delta", "dW"]               # optional key prefixes (default: every quantity)
    activations = ["hardsigmoid"]              # what it covers: activations and/or losses
    losses = []
    max_relative = 2e-7                        # its bound: see BOUNDS
    when = "bce_saturated"                     # optional: narrows it to cases meeting a condition
    nonfinite = true                           # optional: also explains inf/NaN the framework returns
    raises = { type = "RuntimeError", match = "between 0 and 1" }   # optional: explains this crash
    reason = "what the framework does, with numbers and a reference"
    [discrepancy.reproducer]                   # its minimal case: see harness.reproducers
    ...

An entry applies only where the installed versions satisfy ``versions``, to the targets,
devices, dtypes and tests it names, and in cases that use one of its activations or
losses.  It explains a failing comparison only within its bound, and its error-model
bounds loosen only the activations and losses it names, in the layers that use them.
Where several entries apply to one case (a tanh and an elu finding in one network), a
failure within the model that combines their error-model bounds is explained by all of
them together.  Every problem with a file -- a missing file, a syntax error, an unknown
or misspelled key, a wrong type, an entry without a bound or without anything it
covers -- is a ``KnownFileError`` naming the file and the entry.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from harness.conditions import CONDITIONS, PREDICTIONS
from harness.known_errors import KnownFileError

if TYPE_CHECKING:
    from harness.compare import Comparison
    from harness.strategies import Case

# The keys of an entry, and which of them bound what it explains.
BOUNDS = ("max_relative", "activation_error", "forward_relative", "predicted")
KEYS = ("id", "targets", "versions", "devices", "dtypes", "tests", "quantities", "activations", "losses",
        *BOUNDS, "derivative_relative", "z_range", "when", "nonfinite", "raises", "reason", "reproducer")
QUANTITIES = ("loss", "delta", "dW", "db", "W_step", "b_step", "W_traj", "b_traj", "W_online", "b_online", "jvp", "hvp", "pe")
_ID = re.compile(r"[a-z0-9][a-z0-9.-]*")
# What the absolute-activation model loosens to no purpose: piecewise-linear activations
# are computed exactly, and only log-losses form probabilities from the log domain.
EXACT_ACTIVATIONS = frozenset({"identity", "relu", "leaky_relu", "relu6", "hardtanh"})
LOG_LOSSES = frozenset({"bce", "bce_logits", "ce", "softmax_ce"})


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Raises:
    type: str
    match: str

    def matches(self, exc: BaseException) -> bool:
        names = {t.__name__ for t in type(exc).__mro__}
        return self.type in names and re.search(self.match, str(exc)) is not None


@dataclass(frozen=True, eq=False)  # an entry is itself: compared and hashed by identity
class Discrepancy:
    id: str
    targets: tuple[str, ...]
    versions: Mapping[str, str]
    reason: str
    activations: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    quantities: tuple[str, ...] = ()  # key prefixes; () = every quantity
    max_relative: float | None = None
    absolute_activation: bool = False
    forward_relative: float | None = None  # the named activations' values err by this much
    derivative_relative: float | None = None  # ... and their derivatives by this much
    z_range: tuple[float, float] = (-math.inf, math.inf)  # where the relative errors apply
    predicted: str | None = None  # a named prediction of the relative error (PREDICTIONS)
    when: str | None = None
    nonfinite: bool = False
    raises: Raises | None = None
    reproducer: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it came from

    @cached_property
    def version_verdict(self) -> tuple[bool, str]:
        """(applies, why): whether every named distribution is installed at a version the
        entry names, e.g. (False, "jax 0.4.34 is outside <0.4.34")."""
        for dist, spec in self.versions.items():
            have = installed_version(dist)
            if have is None:
                return False, f"{dist} is not installed"
            if not SpecifierSet(spec).contains(Version(have), prereleases=True):
                return False, f"{dist} {have} is outside {spec}"
        return True, ", ".join(f"{d} {installed_version(d)} within {s}" for d, s in self.versions.items())

    @property
    def in_range(self) -> bool:
        return self.version_verdict[0]

    @property
    def scope(self) -> frozenset[str]:
        """The activations and losses whose error model the entry may loosen."""
        return frozenset(self.activations) | frozenset(self.losses)

    @property
    def forward_errors(self) -> dict[str, tuple[float, float, float, float]]:
        """{activation: (value relative error, derivative relative error, z from, z to)}."""
        if self.forward_relative is None and self.derivative_relative is None:
            return {}
        lo, hi = self.z_range
        return {a: (self.forward_relative or 0.0, self.derivative_relative or 0.0, lo, hi) for a in self.activations}

    @property
    def uses_error_model(self) -> bool:
        return self.absolute_activation or bool(self.forward_errors)

    def applies(self, target: str, device: str, dtype: str, test: str, case: Case) -> bool:
        """Version, target, device kind, dtype, test, what the case uses and the condition."""
        used = {name for name, _ in case.network.activations} | {case.network.loss}
        return (
            target in self.targets
            and (not self.devices or device.split(":")[0] in self.devices)
            and (not self.dtypes or dtype in self.dtypes)
            and (not self.tests or test.split("[")[0] in self.tests)
            and bool(used & self.scope)
            and self.in_range
            and (self.when is None or CONDITIONS[self.when](case))
        )

    def explains(self, comparison: Comparison, case: Case) -> bool:
        """Whether this entry alone explains ``comparison`` (which failed) within its bound."""
        if not self.covers(comparison.key):
            return False
        compared = _finite_part(comparison) if self.nonfinite else comparison
        if compared is None:
            return True  # every mismatch is an inf or NaN the entry names
        if self.max_relative is not None:
            return compared.mismatched_relative <= self.max_relative
        if self.predicted is not None:
            return compared.mismatched_relative <= 2.0 * PREDICTIONS[self.predicted](case)
        return within_model(compared, case, [self])

    def covers(self, key: str) -> bool:
        """Whether the entry names the quantity ``key`` (e.g. ``delta[2]``, ``hvp_W[1]``)."""
        return not self.quantities or any(key.startswith(q) for q in self.quantities)


def within_model(comparison: Comparison, case: Case, entries: Sequence[Discrepancy]) -> bool:
    """Every entry of ``comparison`` within the error model that the entries' error-model
    bounds define together: the absolute-activation model for the activations and losses
    they name (``activation_error``, ``forward_relative``), plus the named activations'
    own relative errors.  ``comparison.scoped`` recomputes the quantity's allowance under
    such a model; a quantity without it is explained only where the entries name every
    activation and loss of the case (the whole-network absolute-activation model)."""
    scope = frozenset().union(*(e.scope for e in entries if e.uses_error_model))
    forward = {k: v for e in entries for k, v in e.forward_errors.items()}
    if not scope:
        return False
    if not forward:
        # The scoped model loosens a subset of what the whole-network absolute-activation
        # model loosens, so it allows no more; where it names every activation and the
        # loss it is that model.  Both shortcuts give the recomputation's answer.
        if not comparison.within_loose:
            return False
        if {name for name, _ in case.network.activations} | {case.network.loss} <= scope:
            return True
    if comparison.scoped is None:
        used = {name for name, _ in case.network.activations} - EXACT_ACTIVATIONS
        used |= {case.network.loss} & LOG_LOSSES
        return not forward and used <= scope and comparison.within_loose
    allowed = comparison.scoped(scope, tuple(sorted(forward.items())))
    # An inf or NaN the framework returned is never within an error model, even where a
    # bound has grown to inf: only ``nonfinite`` explains it.
    return allowed is not None and bool(((comparison.diff <= allowed) & np.isfinite(comparison.diff)).all())


def _finite_part(comparison: Comparison) -> Comparison | None:
    """The comparison without the entries the framework returned as inf or NaN (None if
    only those mismatch)."""
    finite = np.isfinite(comparison.actual)
    if finite.all():
        return comparison
    rest = comparison.restricted(finite)
    return rest if rest.failed else None


# --- reading a file ------------------------------------------------------------------------

def load(paths: Sequence[Path]) -> list[Discrepancy]:
    """Every entry of every file, in order; a ``KnownFileError`` for anything wrong."""
    entries: list[Discrepancy] = []
    for path in paths:
        entries += _load_file(Path(path))
    seen: dict[str, str] = {}
    for e in entries:
        if e.id in seen:
            raise KnownFileError(f"{e.source}: entry id {e.id!r} is used twice (also in {seen[e.id]}); ids are unique")
        seen[e.id] = e.source
    return entries


def _load_file(path: Path) -> list[Discrepancy]:
    if not path.is_file():
        raise KnownFileError(f"{path}: no such known-discrepancies file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise KnownFileError(f"{path}: not valid TOML: {exc}") from None
    extra = set(data) - {"discrepancy"}
    if extra:
        raise KnownFileError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}; allowed: [[discrepancy]]")
    raw_entries = data.get("discrepancy", [])
    if not isinstance(raw_entries, list):
        raise KnownFileError(f"{path}: 'discrepancy' must be an array of tables ([[discrepancy]])")
    return [_entry(raw, f"{path}: entry #{i + 1}", str(path)) for i, raw in enumerate(raw_entries)]


def _entry(raw: dict, where: str, source: str) -> Discrepancy:
    # Deferred: the reproducer's case comes from ``strategies`` (hypothesis), which the report
    # and the matrix, reading results through this module, do without.
    from harness.reproducer_cases import check_reproducer

    if "id" in raw and isinstance(raw["id"], str):
        where = f"{where} ({raw['id']})"
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise KnownFileError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(KEYS)}")
    missing = [k for k in ("id", "targets", "versions", "reason", "reproducer") if k not in raw]
    if missing:
        raise KnownFileError(f"{where}: lacks {', '.join(missing)}")
    get = _Getter(raw, where)
    entry_id = get.text("id")
    if not _ID.fullmatch(entry_id):
        raise KnownFileError(f"{where}: id {entry_id!r} must be lower-case letters, digits, '.' and '-'")
    activations, losses = get.names("activations"), get.names("losses")
    if not activations and not losses:
        raise KnownFileError(f"{where}: names no activations and no losses, so it would cover every case; "
                             "give the activations or losses it covers")
    bounds = [k for k in BOUNDS if k in raw]
    if len(bounds) != 1:
        raise KnownFileError(f"{where}: needs exactly one bound of {', '.join(BOUNDS)}; it has "
                             f"{', '.join(bounds) or 'none'} (a `when` condition narrows an entry, it does not bound it)")
    return Discrepancy(
        id=entry_id, targets=get.names("targets", required=True), versions=get.versions(), reason=get.reason(),
        activations=activations, losses=losses, devices=get.names("devices"), dtypes=get.names("dtypes"),
        tests=get.names("tests"), quantities=get.quantities(),
        max_relative=get.fraction("max_relative", 1.0), absolute_activation=get.choice("activation_error", ("absolute",), None) == "absolute",
        forward_relative=get.fraction("forward_relative", 1.0), derivative_relative=get.fraction("derivative_relative", 1.0),
        z_range=get.z_range(), predicted=get.choice("predicted", tuple(PREDICTIONS), None),
        when=get.choice("when", tuple(CONDITIONS), None), nonfinite=get.flag("nonfinite"), raises=get.raises(),
        reproducer=check_reproducer(raw["reproducer"], where), source=source,
    )


@dataclass
class _Getter:
    """Typed reads of one entry's keys, each error naming the entry, the key and what is allowed."""

    raw: dict
    where: str

    def fail(self, key: str, allowed: str) -> KnownFileError:
        return KnownFileError(f"{self.where}: {key} = {self.raw.get(key)!r}; allowed: {allowed}")

    def text(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string")
        return value

    def reason(self) -> str:
        text = self.text("reason")
        if len(text.split()) < 10:
            raise self.fail("reason", "a real reason of at least ten words: what the framework does, with numbers")
        return text

    def names(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (required and not value):
            raise self.fail(key, "a non-empty list of names" if required else "a list of names")
        return tuple(value)

    def quantities(self) -> tuple[str, ...]:
        names = self.names("quantities")
        if any(q not in QUANTITIES for q in names):
            raise self.fail("quantities", f"a list of {', '.join(QUANTITIES)} (key prefixes); omit it for every quantity")
        return names

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None) -> Any:
        value = self.raw.get(key, default)
        if value not in allowed and value != default:
            raise self.fail(key, ", ".join(repr(a) for a in allowed))
        return value

    def fraction(self, key: str, top: float) -> float | None:
        value = self.raw.get(key)
        if value is not None and not (isinstance(value, float | int) and not isinstance(value, bool) and 0 < value <= top):
            raise self.fail(key, f"a number in (0, {top:g}]")
        if key in ("forward_relative", "derivative_relative") and value is not None and not self.raw.get("activations"):
            raise self.fail(key, "a relative error of the activations it names: give activations")
        return None if value is None else float(value)

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def z_range(self) -> tuple[float, float]:
        value = self.raw.get("z_range", [-math.inf, math.inf])
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, float | int) for v in value)
                and value[0] < value[1]):
            raise self.fail("z_range", "[from, to], two numbers with from < to")
        if "z_range" in self.raw and not ({"forward_relative", "derivative_relative"} & set(self.raw)):
            raise self.fail("z_range", "a range for forward_relative or derivative_relative")
        return float(value[0]), float(value[1])

    def versions(self) -> dict[str, str]:
        value = self.raw["versions"]
        if not isinstance(value, dict) or not value:
            raise self.fail("versions", 'a table of distributions and PEP 440 specifiers, e.g. { jax = "<0.4.34" }')
        for dist, spec in value.items():
            try:
                if not isinstance(spec, str) or not spec:
                    raise InvalidSpecifier(repr(spec))
                SpecifierSet(spec)
            except (InvalidSpecifier, InvalidVersion):
                raise self.fail("versions", f'PEP 440 specifiers, e.g. ">=2.13,<=2.13.0"; {dist} = {spec!r} is not one') from None
        return dict(value)

    def raises(self) -> Raises | None:
        value = self.raw.get("raises")
        if value is None:
            return None
        if not (isinstance(value, dict) and set(value) == {"type", "match"}
                and all(isinstance(v, str) and v for v in value.values())):
            raise self.fail("raises", '{ type = "ExceptionName", match = "a regular expression of its message" }')
        return Raises(value["type"], value["match"])


def explain_failure(entries: Sequence[Discrepancy], applicable: Callable[[Discrepancy], bool], comparison: Comparison,
                    case: Case) -> list[Discrepancy]:
    """The entries that explain a failing comparison: the first applicable entry that
    explains it alone, else every applicable error-model entry together when their
    combined model does -- on the finite entries, where an applicable ``nonfinite`` entry
    explains the inf and NaN ones (an overflow row beside a cancellation row) -- else none."""
    candidates = [e for e in entries if e.covers(comparison.key) and applicable(e)]
    for e in candidates:
        if e.explains(comparison, case):
            return [e]
    modelled = [e for e in candidates if e.uses_error_model]
    overflow = [e for e in candidates if e.nonfinite][:1]
    finite = _finite_part(comparison) if overflow else comparison
    if finite is None:
        return overflow
    if (len(modelled) > 1 or (modelled and overflow)) and within_model(finite, case, modelled):
        return modelled + (overflow if finite is not comparison else [])
    return []
