"""Where targets come from: the built-in ones by name, and any module's ``TARGETS``.

The contract a target meets is ``adapters.interface``; this module only finds and
loads targets.  Loading a built-in target imports its framework, and nothing else is
imported until a target is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

from adapters.interface import Adapter

BUILTIN_TARGETS: Mapping[str, str] = MappingProxyType(
    {
        "torch": "adapters.torch_adapter",
        "torch-func": "adapters.torch_adapter",
        "jax": "adapters.jax_adapter",
        "jax-jit": "adapters.jax_adapter",
    }
)
FRAMEWORK_OF_TARGET: Mapping[str, str] = MappingProxyType(
    {"torch": "torch", "torch-func": "torch", "jax": "jax", "jax-jit": "jax"}
)


def load_targets(module_path: str) -> dict[str, Adapter]:
    """Import ``module_path`` and return its ``TARGETS`` mapping.

    Raises ``ImportError`` when the module (or its framework) cannot be imported,
    and ``TypeError`` when the module exposes no valid ``TARGETS``.
    """
    module = importlib.import_module(module_path)
    targets = getattr(module, "TARGETS", None)
    if not isinstance(targets, Mapping) or not targets:
        raise TypeError(
            f"adapter module {module_path!r} must define TARGETS, a non-empty dict "
            f"mapping target names to Adapter objects; found {targets!r}"
        )
    for name, adapter in targets.items():
        if not isinstance(adapter, Adapter):
            raise TypeError(
                f"TARGETS[{name!r}] in {module_path!r} is {adapter!r}, which lacks the "
                "Adapter methods (version, devices, precision_mode, compute, train)"
            )
    return dict(targets)


def load_target(name: str) -> Adapter:
    """Load one built-in target by name (``torch``, ``torch-func``, ``jax``, ``jax-jit``)."""
    if name not in BUILTIN_TARGETS:
        raise ValueError(
            f"unknown target {name!r}; known targets: {', '.join(BUILTIN_TARGETS)}"
        )
    return load_targets(BUILTIN_TARGETS[name])[name]
