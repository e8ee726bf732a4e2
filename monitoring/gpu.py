"""GPU readings through NVML (nvidia-ml-py), labelled like NVIDIA dcgm-exporter.

dcgm-exporter labels every GPU series with ``gpu`` (the NVML device index, as a
string) and ``UUID`` (upper case, e.g. ``GPU-8f1f...``). We use the same two
label names and values, so our series join DCGM's without relabelling::

    appliance_gpu_utilization_ratio * on (gpu, UUID) group_left (modelName) (DCGM_FI_DEV_GPU_UTIL / 100)

Where there is no NVIDIA driver or GPU, :class:`GpuSampler` raises
:class:`GpuUnavailable` and the exporter exports no GPU series at all: absent,
never zeros.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pynvml

_init_lock = threading.Lock()


class GpuUnavailable(RuntimeError):
    """NVML could not be loaded or initialised, or names no such device."""


@dataclass(frozen=True)
class GpuReading:
    gpu: str  # NVML index, as dcgm-exporter's ``gpu`` label
    uuid: str  # as dcgm-exporter's ``UUID`` label
    utilization_ratio: float
    memory_used_bytes: int
    memory_total_bytes: int
    power_watts: float | None  # None where the board does not report it
    temperature_celsius: float | None


def rank_device(local_rank: int) -> str:
    """The CUDA device a rank uses (``cuda:local_rank``), as CUDA_VISIBLE_DEVICES names it.

    NVML ignores CUDA_VISIBLE_DEVICES, so a rank's NVML device is found through
    that list: an entry is an NVML index or a UUID. Without the variable, the
    local rank is the NVML index.
    """
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ and local_rank < len(visible):
        return visible[local_rank]
    return str(local_rank)


class GpuSampler:
    """Reads utilization, memory, power and temperature of chosen GPUs.

    ``devices`` are NVML indices or UUIDs (as in CUDA_VISIBLE_DEVICES); None
    means every GPU NVML sees. Construction raises :class:`GpuUnavailable` with
    NVML's own message where there is nothing to read.
    """

    def __init__(self, devices: Sequence[str | int] | None = None) -> None:
        try:
            with _init_lock:
                pynvml.nvmlInit()
        except pynvml.NVMLError as exc:  # also covers a missing libnvidia-ml.so
            raise GpuUnavailable(f"NVML unavailable: {exc}") from exc
        self._open = True
        try:
            if devices is None:
                devices = range(pynvml.nvmlDeviceGetCount())
            self._handles = []
            for device in devices:
                text = str(device)
                if text.isdigit():
                    handle = pynvml.nvmlDeviceGetHandleByIndex(int(text))
                else:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(text)
                index = str(pynvml.nvmlDeviceGetIndex(handle))
                uuid = pynvml.nvmlDeviceGetUUID(handle)
                self._handles.append((handle, index, uuid if isinstance(uuid, str) else uuid.decode()))
        except pynvml.NVMLError as exc:
            self.close()
            raise GpuUnavailable(f"NVML cannot open GPU(s) {list(devices or [])}: {exc}") from exc
        if not self._handles:
            self.close()
            raise GpuUnavailable("NVML sees no GPU")

    def sample(self) -> list[GpuReading]:
        """One reading per device; a device NVML fails to read is left out, not zeroed."""
        out = []
        for handle, index, uuid in self._handles:
            try:
                util = pynvml.nvmlDeviceGetUtilizationRates(handle)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            except pynvml.NVMLError:
                continue
            out.append(
                GpuReading(
                    gpu=index,
                    uuid=uuid,
                    utilization_ratio=util.gpu / 100.0,
                    memory_used_bytes=int(memory.used),
                    memory_total_bytes=int(memory.total),
                    power_watts=_optional(lambda h=handle: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                    temperature_celsius=_optional(
                        lambda h=handle: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
                    ),
                )
            )
        return out

    def close(self) -> None:
        if self._open:
            self._open = False
            with _init_lock:
                pynvml.nvmlShutdown()


def _optional(read) -> float | None:
    try:
        return float(read())
    except pynvml.NVMLError:
        return None
