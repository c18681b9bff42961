"""Helpers shared by the benchmark scripts: timing, memory, the machine, output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import psutil
import torch

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
"""Dense bf16 tensor-core peaks (vendor data sheets, SXM parts) used for model FLOP utilisation."""


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels, so that a wall-clock reading is complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Wall-clock readings with device synchronisation.

    Args:
        device: The device whose queue is drained before every reading.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self) -> float:
        sync(self.device)
        return time.perf_counter()


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (NaN when empty)."""
    return statistics.median(values) if values else float("nan")


def host_rss_bytes() -> int:
    """Resident memory of this process and its children (loader workers), in bytes."""
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # a worker that just exited
            pass
    return total


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on, including the load average at that moment."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "device": str(device),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """Dense bf16 peak of ``device`` in TFLOP/s (``override`` wins; None when unknown)."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def emit(record: dict[str, Any]) -> None:
    """Print one JSON line."""
    print(json.dumps(record), flush=True)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_attention_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _cpu_attention_backward_flops(grad_shape, q_shape, k_shape, v_shape, *args, out_shape=None,
                                  **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_shape, q_shape, k_shape, v_shape)


def flop_counter():
    """A ``torch.utils.flop_counter.FlopCounterMode`` that also counts the fused attention of a
    CPU run: torch counts the CUDA flash and memory-efficient kernels, but not
    ``_scaled_dot_product_flash_attention_for_cpu`` (and its backward), which timm's blocks call
    on a CPU; without this mapping a CPU count leaves attention out."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
    })
