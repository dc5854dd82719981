"""Run an engine command in a background process without freezing the GUI.

A reader thread moves the child's output lines into a queue; :meth:`BackgroundProcess.poll`, called from
the GUI thread by a timer, drains the queue and calls the callbacks there (Qt and MRML objects must only be
touched from the GUI thread). Cancel kills the child and all its descendants: on Linux and macOS
``PythonSlicer`` is a launcher that starts the real interpreter as a child, so killing only the launcher
would leave the work running.

The launcher and the timer are injected, so the same class runs inside Slicer
(``slicer.util.launchConsoleProcess`` and ``qt.QTimer.singleShot``) and in plain Python tests
(``subprocess.Popen`` and a manual loop).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .engine import ProgressUpdate, error_message, parse_progress_line

#: exit code reported when the user cancelled (the process was killed on request)
CANCELLED = -1000


@dataclass(frozen=True)
class ProcessResult:
    """How a background process ended.

    Attributes:
        returncode: the child's exit code, or :data:`CANCELLED`.
        cancelled: True when the user cancelled.
        error: plain-words error text when it failed (empty on success or cancel).
        output: the last lines it printed (at most 400).
        seconds: wall-clock duration.
    """

    returncode: int
    cancelled: bool
    error: str
    output: tuple[str, ...]
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.cancelled


def popen_launcher(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
    """Start ``argv`` with ``env`` added to this process's environment; stderr merged into stdout, text mode."""
    full_env = dict(os.environ)
    full_env.update(env)
    kwargs: dict = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return subprocess.Popen(
        list(argv),
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
        **kwargs,
    )


def _children_without_psutil(pid: int) -> list[int]:
    """Descendant process ids (deepest first) using ``pgrep -P`` (Linux, macOS)."""
    pgrep = shutil.which("pgrep")
    if not pgrep:
        return []
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        try:
            out = subprocess.run([pgrep, "-P", str(parent)], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            break
        kids = [int(t) for t in out.split() if t.strip().isdigit()]
        found.extend(kids)
        frontier.extend(kids)
    return found[::-1]


def kill_process_tree(pid: int) -> None:
    """Kill process ``pid`` and all its descendants (children first), ignoring ones already gone."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        for child in parent.children(recursive=True):
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            parent.kill()
        except psutil.NoSuchProcess:
            pass
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    for child in _children_without_psutil(pid) + [pid]:
        try:
            os.kill(child, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class BackgroundProcess:
    """One engine command running in the background, with progress, log lines and cancel.

    Args:
        on_progress: called with a :class:`~SpineAILib.engine.ProgressUpdate` for each ``PROGRESS`` line.
        on_line: called with every other output line (for a log view).
        on_finished: called once with the :class:`ProcessResult`.
        launcher: ``launcher(argv, env) -> Popen-like`` (needs ``stdout``, ``pid``, ``wait``, ``poll``).
        schedule: ``schedule(milliseconds, function)`` runs ``function`` later on the GUI thread
            (``qt.QTimer.singleShot``). ``None``: the caller drives :meth:`poll` itself (see :meth:`wait`).
        interval_ms: how often the queue is drained.
    """

    def __init__(
        self,
        on_progress: Callable[[ProgressUpdate], None] | None = None,
        on_line: Callable[[str], None] | None = None,
        on_finished: Callable[[ProcessResult], None] | None = None,
        launcher: Callable[[Sequence[str], Mapping[str, str]], subprocess.Popen] = popen_launcher,
        schedule: Callable[[int, Callable[[], None]], None] | None = None,
        interval_ms: int = 100,
    ) -> None:
        self.on_progress = on_progress
        self.on_line = on_line
        self.on_finished = on_finished
        self._launcher = launcher
        self._schedule = schedule
        self._interval_ms = interval_ms
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._tail: deque[str] = deque(maxlen=400)
        self._cancelled = False
        self._result: ProcessResult | None = None
        self._start_time = 0.0
        self.last_progress: ProgressUpdate | None = None

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """True from :meth:`start` until the result has been delivered."""
        return self._proc is not None and self._result is None

    @property
    def result(self) -> ProcessResult | None:
        return self._result

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # ------------------------------------------------------------------ control
    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> BackgroundProcess:
        """Launch the command and start reading its output."""
        if self.running:
            raise RuntimeError(
                "This background process is already running; cancel it or wait for it to finish."
            )
        logging.info("SpineAI: running %s", " ".join(argv))
        self._cancelled = False
        self._result = None
        self._tail.clear()
        self._queue = queue.Queue()
        self._start_time = time.monotonic()
        self._proc = self._launcher(list(argv), dict(env or {}))
        self._thread = threading.Thread(target=self._read_output, args=(self._proc, self._queue), daemon=True)
        self._thread.start()
        if self._schedule is not None:
            self._schedule(0, self._poll_and_reschedule)
        return self

    def cancel(self) -> None:
        """Kill the process tree; the result is delivered (cancelled=True) by the next :meth:`poll`."""
        if not self.running or self._proc is None:
            return
        self._cancelled = True
        kill_process_tree(self._proc.pid)

    @staticmethod
    def _read_output(proc: subprocess.Popen, out: queue.Queue) -> None:
        stream = proc.stdout
        if stream is not None:
            while True:
                try:
                    line = stream.readline()
                except (UnicodeDecodeError, ValueError):
                    continue
                if not line:
                    break
                out.put(("line", line.rstrip("\r\n")))
        out.put(("done", proc.wait()))

    def poll(self) -> bool:
        """Deliver queued lines and, when the child has ended, the result. Returns True while running."""
        if self._proc is None or self._result is not None:
            return False
        while True:
            try:
                kind, data = self._queue.get_nowait()
            except queue.Empty:
                return True
            if kind == "line":
                self._tail.append(data)
                update = parse_progress_line(data)
                if update is not None:
                    self.last_progress = update
                    if self.on_progress:
                        self.on_progress(update)
                elif self.on_line:
                    self.on_line(data)
            else:
                self._finish(int(data))
                return False

    def _finish(self, returncode: int) -> None:
        cancelled = self._cancelled
        output = tuple(self._tail)
        err = "" if (returncode == 0 or cancelled) else error_message(output, returncode)
        self._result = ProcessResult(
            returncode=CANCELLED if cancelled else returncode,
            cancelled=cancelled,
            error=err,
            output=output,
            seconds=time.monotonic() - self._start_time,
        )
        if self.on_finished:
            self.on_finished(self._result)

    def _poll_and_reschedule(self) -> None:
        if self.poll() and self._schedule is not None:
            self._schedule(self._interval_ms, self._poll_and_reschedule)

    def wait(self, timeout: float | None = None, idle: Callable[[], None] | None = None) -> ProcessResult:
        """Block until the process ends, polling every interval (for scripts, tests and batch use).

        Args:
            timeout: seconds before the process is cancelled and ``TimeoutError`` raised.
            idle: called between polls (Slicer: ``slicer.app.processEvents`` keeps the GUI alive).
        """
        if self._proc is None:
            raise RuntimeError("Call start() before wait().")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._result is None:
            if not self.poll():
                break
            if idle is not None:
                idle()
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                while self.poll():
                    time.sleep(0.02)
                raise TimeoutError(f"The command did not finish within {timeout} s and was cancelled.")
            time.sleep(self._interval_ms / 1000.0)
        assert self._result is not None
        return self._result


def run_to_completion(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    on_progress: Callable[[ProgressUpdate], None] | None = None,
) -> ProcessResult:
    """Run a command with :class:`BackgroundProcess` and wait for it (plain Python, no GUI)."""
    proc = BackgroundProcess(on_progress=on_progress, interval_ms=50)
    proc.start(argv, env)
    return proc.wait(timeout=timeout)


def python_executable_for_slicer() -> str:
    """``PythonSlicer`` when running inside Slicer (it is on Slicer's PATH), else this interpreter."""
    found = shutil.which("PythonSlicer")
    return found or sys.executable
