"""From an optimized Program to an Artifact: machine code plus a plain-data manifest.

The manifest carries everything the runtime needs to check arguments and call the
code (signature, dims, buffers, error messages, external symbols), so an artifact can
be loaded and run without the graph that produced it.
"""
from __future__ import annotations

import contextlib
import time

from symgraph import dims as D
from symgraph.op import format_source
from . import target

FORMAT_VERSION = 2


class Artifact:
    """Machine code and its manifest; ``ir``/``optimized_ir``/``plan`` are empty when it
    came from the cache. (A plain class: a dataclass costs about a millisecond to create
    at import, a visible share of a warm ``sg.function``.)"""

    def __init__(self, object_code: bytes, manifest: dict, ir: str = "",
                 optimized_ir: str = "", timings=None, plan=None, library: bytes = b""):
        self.object_code = object_code
        self.manifest = manifest
        self.ir = ir                        # the generated IR before optimization
        self._optimized_ir = optimized_ir
        self.timings = timings if timings is not None else {}
        self.plan = plan
        self.library = library              # the object linked as a shared library (link.py)
        self.parts = 0                      # modules LLVM compiled it in (0: not compiled here)
        self.early_kernels = 0              # kernels compiled during lowering (early_part.py)

    @property
    def optimized_ir(self) -> str:
        """The IR after LLVM's optimizations, made again from ``ir`` when first asked
        for (printing a big optimized module costs a visible share of a compile)."""
        if not self._optimized_ir and self.ir:
            self._optimized_ir = str(target.parse_and_optimize(self.ir))
        return self._optimized_ir

    @optimized_ir.setter
    def optimized_ir(self, text: str) -> None:
        self._optimized_ir = text


def _argspecs(program):
    g = program.graph
    out = []
    for nid in program.inputs:
        node = g.node(nid)
        shape = [d if type(d) is int else D.as_symbol(d) for d in node["type"].shape]
        out.append({"name": node["name"] or f"%{nid}", "dtype": node["type"].dtype.str,
                    "shape": shape})
    return out


def build(program, *, keep_ir: bool = True, pool=None) -> Artifact:
    """``pool``: workers.Pool started for this compile (cache.compile_function starts
    it before the rewrites), else one is started here."""
    # Imported here: the code generator is large, and loading a cached artifact
    # (which imports this module for Artifact) never needs it.
    from .codegen import compile_program, ENTRY, ARRAY_ENTRY, ARRAY_DATA_OFFSET
    from . import workers
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(workers.Pool(workers.expected_parts(program)))
        light = _light_stream(pool)
        early = _early_part(pool)
        try:
            ir_text, layout = compile_program(program, light=light, early=early)
            t1 = time.perf_counter()
            if light is not None and light.main_text is not None:
                obj, t2, parts = _compile_streamed(light, pool)
            elif early is not None and early.rest_text is not None:
                obj, t2, parts = _compile_with_early(early, pool)
            else:
                obj, t2, parts = _compile_ir(ir_text, pool)
        finally:
            if light is not None:
                light.close()
    t3 = time.perf_counter()
    g = program.graph
    reqs = [{"left": D.to_data(a), "right": D.to_data(b),
             "where": f"{g.op(nid).name} at {format_source(g.node(nid)['source'])}"}
            for a, b, nid in program.requirements()]
    manifest = {
        "format": FORMAT_VERSION,
        "entry": ENTRY,
        "array_entry": ARRAY_ENTRY,
        "array_data_offset": ARRAY_DATA_OFFSET,
        "cpu": target.cpu_fingerprint(),
        "inputs": _argspecs(program),
        "requirements": reqs,
        "symbols": layout["symbols"],
        "shared": [{"name": g.node(n)["name"], "dtype": g.type(n).dtype.str,
                    "shape": list(g.type(n).shape)} for n in layout["shared"]],
        "constants": [{"dtype": g.type(n).dtype.str, "shape": list(g.type(n).shape)}
                      for n in layout["constants"]],
        "outputs": [{"dtype": g.type(n).dtype.str,
                     "shape": [D.to_data(d) for d in g.type(n).shape]}
                    for n in layout["outputs"]],
        "scratch_bytes": D.to_data(layout["scratch_bytes"]),
        "errors": layout["errors"],
        "external": layout["blas"],
        "python_entry": layout["python_entry"],
        "threads_symbol": layout["threads_symbol"],
    }
    art = Artifact(obj, manifest, ir_text if keep_ir else "", "",
                   {"lower": t1 - t0, "optimize": t2 - t1, "codegen": t3 - t2},
                   layout["plan"])
    art.parts = parts
    art.early_kernels = len(early.shipped) if early is not None else 0
    art.shared_ids = layout["shared"]
    art.constant_ids = layout["constants"]
    return art


def _light_stream(pool):
    """A LightStream for the kernels of a big module, when a second core can compile
    them during lowering (a worker was started: see workers.expected_parts) and they
    are written as text; else None."""
    from .kernels import writes_text
    if not len(pool) or not writes_text():
        return None
    from .light_stream import LightStream
    return LightStream()


def _early_part(pool):
    """An EarlyPart for the first kernels of a small module, when a worker can compile
    them during lowering and the printer can leave them out of the rest's text
    (irprint.module_texts); else None."""
    from .kernels import writes_text
    if not len(pool) or not writes_text():
        return None
    from .early_part import EarlyPart
    return EarlyPart(pool)


# the glue of a streamed module: the stream's thread takes the first share (it has
# the last batches to compile too), the worker the second, with the rest of the
# module (a 10,000-op graph: the two end within 0.05 s of each other)
GLUE_SHARES = (2, 3)


def _compile_streamed(light, pool):
    """(object code, time when compilation ended, parts) of a module whose light
    kernels went to ``light`` while it was lowered: the rest (light.main_text) is
    compiled by a worker (here, if no worker can) meanwhile ``light``'s thread compiles
    the last batches; the module's glue (partition.separate_glue) is shared between
    the two."""
    from symgraph.runtime.objects import pack
    from .vector_kernels import LIGHT_ATTRIBUTE
    text, glues = light.main_text, None
    if LIGHT_ATTRIBUTE not in text:         # every kernel in vector form went to ``light``
        text, glues = target.separate_glue(text, shares=GLUE_SHARES)
    here, there = (glues + [None])[:2] if glues else (None, None)
    if here is not None:
        light.add_glue(here)
    worker = pool.submit_one(text, big=True, whole=glues is None, glue=there)
    objects = list(light.finish())
    rest = worker.result() if worker is not None else None
    if rest is None:
        rest = target.compile_objects(text, big=True, whole=glues is None)
        if there is not None:
            rest.append(target.compile_glue(there))
    return pack(objects + rest), time.perf_counter(), len(objects) + len(rest)


def _compile_ir(ir_text: str, pool):
    """(object code, time when optimization ended, parts): a module in parts on several
    cores when it pays (workers.py: ``pool`` holds the workers started for it;
    "optimize" then times the split and the whole parallel compile), else in one piece
    here. The parts' objects are bundled (runtime/objects.py): loaders link them."""
    from symgraph.runtime.objects import pack
    objects, parts = _objects(ir_text, pool)
    return pack(objects), time.perf_counter(), parts


def _compile_with_early(early, pool):
    """_compile_ir of a module whose first kernels an EarlyPart's worker compiles: the
    rest's glue goes to that worker too, the rest's kernels are compiled here."""
    from symgraph.runtime.objects import pack
    rest, glues = target.separate_glue(early.rest_text)
    early.send_glue(glues[0] if glues else None)
    objects, parts = _objects(rest, pool)
    objects = objects + early.result()
    return pack(objects), time.perf_counter(), parts + 1


def _objects(ir_text: str, pool):
    """(objects, parts) of _compile_ir."""
    from . import workers
    parts = workers.parts_for(ir_text, len(pool))
    if parts > 1:
        from .partition import split, KERNEL, glue_weight
        # the glue (entries, segments, dispatchers) apart, for the fast code generator
        # here; the rest along its kernels, this process's part lighter by the glue
        rest, glues = target.separate_glue(ir_text)
        glue = glues[0] if glues else None
        texts = split(rest, KERNEL, parts, first_extra=glue_weight(glue))
        if texts is not None:
            big = target.is_big(ir_text)
            objects = pool.compile(
                texts, lambda text: target.compile_objects(text, big=big), big=big,
                also_here=(lambda: [target.compile_glue(glue)]) if glue else None)
            return [o for part in objects for o in part], len(texts)
    return target.compile_objects(ir_text, whole=True), 1


def constant_values(program, artifact) -> list:
    g = program.graph
    return [g.op(n).value.array for n in artifact.constant_ids]


def shared_storages(program, artifact) -> list:
    g = program.graph
    return [g.op(n).storage for n in artifact.shared_ids]
