"""Helpers shared by bench/perf.py's parts: timing statistics, peak memory, the tiny models and a
real ``pixelserve serve`` on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"  # where every bench writes its JSON


def peak_rss_mib() -> float:
    """This process's peak resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minor_faults() -> int:
    """Page faults this process has taken so far that needed no disk read (fresh zeroed pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_of(pid: int) -> float | None:
    """Another live process's peak resident memory (Linux VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds_of(pid: int, thread: int | None = None) -> float:
    """CPU time (user + system) another live process has used so far, all its threads or only
    ``thread`` (a thread id; the main thread's is the pid) (Linux)."""
    stat = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(stat).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_gpu_mib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def p50(values: list[float]) -> float:
    return statistics.median(values)


def clusters(latencies: list[float], gap: float = 0.2) -> list[int]:
    """Sizes of the groups of latencies that lie within ``gap`` s of the previous one: for a burst
    sent at once, requests that finished together shared a batch, so these are the batches."""
    sizes = []
    for i, x in enumerate(sorted(latencies)):
        if i == 0 or x - prev > gap:
            sizes.append(0)
        sizes[-1] += 1
        prev = x
    return sizes


def tiny_folder(cache: Path, family: str = "sd") -> Path:
    from pixelserve.engine.demo import tiny

    return tiny.ensure_tiny_model(family, cache)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(cache: Path, env: dict[str, str], setup=None):
    """``pixelserve serve`` on a free 127.0.0.1 port over a copy of the tiny-model cache.

    ``setup(env)``, when given, runs before the server starts (e.g. more ``pixelserve keys`` commands)."""
    with tempfile.TemporaryDirectory() as data:
        shutil.copytree(cache, Path(data) / "cache", ignore=shutil.ignore_patterns("inductor", "*.png"))
        env = {**os.environ, **env, "PIXELSERVE_DATA_DIR": data}
        bin_dir = Path(sys.executable).parent
        key = subprocess.run([bin_dir / "pixelserve", "keys", "create", "--name", "bench"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        if setup is not None:
            setup(env)
        port = free_port()
        proc = subprocess.Popen([bin_dir / "pixelserve", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    with urllib.request.urlopen(base + "/health/ready", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not become ready")
                time.sleep(0.2)
            yield base, key, proc
        finally:
            proc.terminate()
            proc.wait(60)


PERF_SCRIPT = ROOT / "bench" / "perf.py"


def part_command(name: str, cache: Path, **kw) -> list[str]:
    return [sys.executable, str(PERF_SCRIPT), "--part", name, "--cache", str(cache), "--kw", json.dumps(kw)]


def _part_env(cache: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor"))
    return env


class Turns:
    """Two or more parts alive at once, each in its own process, measuring in turn (``turns=True``).

    On a shared CPU the machine's speed drifts by 10% and more over minutes, so two parts run one
    after the other can differ by more than what they compare. Parts taking turns, one measurement
    each, in an order that alternates every round, see the same drift. Only one computes at a time;
    the others wait on stdin.
    """

    def __init__(self, cache: Path, parts: dict[str, tuple[str, dict]]):
        self.procs = {}
        for label, (name, kw) in parts.items():
            err = tempfile.TemporaryFile(mode="w+")
            proc = subprocess.Popen(part_command(name, cache, turns=True, **kw), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, text=True, env=_part_env(cache))
            self.procs[label] = (proc, err)
        for label in self.procs:  # every part loaded and warmed up (none computing) before the first turn
            self._read_until(label, '{"waiting"')

    def _read_until(self, label: str, prefix: str) -> dict:
        proc, err = self.procs[label]
        for line in proc.stdout:
            if line.startswith(prefix):
                return json.loads(line)
        err.seek(0)
        raise RuntimeError(f"part {label} ended:\n{err.read()[-4000:]}")

    def turn(self, label: str) -> float:
        """One measurement of part ``label``; its seconds."""
        proc, _ = self.procs[label]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return self._read_until(label, '{"turn"')["s"]

    def finish(self) -> dict[str, dict]:
        """Each part's own JSON (the last line it prints), once every turn is taken."""
        out = {}
        for label, (proc, err) in self.procs.items():
            stdout, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"part {label} failed:\n{err.read()[-4000:]}")
            out[label] = json.loads(stdout.strip().splitlines()[-1])
        return out

    def close(self) -> None:
        for proc, err in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()


def run_part(name: str, cache: Path, **kw) -> dict:
    """One part in a fresh interpreter; its JSON is the last line it prints.

    Every measurement runs in its own process: on CPU, torch work from two threads of one process
    slows both about 3x on tiny models, which would bias whichever path runs second; on a GPU each
    part starts with its memory and peak counters clean.
    """
    out = subprocess.run(part_command(name, cache, **kw), capture_output=True, text=True, env=_part_env(cache))
    if out.returncode != 0:
        raise RuntimeError(f"part {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
