"""Loss scaling for fp16 training: one `torch.amp.GradScaler` per network, its state saved as JSON.

fp16 gradients underflow to zero without scaling; the scaler multiplies each loss before backward, unscales
the gradients before the optimiser step, skips a step whose gradients are not finite and adapts the scale.
G and D get a scaler each because their losses, and so their safe scales, differ. For fp32 and bf16 the
scalers are disabled and pass everything through unchanged. Gradients are averaged over data-parallel workers
between backward and `step`, so a non-finite gradient on any worker skips the step on every worker.
"""

from __future__ import annotations

import torch

from student.precision import check_precision


class LossScaling:
    def __init__(self, precision: str, device: torch.device) -> None:
        self.precision = check_precision(precision, "optim.precision")
        enabled = precision == "fp16"
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=enabled) for name in ("G", "D")}

    def backward(self, name: str, loss: torch.Tensor) -> None:
        self.scalers[name].scale(loss).backward()

    def step(self, name: str, *optimizers: torch.optim.Optimizer) -> None:
        """Unscale, step each optimiser whose parameters the loss `name` trained (skipped when its gradients are
        not finite), then update the scale once."""
        scaler = self.scalers[name]
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, dict[str, float | int]]:
        """JSON-ready: per network the current scale and growth tracker ({} when scaling is off)."""
        return {name: dict(scaler.state_dict()) for name, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict[str, dict[str, float | int]]) -> None:
        for name, scaler in self.scalers.items():
            if scaler.is_enabled() and state.get(name):
                scaler.load_state_dict(state[name])
