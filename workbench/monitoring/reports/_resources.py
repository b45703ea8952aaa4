"""``ResourceMonitor``: CPU, memory, disk and network use now and over the last hours (psutil).

Owns sampling the machine and this process, and keeping a bounded in-memory history of the
samples (taken on demand, or every ``interval_s`` by a background thread after ``start()``).
The history is this process's: it is not written to the store, since a sample every 15 s would
outgrow the recordings it is meant to explain. The Prometheus resource gauges are the metrics
layer's; the health checks and bottleneck detectors read their numbers from here.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from workbench.store import Store

__all__ = ["ResourceMonitor", "ResourceUsage", "UsageHistory", "memory_limit_bytes"]

_MB = 1024 * 1024


def memory_limit_bytes() -> int:
    """The memory this process may use: its cgroup's limit when one is set, else the machine's."""
    total = int(psutil.virtual_memory().total)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            return int(text)
    return total


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """One sample. ``cpu_percent`` and ``memory_percent`` are the machine's (what contends);
    ``memory_mb`` is this process's resident memory, against ``memory_limit_mb``."""

    timestamp: float
    cpu_percent: float
    process_cpu_percent: float
    memory_mb: float
    memory_limit_mb: float
    memory_percent: float
    active_tasks: int
    disk_read_bytes: int
    disk_write_bytes: int
    network_sent_bytes: int
    network_recv_bytes: int


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """The samples of the last ``hours`` and their peaks and averages (zeros when empty)."""

    hours: float
    samples: tuple[ResourceUsage, ...]
    max_cpu_percent: float
    avg_cpu_percent: float
    max_memory_mb: float
    avg_memory_mb: float
    max_memory_percent: float


class ResourceMonitor:
    """Samples resource use; ``get_current_usage()`` and ``get_usage_history(hours=24)``.

    ``store`` (optional) is where ``active_tasks`` is counted: the steps of this process's
    running executions that have not ended yet.
    """

    def __init__(
        self,
        *,
        interval_s: float = 15.0,
        max_samples: int = 10_000,
        store: Store | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.store = store
        self._samples: collections.deque[ResourceUsage] = collections.deque(maxlen=max_samples)
        self._process = psutil.Process()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # cpu_percent(None) measures since the previous call: prime both now so the first
        # sample compares against this moment instead of returning a meaningless 0.0.
        psutil.cpu_percent(None)
        self._process.cpu_percent(None)

    def get_current_usage(self) -> ResourceUsage:
        """A sample taken now (and kept in the history)."""
        memory = psutil.virtual_memory()
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        usage = ResourceUsage(
            timestamp=time.time(),
            cpu_percent=float(psutil.cpu_percent(None)),
            process_cpu_percent=float(self._process.cpu_percent(None)),
            memory_mb=self._process.memory_info().rss / _MB,
            memory_limit_mb=memory_limit_bytes() / _MB,
            memory_percent=float(memory.percent),
            active_tasks=self._active_tasks(),
            disk_read_bytes=int(disk.read_bytes) if disk else 0,
            disk_write_bytes=int(disk.write_bytes) if disk else 0,
            network_sent_bytes=int(net.bytes_sent) if net else 0,
            network_recv_bytes=int(net.bytes_recv) if net else 0,
        )
        with self._lock:
            self._samples.append(usage)
        return usage

    def _active_tasks(self) -> int:
        if self.store is None:
            return 0
        self.store.flush(strict=False)
        return self.store.running_steps(pid=os.getpid())

    def get_usage_history(self, hours: float = 24.0) -> UsageHistory:
        """Samples of the last ``hours``, with peaks and averages."""
        since = time.time() - hours * 3600
        with self._lock:
            samples = tuple(s for s in self._samples if s.timestamp >= since)
        if not samples:
            return UsageHistory(hours, samples, 0.0, 0.0, 0.0, 0.0, 0.0)
        cpu = [s.cpu_percent for s in samples]
        memory = [s.memory_mb for s in samples]
        return UsageHistory(
            hours=hours,
            samples=samples,
            max_cpu_percent=max(cpu),
            avg_cpu_percent=sum(cpu) / len(cpu),
            max_memory_mb=max(memory),
            avg_memory_mb=sum(memory) / len(memory),
            max_memory_percent=max(s.memory_percent for s in samples),
        )

    # -- background sampling ------------------------------------------------------------------

    def start(self) -> ResourceMonitor:
        """Sample every ``interval_s`` on a daemon thread until :meth:`stop`."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="workbench-resources", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.get_current_usage()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> ResourceMonitor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
