"""The engine contract: a network as something to call with tensors, whatever runs it."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from streamstyle.engines.graphs import GraphSpec


class Engine(Protocol):
    """Runs one network: its inputs as tensors in the order of its `GraphSpec`, its output as a tensor. A torch
    module is one as it is."""

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor: ...


def batch_sized(spec: GraphSpec, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """`inputs` with the conditioning given once for the whole batch ([1,D]) repeated to the batch of the first:
    an exported graph's inputs share one batch size."""
    batch = inputs[0].shape[0]
    return tuple(value.expand(batch, *value.shape[1:]) if tensor.shape[0] == "batch" and len(value) == 1 else value
                 for tensor, value in zip(spec.inputs, inputs, strict=True))  # fmt: skip


class GraphEngine:
    """An exported graph run outside torch: tensors go in as float32 arrays on the CPU and the output comes back
    as a tensor on the device of the first input."""

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        # The precision of the last batch, for an engine that picks one per batch (int8 runs in fp32 the styles it
        # would change too much).
        self.ran_in: str | None = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        arrays = {tensor.name: value.detach().float().cpu().contiguous().numpy()
                  for tensor, value in zip(self.spec.inputs, batch_sized(self.spec, inputs), strict=True)}  # fmt: skip
        return torch.from_numpy(self.run(arrays)).to(inputs[0].device)

    def keeps(self, style: dict[str, np.ndarray], say: bool = True) -> bool:
        """Whether this engine's precision paints `style` (one sample's conditioning inputs) within its bound of
        fp32 (fidelity.BOUNDS); an engine that computes in fp32 keeps every style. `say`: one that it does not
        keep is said, once."""
        return True

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError
