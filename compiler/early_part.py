"""The first kernels of a small module, compiled by a worker while the rest is lowered.

A small module (an MLP's training step) is compiled at O3 on two cores: a worker
process takes part of its kernels. Split after lowering (partition.split), that part
reached the worker about 0.15 s into the compile, while the worker had been ready
(LLVM loaded) since about 0.1 s; its core waited meanwhile. Here the kernels written
by the time about half of the module's loops are lowered go to the worker as soon as
they are: it compiles them while this process lowers, prints and compiles the rest.

The part is what partition.split makes of the module for a second part: the kernels
``hidden`` (the entry, compiled here, calls them), what they call copied as
``internal``, the vector variants of vector math renamed (external until the
vectorizer has run). The rest of the module declares the kernels instead
(irprint.module_texts: ``shipped``).
"""
from __future__ import annotations

from llvmlite import ir

from .irtext import text_function

# The part goes when this share of the module's loops (fused steps) is lowered: the
# worker then compiles about as long as this process takes to lower, print and compile
# the rest (an MLP step: this process ends 10-20 ms before the worker, which also
# compiles the glue; shares of 0.25 and 0.3 gave the same compile time, 0.5 a longer).
SHARE = 0.35
KERNEL_PREFIX = "k."


class EarlyPart:
    """The part of a small module given to a worker of ``pool`` (workers.Pool, which
    then has one fewer) during its lowering; ``shipped`` names its kernels for the
    rest's text, ``rest_text`` is that text (codegen.compile_program)."""

    def __init__(self, pool):
        self.pool = pool
        self.worker = None
        self.shipped: dict = {}
        self.text = None                  # the part's module text, once shipped
        self.rest_text = None
        self.done = False                 # shipped, or given up (a big module)
        self.glue = None                  # the glue the worker compiles after the part
        self._sent = False
        self._lowered = 0

    def after_step(self, ctx, nid) -> None:
        """Step ``nid`` is lowered (every kernel so far is complete): ship the kernels
        once enough of the module's loops are."""
        if self.done:
            return
        from .horizontal import as_fused
        from .lowerings import _big_program
        if _big_program(ctx):             # a big module's kernels stream (light_stream.py)
            self.done = True
            return
        if as_fused(ctx.graph, nid) is None:
            return
        self._lowered += 1
        if self._lowered >= SHARE * ctx._fused_steps:
            self.ship(ctx.module)

    def ship(self, module) -> None:
        self.done = True
        kernels = [fn for fn in module.functions
                   if fn.name.startswith(KERNEL_PREFIX) and _defined(fn)]
        if len(kernels) < 2 or not len(self.pool):
            return
        text = part_text(module, kernels)
        if text is None:
            return
        from .workers import _request
        self.worker = self.pool.take()
        self.worker.submit(1, text, _request(False), more=True)
        self.text = text
        self.shipped = {fn.name: "declare" for fn in kernels}

    @property
    def started(self) -> bool:
        return self.text is not None

    def send_glue(self, glue) -> None:
        """The module's glue (target.separate_glue of the rest), or None, for the worker
        after its part: it was ready about 0.05 s before this process had printed the
        rest, and this process then compiles the rest's kernels."""
        self.glue = glue
        self.worker.send_last(glue)
        self._sent = True

    def result(self) -> list:
        """The objects of the part and the glue: the worker's, or compiled here if it
        failed."""
        if not self._sent:
            self.send_glue(None)
        objects = self.worker.result()
        if objects is None:
            from . import target
            objects = target.compile_objects(self.text, big=False)
            if self.glue:
                objects.append(target.compile_glue(self.glue))
        return objects


def _defined(fn) -> bool:
    return bool(fn.blocks) or text_function(fn) is not None


def part_text(module, kernels):
    """The module text of ``kernels`` (complete functions of ``module``) as the second
    part of a split (partition.part_text), or None when they cannot be apart."""
    from . import partition
    from .irprint import _Printer, module_head
    from .light_stream import _metadata, reached
    printer = _Printer()
    functions, seen, stack = [], set(), list(reversed(kernels))
    while stack:
        fn = stack.pop()
        if fn.name in seen or not _defined(fn):
            continue
        seen.add(fn.name)
        functions.append(printer.function(fn))
        stack.extend(reached(fn))
    declared = [printer.prototype(fn).rstrip("\n") for fn in module.functions
                if not _defined(fn)]
    variables = [str(v) for v in module.globals.values() if type(v) is not ir.Function]
    body = "".join(functions)
    text = "\n".join([*module_head(module), *variables, *declared, body,
                      *_metadata(module, body)]) + "\n"
    mod = partition.parse(text)
    names = [fn.name for fn in kernels]
    return partition.part_text(mod, 1, names, set(names), set(), names)
