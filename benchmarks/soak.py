"""False-alarm soak: many examples against the real frameworks, with the suite's check.

    python benchmarks/soak.py [--examples 100000] [--targets torch] [--dtypes float32] [--chunk 500]

Runs ``crossval.check_quantities`` -- the very check of
``test_every_quantity_matches_reference``, several networks of one architecture per
hypothesis example -- with a ``results.Recorder`` holding the real known discrepancies
(``tests/suite/known_discrepancies.toml``), until ``--examples`` networks per target and
dtype are cross-checked, in chunks of ``--chunk`` hypothesis examples, each chunk under
its own hypothesis seed.  A failure ends only its chunk (hypothesis stops at the first
failing example; ``--shrink`` shrinks it first), and the soak goes on.  Printed per
target and dtype: the examples checked, every failure (goal: none), the largest
error/allowed ratios, and the cases behind the top ratios.
"""

from __future__ import annotations

import argparse
import heapq
import time

import common
import pytest
from hypothesis import settings

from harness.compare import Mismatch
from harness.crossval import check_quantities

TOP = 5


def soak(target: str, dtype: str, examples: int, chunk: int, base_seed: int) -> dict:
    v = common.variant(target, dtype)
    out = {"checked": 0, "failures": [], "errors": [], "skips": [], "known": 0, "top": [],
           "worst_tensor": (0.0, ""), "start": time.perf_counter()}
    index = 0
    while out["checked"] < examples:
        before = out["checked"]
        rec = common.recorder(v, base_seed + index)
        try:
            check_quantities(v, rec, base_seed + index, chunk)
        except Mismatch as exc:
            out["failures"].append(f"chunk seed {base_seed + index}: {exc}")
        except pytest.skip.Exception as exc:
            out["skips"].append(str(exc))
        except Exception as exc:  # noqa: BLE001  a framework or suite error: reported, the soak goes on
            notes = "\n".join(getattr(exc, "__notes__", []))  # hypothesis adds the falsifying case
            out["errors"].append(f"chunk seed {base_seed + index}: {type(exc).__name__}: {exc}\n{notes}")
        _distill(rec.results.records, out)
        index += 1
        if out["checked"] == before and (out["skips"] or out["errors"]):
            break  # nothing this variant can run: reported, not retried
    out["wall"] = time.perf_counter() - out.pop("start")
    out["load"] = common.load()
    return out


def _distill(records, out: dict) -> None:
    """Keep counts, the top entry-wise ratios and the worst tensor-wise one; drop the rest."""
    out["checked"] += sum(r.quantity == "loss" for r in records)
    for r in records:
        if r.known:
            out["known"] += r.entry_ratio > 1 or r.tensor_ratio > 1
            continue
        item = (r.entry_ratio, r.tensor_ratio, r.quantity, r.case)
        if any(i[2:] == item[2:] for i in out["top"]):  # a failing example is replayed once
            continue
        if len(out["top"]) < TOP:
            heapq.heappush(out["top"], item)
        elif item[0] > out["top"][0][0]:
            heapq.heapreplace(out["top"], item)
        if r.tensor_ratio > out["worst_tensor"][0]:
            out["worst_tensor"] = (r.tensor_ratio, r.case)


def report(target: str, dtype: str, r: dict) -> list[str]:
    top = sorted(r["top"], reverse=True)
    entry = top[0][0] if top else 0.0
    lines = [
        f"{target:<10} {dtype:<9} {r['checked']} networks in {r['wall']:.0f} s: {len(r['failures'])} failure(s), "
        f"{len(r['errors'])} error(s); largest error/allowed (not explained by a known discrepancy): "
        f"entry-wise {entry:.3g}, tensor-wise {r['worst_tensor'][0]:.3g}; "
        f"{r['known']} comparison(s) explained by known discrepancies [{r['load']}]",
    ]
    lines += [f"    skipped: {s}" for s in sorted(set(r["skips"]))]
    for e, t, q, case in top:
        lines.append(f"    top entry-wise {e:.3g} (tensor-wise {t:.3g}) on {q}: {case}")
    for f in r["failures"] + r["errors"]:
        lines.append("    FAILURE " + "\n      ".join(f.splitlines()[:14]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="networks per target and dtype (default 100000)")
    parser.add_argument("--targets", help=f"comma-separated, from {','.join(common.TARGETS)}; default all")
    parser.add_argument("--dtypes", help=f"comma-separated, from {','.join(common.DTYPES)}; default all")
    parser.add_argument("--chunk", type=int, default=100, help="hypothesis examples per run (one seed each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first chunk; chunk i uses seed + i")
    parser.add_argument("--shrink", action="store_true", help="shrink a failing example before reporting it")
    args = parser.parse_args()
    if args.shrink:
        settings.load_profile("bench-shrink")
    targets = common.split(args.targets, common.TARGETS, "--targets")
    dtypes = common.split(args.dtypes, common.DTYPES, "--dtypes")
    print(common.machine())
    print(f"soak: {args.examples} networks per target and dtype, chunks of {args.chunk} examples, seeds {args.seed}+; "
          f"known discrepancies from {common.KNOWN_FILE.relative_to(common.ROOT)}")
    for target in targets:
        for dtype in dtypes:
            print("\n".join(report(target, dtype, soak(target, dtype, args.examples, args.chunk, args.seed))), flush=True)


if __name__ == "__main__":
    main()
