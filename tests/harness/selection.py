"""Which targets, devices and dtypes a run covers, and why any are skipped.

A *variant* is one (target, device, dtype); tests are parametrized over variants
with ids such as ``torch-cpu-float32``, so ``-k "jax and float32"`` selects.  A
framework that is not installed, or a device kind it does not report, still
yields variants -- skipped, with a reason that names what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from adapters.interface import DTYPES, Adapter
from adapters.registry import BUILTIN_TARGETS, FRAMEWORK_OF_TARGET, load_targets

# Device kinds each framework can have; those it does not report become skips.
EXPECTED_DEVICE_KINDS = {"torch": ("cpu", "cuda", "mps"), "jax": ("cpu", "gpu", "tpu")}


class UsageError(ValueError):
    """A selection option names something that does not exist."""


@dataclass(frozen=True)
class Variant:
    target: str
    device: str
    dtype: str
    adapter: Adapter | None
    skip_reason: str | None = None

    @property
    def id(self) -> str:
        return f"{self.target}-{self.device}-{self.dtype}"

    @property
    def framework(self) -> str:
        return self.adapter.framework if self.adapter else FRAMEWORK_OF_TARGET.get(self.target, self.target)


@dataclass(frozen=True)
class LoadedTarget:
    name: str
    framework: str
    adapter: Adapter | None
    missing: str | None  # why it could not be loaded


@cache
def _load_module(module_path: str) -> tuple[dict[str, Adapter], str | None]:
    try:
        return load_targets(module_path), None
    except ImportError as exc:
        return {}, f"{module_path} could not be imported: {exc}"


def load_all(external: tuple[str, ...]) -> list[LoadedTarget]:
    """Built-in targets plus those of every ``--adapter`` module, in that order."""
    loaded = []
    for name, module in BUILTIN_TARGETS.items():
        targets, missing = _load_module(module)
        framework = FRAMEWORK_OF_TARGET[name]
        if missing:
            missing = f"{framework} is not installed ({missing})"
        loaded.append(LoadedTarget(name, framework, targets.get(name), missing))
    for module in external:
        try:
            targets, missing = _load_module(module)
        except TypeError as exc:
            raise UsageError(f"--adapter {module!r}: {exc}") from None
        if missing:
            raise UsageError(f"--adapter {module!r}: {missing}")
        loaded += [LoadedTarget(n, a.framework, a, None) for n, a in targets.items()]
    return loaded


def split_option(value: str | None, env: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = value if value is not None else os.environ.get(env)
    if not raw or raw == "all":
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def select_targets(loaded: list[LoadedTarget], names: tuple[str, ...] | None) -> list[LoadedTarget]:
    if names is None:
        return loaded
    frameworks = {t.framework for t in loaded}
    known = [t.name for t in loaded]
    for name in names:
        if name not in known and name not in frameworks:
            raise UsageError(
                f"--frameworks names {name!r}; known targets: {', '.join(known)}; "
                f"known frameworks: {', '.join(sorted(frameworks))}"
            )
    return [t for t in loaded if t.name in names or t.framework in names]


def check_dtypes(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if name not in DTYPES:
            raise UsageError(f"--dtypes names {name!r}; known dtypes: {', '.join(DTYPES)}")
    return names


def _kind(device: str) -> str:
    return device.split(":")[0]


def variants(targets: list[LoadedTarget], devices: tuple[str, ...] | None, dtypes: tuple[str, ...]) -> list[Variant]:
    out = []
    for t in targets:
        kinds = EXPECTED_DEVICE_KINDS.get(t.framework, ("cpu",))
        if t.adapter is None:
            out += [Variant(t.name, "cpu", d, None, t.missing) for d in dtypes]
            continue
        reported = t.adapter.devices()
        wanted = devices or tuple(dict.fromkeys((*reported, *kinds)))
        for device in wanted:
            present = [r for r in reported if r == device or _kind(r) == device]
            if not present:
                if device not in kinds and ":" not in device:
                    raise UsageError(
                        f"--devices names {device!r}; {t.framework} devices are kinds "
                        f"{', '.join(kinds)} or names such as {', '.join(reported)}"
                    )
                why = f"{t.framework} reports no {device!r} device (it reports: {', '.join(reported)})"
                out += [Variant(t.name, device, d, None, why) for d in dtypes]
                continue
            out += [Variant(t.name, r, d, t.adapter) for r in present for d in dtypes]
    return _unique(out)


def _unique(items: list[Variant]) -> list[Variant]:
    seen, out = set(), []
    for v in items:
        if v.id not in seen:
            seen.add(v.id)
            out.append(v)
    return out
