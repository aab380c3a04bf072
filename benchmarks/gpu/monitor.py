"""The GPU seen from outside the contenders: its name, and its busy share and memory in use,
sampled once a second by a background thread.

NVML answers both (the share of time a kernel ran, the memory every process holds). The GPU
machine may lack `pynvml`; Ray vendors a copy, and `nvidia-smi` reads NVML too. Without any of
them the busy share is unknown: the benchmark says so and goes on.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import threading
import time
from typing import Protocol

from trainable.errors import first_line

GIB = 2**30
NVML_MODULES = ("pynvml", "ray._private.thirdparty.pynvml")
Sample = tuple[float, float, float]  # Unix time, busy percent, memory used (GiB)


class Probe(Protocol):
    source: str

    def read(self) -> tuple[float, float]:
        """Busy percent and memory used (GiB) of the first GPU CUDA sees, now."""
        ...

    def name(self) -> str: ...


def visible_gpu(cuda_visible_devices: str | None) -> str:
    """The first GPU that CUDA sees (its cuda:0) as NVML and `nvidia-smi -i` name it: NVML
    counts every GPU of the machine whatever CUDA_VISIBLE_DEVICES hides. An index there is
    taken in NVML's PCI bus order (set CUDA_DEVICE_ORDER=PCI_BUS_ID for CUDA to agree); a
    UUID (GPU-...) is the same in both."""
    first = (cuda_visible_devices or "").split(",")[0].strip()
    return first or "0"


class NvmlProbe:
    def __init__(self, module_name: str):
        self.nvml = importlib.import_module(module_name)
        self.nvml.nvmlInit()
        gpu = visible_gpu(os.environ.get("CUDA_VISIBLE_DEVICES"))
        if gpu.isdigit():
            self.handle = self.nvml.nvmlDeviceGetHandleByIndex(int(gpu))
        else:
            self.handle = self.nvml.nvmlDeviceGetHandleByUUID(gpu)
        self.source = f"NVML through {module_name}"

    def read(self) -> tuple[float, float]:
        busy = self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
        return float(busy), self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / GIB

    def name(self) -> str:
        name = self.nvml.nvmlDeviceGetName(self.handle)
        return name.decode() if isinstance(name, bytes) else str(name)


class SmiProbe:
    """One `nvidia-smi` query per reading: slower than NVML in-process, the same numbers."""

    source = "NVML through nvidia-smi"

    def __init__(self):
        self.gpu = visible_gpu(os.environ.get("CUDA_VISIBLE_DEVICES"))

    def _query(self, fields: str) -> list[str]:
        out = subprocess.run(
            [
                "nvidia-smi",
                f"--query-gpu={fields}",
                "--format=csv,noheader,nounits",
                "-i",
                self.gpu,
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return [field.strip() for field in out.strip().split(",")]

    def read(self) -> tuple[float, float]:
        busy, used_mib = self._query("utilization.gpu,memory.used")
        return float(busy), float(used_mib) / 1024

    def name(self) -> str:
        return self._query("name")[0]


def open_probe() -> tuple[Probe | None, str]:
    """The first way of reading the GPU that works here and its source, or None and why none."""
    failures = []
    for module_name in NVML_MODULES:
        try:
            probe = NvmlProbe(module_name)
            probe.read()
            return probe, probe.source
        except Exception as exc:  # missing, or no driver library: try the next
            failures.append(f"{module_name}: {first_line(exc)}")
    if shutil.which("nvidia-smi"):
        try:
            probe = SmiProbe()
            probe.read()
            return probe, probe.source
        except Exception as exc:
            failures.append(f"nvidia-smi: {first_line(exc)}")
    else:
        failures.append("nvidia-smi: not on the PATH")
    return None, "; ".join(failures)


def gpu_name(probe: Probe | None) -> str:
    try:
        if probe is not None:
            return probe.name()
    except Exception:
        pass
    import torch  # initialises CUDA in this process, so only where NVML cannot tell

    return torch.cuda.get_device_name(0)


class Monitor:
    """Reads the probe every `period_s` in a daemon thread; `samples` grows while it runs. A
    reading that fails is skipped and counted, never raised."""

    def __init__(self, probe: Probe | None, period_s: float = 1.0):
        self.probe, self.period_s = probe, period_s
        self.samples: list[Sample] = []
        self.failed_reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-monitor", daemon=True)

    def start(self) -> None:
        if self.probe is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                busy, used = self.probe.read()
                self.samples.append((time.time(), busy, used))
            except Exception:
                self.failed_reads += 1
            next_at += self.period_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def wait_for_release(
    probe: Probe | None, baseline_gib: float | None, timeout_s: float = 20.0
) -> float | None:
    """Waits until the GPU's memory in use is back near `baseline_gib` (what it held before the
    benchmark), so that the next contender has the GPU to itself. Returns the GiB still held
    above it (0.0 once released; None where it cannot be read)."""
    if probe is None or baseline_gib is None:
        time.sleep(2)  # the contender's processes are gone; the driver frees their memory
        return None
    deadline = time.monotonic() + timeout_s
    above = 0.0
    while True:
        try:
            above = max(0.0, probe.read()[1] - baseline_gib)
        except Exception:
            return None
        if above <= 0.5 or time.monotonic() > deadline:
            return above if above > 0.5 else 0.0
        time.sleep(0.5)
