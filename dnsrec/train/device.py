"""Where and in which precision to run: CUDA with bf16 autocast when present, else CPU fp32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from dnsrec.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    bf16: bool

    @staticmethod
    def resolve(device: str = "auto", precision: str = "auto") -> Placement:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("config key 'train.device': 'cuda' requested but no CUDA device is available")
        bf16 = precision == "bf16" or (precision == "auto" and device == "cuda")
        return Placement(torch.device(device), bf16)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.bf16:
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """The dtype of the scoring matmul (bf16 under autocast, else the tensors' own)."""
        return torch.bfloat16 if self.bf16 else None

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return f"{name} ({'bf16' if self.bf16 else 'fp32'})"
