"""Every activation and loss, across its whole range, against the reference.

For each selected target x device x dtype, every case of ``sweep.sweep_cases`` -- each
activation with each parameter set the strategies know, in a one-layer (Eq. 5) and a
two-layer network (Eq. 14), and each loss with each reduction, on a deterministic grid
of pre-activations and logits through kinks, tails and the points where common formulas
cancel -- is computed by the target and compared with the reference under the same
error model, verdicts and known discrepancies as the random search
(``sweep_check.run_sweep``).  Deterministic: no hypothesis here.
"""

from __future__ import annotations

from harness import sweep
from harness.sweep_check import run_sweep


def test_every_activation_and_loss_matches_reference_across_its_range(variant, recorder):
    run_sweep(variant, recorder, sweep.sweep_cases(variant.dtype))
