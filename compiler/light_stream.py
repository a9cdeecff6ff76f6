"""The kernels of a big module compiled while the module is still being lowered.

In a big module (target.BIG_MODULE_FUNCTIONS) the kernels in vector form are most of
LLVM's work, and they are compiled apart from the rest anyway (llvm_job: the light
pipeline and the fast code generator, as objects of their own). They are written as
text (irtext.py) and never change once written, so each batch of them goes, as a
small module of its own, to a thread of this process that compiles it while lowering
goes on: llvmlite releases the GIL inside LLVM, so on a second core LLVM works while
Python lowers (a 10,000-op graph: about 4 s of each). What is left when lowering ends
(the last batch, and the main module without these kernels, which declares them) is
compiled on both cores at once (build.py).

A batch module holds its kernels (``hidden``: other objects of the bundle call them),
their bodies, the vector math they reach (``internal`` copies, ``noinline`` as in every
big module) and the metadata they name: the module partition.separate would make of
them. The main module's text declares the kernels instead (``shipped``). The kernels
call helpers for what the fast code generator's instruction selector misses
(fast_isel.py); these are compiled last, once, by the optimizing code generator.
"""
from __future__ import annotations

import queue
import re
import threading

from llvmlite import ir

from .fast_isel import Outliner, is_helper
from .irtext import text_function
from .partition import as_hidden, internal_copy

# Kernels per batch: enough that a batch's copies of vector math (compiled again in
# every batch) stay a small part of it, few enough that the last batch, compiled after
# lowering, is short.
MIN_BATCH = 64
MAX_BATCH = 256
BATCHES = 8

_METADATA_REF = re.compile(r"!(\d+)")


class LightStream:
    """Batches of text kernels compiled by a background thread; ``finish`` returns
    their objects (and raises the error of a batch LLVM refused)."""

    def __init__(self):
        self.batch = MAX_BATCH
        self.written = 0                  # kernels added so far
        self.pending: list = []           # declarations of kernels written, not shipped
        self.shipped: dict = {}           # name -> "declare" (a kernel) or "omit" (a body)
        self.main_text = None             # the module's text without them (codegen.py)
        self.objects: list = []
        self.error: BaseException | None = None
        self._math_text: dict = {}        # name -> its internal copy's text
        self._math_reach: dict = {}       # name -> the functions it reaches
        self._outliner = None
        self._queue: queue.Queue = queue.Queue()
        self._thread = None

    def outliner(self, module) -> Outliner:
        """The helpers of the kernels of ``module`` (fast_isel.py), one set per module."""
        if self._outliner is None:
            self._outliner = Outliner(module)
        return self._outliner

    @property
    def started(self) -> bool:
        """Whether a kernel came (then the thread runs, or ran)."""
        return self.written > 0

    # -- the lowering side -----------------------------------------------------------
    def add(self, decl: ir.Function, expected: int) -> None:
        """A kernel just written as text (irtext), of about ``expected`` in the module;
        shipped with its batch."""
        if not self.started:
            self._start(expected)
        self.pending.append(decl)
        self.written += 1
        # the last batches are smaller: the one still compiling when lowering ends is
        # what the rest of the compile waits for. ``expected`` counts fused steps, a
        # fifth more than the kernels written (identical ones are written once, groups
        # of siblings as one) in a 10,000-op graph: the last fifth or so is "near".
        near_end = self.written > 0.65 * expected
        if len(self.pending) >= (max(MIN_BATCH // 4, self.batch // 4) if near_end
                                 else self.batch):
            self.flush()

    def _start(self, expected: int) -> None:
        from . import target
        target.host_cpu()       # made now, not while the thread holds LLVM's lock
        target._fast_tm()
        self.batch = max(MIN_BATCH, min(MAX_BATCH, -(-expected // BATCHES)))
        self._thread = threading.Thread(target=self._work, daemon=True,
                                        name="symgraph-light-kernels")
        self._thread.start()

    def flush(self, *, last: bool = False) -> None:
        """Ship the kernels written so far; ``last``: lowering is over (the module is
        still whole), and the helpers they call go too."""
        if self.pending:
            kernels, self.pending = self.pending, []
            self._queue.put(("kernels", self._batch_text(kernels)))
        if last and self._outliner is not None and self._outliner.helpers:
            self._queue.put(("helpers", self._helpers_text()))
            for fn in self._outliner.helpers.values():    # the main module declares them
                self.shipped[fn.name] = "declare"

    def add_glue(self, text: str) -> None:
        """The main module's glue (partition.separate_glue), compiled after the last
        batch while a worker compiles the rest of that module."""
        self._queue.put(("glue", text))

    def finish(self) -> list:
        """Every batch's object, once the thread has compiled them all."""
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self.error is not None:
            raise self.error
        return self.objects

    def close(self) -> None:
        """Stop the thread, if it still runs, without its results (lowering failed)."""
        if self._thread is not None:
            self.error = self.error or RuntimeError("closed")
            self._queue.put(None)
            self._thread = None

    # -- the batch module ----------------------------------------------------------
    def _batch_text(self, kernels) -> str:
        from .irprint import _Printer, module_head
        printer = _Printer()
        module = kernels[0].module
        functions, called = [], {}
        for decl in kernels:
            written = text_function(decl)
            head = as_hidden([printer.prototype(decl, define=True)])[0]
            functions.append(head + written.body())
            self.shipped[decl.name] = "declare"
            for fn in written.callees.values():
                called[fn.name] = fn
        for name, fn in list(called.items()):      # bodies, then what bodies call
            body = text_function(fn)
            if body is not None and not is_helper(name):
                functions.append(printer.prototype(fn, define=True) + body.body())
                self.shipped[name] = "omit"
                called.pop(name)
                for callee in body.callees.values():
                    called.setdefault(callee.name, callee)
        declares, seen = [], set()
        stack = list(called.values())
        while stack:
            fn = stack.pop()
            if fn.name in seen:
                continue
            seen.add(fn.name)
            if is_helper(fn.name):
                declares.append(printer.hidden_declaration(fn))
                continue
            if not fn.blocks:
                declares.append(printer.prototype(fn).rstrip("\n"))
                continue
            functions.append(self._math(fn, printer))
            stack.extend(self._reach(fn))
        text = "".join(functions)
        return "\n".join([*module_head(module), *declares, text, *_metadata(module, text)]) + "\n"

    def _helpers_text(self) -> str:
        """The module of every helper (``hidden``: the batches call them) and what they
        call (intrinsics)."""
        from .irprint import _Printer, module_head
        printer = _Printer()
        helpers = list(self._outliner.helpers.values())
        bodies, declares = [], {}
        for fn in helpers:
            written = text_function(fn)
            bodies.append(as_hidden([printer.prototype(fn, define=True)])[0] + written.body())
            for callee in written.callees.values():
                declares.setdefault(callee.name, printer.prototype(callee).rstrip("\n"))
        return "\n".join([*module_head(helpers[0].module), *declares.values(), *bodies]) + "\n"

    def _math(self, fn, printer) -> str:
        """An internal, out-of-line copy of a defined function the kernels reach (vector
        math), as partition.separate makes it for a big module."""
        text = self._math_text.get(fn.name)
        if text is None:
            head, _, rest = printer.function(fn).partition("\n")
            if fn.linkage not in ("internal", "private"):
                head = internal_copy(head, inline=False)
            text = self._math_text[fn.name] = head + "\n" + rest
        return text

    def _reach(self, fn) -> list:
        reach = self._math_reach.get(fn.name)
        if reach is None:
            reach = self._math_reach[fn.name] = reached(fn)
        return reach

    # -- the compiling side ----------------------------------------------------------
    def _work(self) -> None:
        from . import target
        compile_as = {"kernels": target.compile_light, "helpers": target.compile_helpers,
                      "glue": target.compile_glue}
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            kind, text = item
            try:
                self.objects.append(compile_as[kind](text))
            except BaseException as exc:  # noqa: BLE001  raised by finish()
                self.error = exc


def reached(fn) -> list:
    """The functions ``fn`` (written as text, or by llvmlite's builder) calls or names
    as its vector variant."""
    from .partition import _VARIANT
    written = text_function(fn)
    if written is not None:
        reach = list(written.callees.values())
    else:
        reach = [i.callee for blk in fn.blocks for i in blk.instructions
                 if isinstance(i, ir.CallInstr) and isinstance(i.callee, ir.Function)]
    return reach + [fn.module.globals[n] for n in _VARIANT.findall(str(fn.attributes))
                    if n in fn.module.globals]


def _metadata(module, text: str) -> list:
    """The lines of the metadata nodes ``text`` names, with the nodes they name."""
    nodes = module.metadata
    wanted = sorted({int(n) for n in _METADATA_REF.findall(text)})
    lines, seen = {}, set()
    while wanted:
        k = wanted.pop()
        if k in seen or k >= len(nodes):
            continue
        seen.add(k)
        line = str(nodes[k])
        lines[k] = line
        wanted.extend(int(n) for n in _METADATA_REF.findall(line.partition("=")[2]))
    return [lines[k] for k in sorted(lines)]
