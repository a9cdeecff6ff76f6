"""LLVM on several cores: the parts of a module (partition.py) compiled at once.

llvmlite serializes every call into LLVM behind one lock, so threads cannot share the
work; worker processes can. Each worker is a fresh interpreter running llvm_job.py
(llvmlite only, no fork of this process: its threads, locks and BLAS pool are never
copied), fed one part's IR text (and, after it, possibly the module's glue:
``submit(more=True)``, ``send_last``) and answering with their objects. This process
compiles the first part meanwhile. The objects travel together as one bundle
(runtime/objects.py), which the JIT loads and the linker links as a whole.

Workers are used when the module is big enough for the split to pay (a worker costs
about a tenth of a second to start, spent loading LLVM while this process lowers) and the machine has more than one usable core
(``$SYMGRAPH_COMPILE_WORKERS`` sets the count; 0 or 1 turns workers off). A worker
that cannot start or fails leaves its part to this process, which then compiles it
itself (and raises LLVM's error, if that is what failed); a worker killed by a crash
signal is reported as an error.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

# A part should hold at least this many loops (LLVM spends several milliseconds on
# each), and workers are started (before lowering, so that their start-up of about a
# tenth of a second overlaps it) for a graph of at least this many nodes per part. An
# MLP step (44 nodes, 34 loops, about 0.35 s of LLVM in one piece) compiles in two
# parts along its kernels on two cores.
MIN_LOOPS_PER_PART = 16
MIN_NODES_PER_PART = 20
TIMEOUT = 600.0        # seconds a part may take before its worker is stopped
_CRASHES = {getattr(signal, name) for name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")
            if hasattr(signal, name)}


def max_workers() -> int:
    """Processes that may compile at once, this one included: the usable cores, or
    ``$SYMGRAPH_COMPILE_WORKERS``."""
    flag = os.environ.get("SYMGRAPH_COMPILE_WORKERS", "").strip()
    if flag:
        try:
            return max(1, int(flag))
        except ValueError:
            pass
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def expected_parts(program) -> int:
    """Parts a program's module will likely be compiled in, told before lowering it."""
    workers = max_workers()
    if workers < 2:
        return 1
    return max(1, min(workers, len(program.graph) // MIN_NODES_PER_PART))


def parts_for(ir_text: str, workers: int) -> int:
    """How many parts to compile ``ir_text`` in, given ``workers`` started workers."""
    from .partition import count_loops
    loops = count_loops(ir_text)
    return max(1, min(workers + 1, loops // MIN_LOOPS_PER_PART))


class Worker:
    """A process that will compile one part: started early, given its part by
    ``submit``, its objects returned by ``result()`` (None: this process should
    compile the part itself)."""

    def __init__(self):
        self.index = None
        self.output = self.error = None
        self.thread = None
        self._last = None        # queue of the last request (submit(more=True))
        self._request = None
        try:
            self.proc = subprocess.Popen(_command(), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except (OSError, ValueError):
            self.proc = None

    def submit(self, index: int, text: str, request: dict, glue: str | None = None, *,
               more: bool = False) -> None:
        """Compile ``text`` (and ``glue``, glue already taken out of it: see
        partition.separate_glue); ``more``: a last request follows (``send_last``)."""
        self.index = index
        if self.proc is None:
            return
        from .target import _separated
        main, light, _, own_glue = _separated(text, request["big"],
                                              glue_apart=request.get("whole", False))
        glue = glue if glue is not None else own_glue
        self._request = request
        data = _request_bytes(request, main, light, glue)
        if more:
            self._last = queue.Queue()
        self.thread = threading.Thread(target=self._talk, args=(data,), daemon=True,
                                       name=f"symgraph-llvm-worker-{index}")
        self.thread.start()

    def send_last(self, glue: str | None) -> None:
        """After ``submit(more=True)``: ``glue`` too (a module of glue alone, for the
        fast code generator), or nothing more; the worker's input then closes."""
        if self._last is not None:
            self._last.put(_request_bytes(self._request, "", None, glue) if glue else b"")

    def _talk(self, data: bytes) -> None:
        try:
            if self._last is not None:   # the first request now, the last when it comes
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
                data = self._last.get()
            self.output, self.error = self.proc.communicate(data)
        except (OSError, ValueError):
            self.output = None

    def result(self) -> list | None:
        if self.proc is None or self.thread is None:
            return None
        self.thread.join(TIMEOUT)
        if self.thread.is_alive():
            self.stop()
            return None
        code = self.proc.returncode
        if code is not None and code < 0 and -code in _CRASHES:
            raise RuntimeError(
                f"the LLVM worker compiling part {self.index} of a module died with "
                f"signal {signal.Signals(-code).name}: {(self.error or b'').decode()[-2000:]}")
        if code != 0 or not self.output:
            return None
        from .llvm_job import unframe
        try:
            return unframe(self.output)
        except ValueError:
            return None

    def stop(self) -> None:
        """Kill the process (if it still runs) and reap it: no zombie is left."""
        if self.proc is None:
            return
        if self._last is not None:
            self._last.put(b"")          # a talk waiting for a last request ends
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _command() -> list:
    """An interpreter running llvm_job.py with llvmlite importable, nothing else.

    llvm_job is loaded as a module from its file, so its cached bytecode is used:
    runpy compiled its source in every worker, and the worker's start-up (before
    LLVM loads) took 48 ms instead of 20."""
    import llvmlite
    path = os.path.dirname(os.path.dirname(os.path.abspath(llvmlite.__file__)))
    job = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llvm_job.py")
    boot = (f"import sys; sys.path.insert(0, {path!r}); import importlib.util as u; "
            f"s = u.spec_from_file_location('symgraph_llvm_job', {job!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main())")
    return [sys.executable, "-I", "-S", "-c", boot]


class Pool:
    """Workers started before lowering (``count`` = parts expected, this process
    included), stopped and reaped on ``close`` whether used or not."""

    def __init__(self, count: int):
        self.workers = [Worker() for _ in range(max(0, count - 1))]
        self.taken: list = []

    def take(self):
        """The first worker, for a caller's own use (early_part.py): no longer one of
        the pool's, still stopped on ``close``; None when there is none."""
        if not self.workers:
            return None
        self.taken.append(self.workers.pop(0))
        return self.taken[-1]

    def __len__(self) -> int:
        return len(self.workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers + self.taken:
            w.stop()

    def submit_one(self, text: str, *, big: bool, whole: bool = True,
                   glue: str | None = None):
        """Give ``text`` (a whole module, not a part of one, unless ``whole`` is false:
        its glue was taken out already, and ``glue`` is some of it, or None) to the
        first worker (the others are stopped); that Worker, or None when there is none."""
        if not self.workers:
            return None
        for w in self.workers[1:]:
            w.stop()
        self.workers[0].submit(1, text, dict(_request(big), whole=whole), glue)
        return self.workers[0]

    def compile(self, parts: list, compile_here, *, big: bool, also_here=None) -> list:
        """The objects of each of ``parts`` (IR texts, at most one more than the
        workers; a list of objects per part): the first compiled by
        ``compile_here(text)`` in this process while workers compile the others; a part
        whose worker fails is compiled here too. ``also_here()``: more objects made in
        this process after the first part, before the workers are waited for (one
        more list at the end)."""
        request = _request(big)
        used = self.workers[:len(parts) - 1]
        for k, (w, text) in enumerate(zip(used, parts[1:]), 1):
            w.submit(k, text, request)
        for w in self.workers[len(used):]:
            w.stop()                       # started for nothing: the module came out small
        try:
            objects = [compile_here(parts[0])]
            extra = also_here() if also_here is not None else None
            for w in used:
                obj = w.result()
                objects.append(obj if obj is not None else compile_here(parts[w.index]))
            return objects + ([extra] if extra is not None else [])
        finally:
            for w in self.workers:         # not the taken ones: their owners wait on them
                w.stop()


def _request_bytes(request: dict, text: str, light: str | None, glue: str | None) -> bytes:
    """One request on a worker's input (llvm_job.main)."""
    text, light, glue = text.encode(), (light or "").encode(), (glue or "").encode()
    head = dict(request, text_bytes=len(text), light_bytes=len(light), glue_bytes=len(glue))
    from .llvm_job import request_line
    return request_line(head) + text + light + glue


def _request(big: bool) -> dict:
    """The head of a worker's request (llvm_job.main)."""
    from .target import host_cpu
    triple, cpu, features = host_cpu()
    return {"triple": triple, "cpu": cpu, "features": features, "opt": 3, "big": big}
