"""Start the servers under test as real processes on free loopback ports, and watch their memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from conformance.embedded import EmbeddedServer, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


class ServerStartError(RuntimeError):
    pass


def reference_server_args(*, device: str, max_batch: int, dtype: str = "auto",
                          engine_process: bool = False) -> list[str]:
    """The reference server's arguments after --model: the engine mode is always explicit."""
    return ["--device", device, "--dtype", dtype, "--max-batch", str(max_batch), "--log-level", "warning",
            "--engine-process", "on" if engine_process else "off"]


def reference_server_spec(
    model: str, *, device: str, max_batch: int, profile: str = "fireworks", dtype: str = "auto",
    engine_process: bool = False, start_timeout: float = 600.0,
) -> EmbeddedServer:
    """The (unstarted) `python -m reference_server` process; `.command()` is its command line."""
    extra = reference_server_args(device=device, max_batch=max_batch, dtype=dtype, engine_process=engine_process)
    return EmbeddedServer(profile, model, extra_args=extra, start_timeout=start_timeout)


@contextlib.contextmanager
def reference_server(
    model: str, *, device: str, max_batch: int, profile: str = "fireworks", dtype: str = "auto",
    engine_process: bool = False, start_timeout: float = 600.0,
) -> Iterator[tuple[str, int]]:
    """(base_url, pid) of `python -m reference_server` on a free port (access log off).

    engine_process=True passes `--engine-process on`: the model runs in a spawned child of that pid
    (its memory is counted through the process tree, see `_rss_tree` and `_gpu_used_by`).
    """
    server = reference_server_spec(model, device=device, max_batch=max_batch, profile=profile, dtype=dtype,
                                   engine_process=engine_process, start_timeout=start_timeout)
    base_url = server.start()
    try:
        assert server.process is not None
        yield base_url, server.process.pid
    finally:
        server.stop()


def peer_command(model_dir: str, port: int, *, device: str, continuous_batching: bool) -> list[str]:
    exe = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    cmd = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", device,
           "--log-level", "warning"]
    cmd.append("--continuous-batching" if continuous_batching else "--no-continuous-batching")
    cmd.append(model_dir)
    return cmd


@contextlib.contextmanager
def peer_server(
    model_dir: str, *, device: str, continuous_batching: bool, start_timeout: float = 300.0
) -> Iterator[tuple[str, int]]:
    """(base_url, pid) of `transformers serve MODEL_DIR` (offline) on a free port.

    Raises ServerStartError with the tail of its log when it exits or does not become healthy.
    """
    port = free_port()
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = tempfile.NamedTemporaryFile(prefix="transformers-serve-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = peer_command(model_dir, port, device=device, continuous_batching=continuous_batching)
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    except OSError as exc:
        log.close()
        raise ServerStartError(f"cannot start {' '.join(cmd)}: {exc}") from None

    def tail() -> str:
        log.flush()
        return Path(log.name).read_text(encoding="utf-8", errors="replace")[-3000:]

    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                if proc.poll() is not None:
                    raise ServerStartError(f"`{' '.join(cmd)}` exited with status {proc.returncode}:\n{tail()}")
                try:
                    if http.get(f"{root}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerStartError(f"`{' '.join(cmd)}` not healthy within {start_timeout:g}s:\n{tail()}")
                time.sleep(0.5)
        yield f"{root}/v1", proc.pid
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


def _rss_tree(pid: int) -> int | None:
    """RSS of a process and its children (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            proc = psutil.Process(pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return int(total)
        except psutil.Error:
            return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _tree_pids(pid: int) -> set[int]:
    """`pid` and its live descendants (just `pid` without psutil)."""
    try:
        import psutil
    except ImportError:
        return {pid}
    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


def _gpu_used_by(pid: int) -> int | None:
    """GPU memory nvidia-smi attributes to `pid` and its descendants (bytes), or None.

    The descendants matter for `--engine-process on`, whose model lives in a child process.
    """
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return _gpu_used_in(out, _tree_pids(pid))


def _gpu_used_in(smi_csv: str, pids: set[int]) -> int | None:
    """Sum of nvidia-smi's `pid, used_memory` (MiB) rows for `pids`, in bytes; None when none matches."""
    total: int | None = None
    for line in smi_csv.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids and parts[1].isdigit():
            total = (total or 0) + int(parts[1]) * 1024 * 1024
    return total


class MemoryWatcher:
    """Samples a process tree's RSS (and, with gpu=True, its nvidia-smi memory) in a thread; keeps peaks."""

    def __init__(self, pid: int, *, interval: float = 0.05, gpu: bool = False) -> None:
        self.pid = pid
        self.interval = interval
        self.gpu = gpu
        self.peak_rss: int | None = None
        self.peak_gpu: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = _rss_tree(self.pid)
        if rss is not None:
            self.peak_rss = max(self.peak_rss or 0, rss)

    def _run(self) -> None:
        last_gpu = 0.0
        while not self._stop.is_set():
            self._sample()
            if self.gpu and time.monotonic() - last_gpu > 0.5:
                last_gpu = time.monotonic()
                used = _gpu_used_by(self.pid)
                if used is not None:
                    self.peak_gpu = max(self.peak_gpu or 0, used)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryWatcher:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()


def _tree_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process and its live children (0 when it is gone)."""
    import psutil

    total = 0.0
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _busy_cpu_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0)


class OtherCpu:
    """CPU used by processes other than `pids` (with their children) over a block, in cores.

    Machine-wide busy CPU time (psutil) minus that of the measured processes, divided by the wall
    time: 0.0 on a quiet machine, 1.0 when other processes kept one core busy throughout. Clock-tick
    resolution (10 ms), so a short block reads coarse; it tells a disturbed measurement from a quiet one.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.cores: float | None = None
        self._start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _own(self) -> float:
        return sum(_tree_cpu_s(pid) for pid in self.pids)

    def __enter__(self) -> OtherCpu:
        self._start = (time.perf_counter(), _busy_cpu_s(), self._own())
        return self

    def __exit__(self, *exc: object) -> None:
        t0, busy0, own0 = self._start
        wall = time.perf_counter() - t0
        other = (_busy_cpu_s() - busy0) - (self._own() - own0)
        self.cores = max(0.0, other / wall) if wall > 0 else None
