"""Several runs at once on one machine (``--jobs N`` of ``experiment`` and ``sweep``).

Each run is a child process (``python -m unpaired ...``) with its output in a log file. Children are
spread over the visible GPUs (one ``CUDA_VISIBLE_DEVICES`` index each, the least busy first) when the
device is ``cuda``/``auto`` and several GPUs are visible; otherwise they share the one device. On
the CPU side each child gets ``OMP_NUM_THREADS = max(1, CPUs // N)`` threads, so that N children do
not oversubscribe the cores (an ``OMP_NUM_THREADS`` already set by the user is kept). Children run in
their own sessions: a Ctrl-C reaches them only through the parent, which forwards each one once (the
first makes every child save a checkpoint and stop, a second aborts them, as for ``unpaired train``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from ..errors import UnpairedError
from ..training.trainer import Callback

POLL_SECONDS = 0.5


class JobsFailed(UnpairedError, RuntimeError):
    """Some child processes failed; the message names them, with the end of their logs."""

    exit_code = 1  # some runs failed, the others completed


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """CPU threads for each of ``jobs`` processes running at once."""
    return max(1, cpu_count() // max(1, jobs))


def gpu_ids(device: str) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` entries children are spread over; empty when they share one
    device (a CPU, MPS, a single GPU, or an explicit ``cuda:N``)."""
    if device not in ("auto", "cuda"):
        return []

    if not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else [str(i) for i in range(n)]
    ids = ids[:n]  # CUDA ignores the entries after an invalid one
    return ids if len(ids) > 1 else []


def package_command(*args: str) -> list[str]:
    """``python -m unpaired ARGS`` with this interpreter."""
    return [sys.executable, "-m", "unpaired", *args]


@dataclass
class Job:
    """One child process: ``cmd`` with stdout and stderr appended to ``log``."""

    name: str
    cmd: list[str]
    log: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)
    gpu: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)  # extra environment (secrets: not on cmd)
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        state = (
            "ok"
            if self.ok
            else "interrupted"
            if self.returncode in (130, -signal.SIGINT)
            else f"failed (exit {self.returncode})"
            if self.returncode > 0
            else f"killed by signal {-self.returncode}"
        )
        return f"{self.name}: {state}, {self.seconds:.1f} s" + ("" if self.ok else f"; log {self.log}")


class JobPool:
    """Starts children (at most ``jobs`` at once through :meth:`run`), each on the least busy GPU
    when there are several, with the CPU threads split between ``jobs`` processes.

    While the pool is active (``with pool:``), Ctrl-C is forwarded to the running children once per
    press; with ``raise_interrupt`` the parent then also raises KeyboardInterrupt (it trains too),
    otherwise it only stops starting new children and keeps waiting for the running ones."""

    def __init__(self, jobs: int, device: str = "auto", raise_interrupt: bool = False, parent_gpu: bool = False):
        self.jobs = max(1, jobs)
        self.gpus = gpu_ids(device)
        # the parent itself trains on the first visible GPU: count it so children go elsewhere first
        self.load = {g: int(parent_gpu and i == 0) for i, g in enumerate(self.gpus)}
        self.threads = threads_per_job(self.jobs)
        self.raise_interrupt = raise_interrupt
        self.running: list[Job] = []
        self.finished: list[Job] = []
        self.interrupts = 0
        self._previous = None
        self._starting = False  # a KeyboardInterrupt now would lose the child being started
        self._raise_pending = False

    # ------------------------------------------------------------- signals
    def __enter__(self) -> "JobPool":
        try:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum, frame) -> None:
        self.interrupt()
        if self.raise_interrupt:
            if self._starting:
                self._raise_pending = True
            else:
                raise KeyboardInterrupt

    def interrupt(self) -> None:
        """Forward one SIGINT to every running child (their Trainers save and stop; a second aborts)."""
        self.interrupts += 1
        if self.running:
            tqdm.write(
                f"Interrupted: asking {len(self.running)} child process(es) to save and stop"
                + (" (Ctrl-C again to abort them)" if self.interrupts == 1 else ""),
                file=sys.stderr,
            )
        for job in self.running:
            self._signal(job)

    @staticmethod
    def _signal(job: Job) -> None:
        try:
            if hasattr(os, "killpg"):
                os.killpg(job.proc.pid, signal.SIGINT)  # like a terminal's Ctrl-C (loader workers ignore it)
            else:
                job.proc.send_signal(signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def interrupted(self) -> bool:
        return self.interrupts > 0

    # ------------------------------------------------------------ children
    def env(self, gpu: str | None) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # the child imports this very package, also when it comes from a source tree on sys.path
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
        if "OMP_NUM_THREADS" not in os.environ:  # a user's explicit setting wins
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def start(self, job: Job) -> Job:
        gpu = min(self.gpus, key=lambda g: self.load[g]) if self.gpus else None  # least busy, first on ties
        if gpu is not None:
            self.load[gpu] += 1
        job.gpu = gpu
        job.log.parent.mkdir(parents=True, exist_ok=True)
        self._starting, before = True, self.interrupts
        try:
            self._start(job, gpu)
        finally:
            self._starting = False
        if self.interrupts > before:  # Ctrl-C while it was being started: it missed the forwarding
            self._signal(job)
        if self._raise_pending:
            self._raise_pending = False
            raise KeyboardInterrupt
        return job

    def _start(self, job: Job, gpu: str | None) -> None:
        with open(job.log, "a") as log:
            log.write(
                f"=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {subprocess.list2cmdline(job.cmd)}"
                f" (OMP_NUM_THREADS={self.env(gpu)['OMP_NUM_THREADS']}"
                + (f", CUDA_VISIBLE_DEVICES={gpu}" if gpu is not None else "")
                + ")\n"
            )
            log.flush()
            job.started = time.perf_counter()
            job.proc = subprocess.Popen(
                job.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env(gpu), **job.env},
                start_new_session=True,
            )
            self.running.append(job)

    def poll(self) -> list[Job]:
        """The children that ended since the last call."""
        ended = []
        for job in list(self.running):
            code = job.proc.poll()
            if code is None:
                continue
            job.returncode, job.seconds = code, time.perf_counter() - job.started
            self.running.remove(job)
            if job.gpu is not None:
                self.load[job.gpu] -= 1
            self.finished.append(job)
            ended.append(job)
        return ended

    def wait(self, on_end: Callable[[Job], None] | None = None) -> list[Job]:
        """Wait for every running child (Ctrl-C meanwhile is forwarded to them, not raised here)."""
        return self.run((), on_end)

    def run(self, jobs: Iterable[Job], on_end: Callable[[Job], None] | None = None) -> list[Job]:
        """Run ``jobs`` at most ``self.jobs`` at a time, in order; after a Ctrl-C no new ones start.
        Returns the jobs that ran (the ones not started after an interrupt are left out)."""
        queue = deque(jobs)
        while queue or self.running:
            try:
                while queue and len(self.running) < self.jobs and not self.interrupted:
                    self.start(queue.popleft())
                if self.interrupted:
                    queue.clear()
                for job in self.poll():
                    if on_end:
                        on_end(job)
                if self.running:
                    time.sleep(POLL_SECONDS)
            except KeyboardInterrupt:
                continue
        return self.finished


def failure_report(failed: list[Job], what: str, total: int, lines: int = 20) -> str:
    """'1 of 2 rows failed: NAME (exit 1)' followed by the end of each failed child's log."""
    parts = [f"{len(failed)} of {total} {what} failed: " + ", ".join(f"{j.name} (exit {j.returncode})" for j in failed)]
    for j in failed:
        parts.append(f"--- {j.name}: last lines of {j.log} ---\n{j.tail(lines)}")
    return "\n".join(parts)


class ForwardInterrupt(Callback):
    """For a parent that trains too: while it trains, Ctrl-C also goes to the pool's children.

    The Trainer's own Ctrl-C handler is installed before this callback's ``on_fit_start`` (it is
    always the first callback) and restores the handler that preceded it when fit() ends; this
    wraps it for the duration of the fit."""

    def __init__(self, pool: JobPool):
        self.pool = pool

    def on_fit_start(self, trainer) -> None:
        inner = signal.getsignal(signal.SIGINT)
        if not callable(inner):
            return

        def handler(signum, frame):
            self.pool.interrupt()
            inner(signum, frame)

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            pass


@contextlib.contextmanager
def run_dir_lock(run_dir: Path, who: str):
    """Hold an exclusive lock on a run folder (a file next to it) while training it: a process given the
    same run as another (a sweep's duplicate suggestion, a shared experiment's run claimed twice)
    waits for the other, then finds the run finished. ``who`` names the waiting one in its note."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only; Windows has no fcntl
    except ImportError:  # no POSIX locks: no waiting
        yield
        return
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{who}: another process is training {run_dir.name}; waiting for it", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
