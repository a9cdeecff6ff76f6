"""The host target: LLVM initialization, the optimization pipeline, object emission.

LLVM is initialized once, lazily, on the first compile (importing symgraph stays cheap).
Compiled code is emitted as a relocatable object; the runtime links it into a JIT
(MCJIT) together with the BLAS symbols it calls. The same object bytes go to the
disk cache and to ahead-of-time artifacts.
"""
from __future__ import annotations

import functools
import threading

_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def llvm():
    """The llvmlite binding, with the native target and asm printer registered."""
    import llvmlite.binding as binding
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    return binding


@functools.lru_cache(maxsize=None)
def host_cpu() -> tuple:
    """(triple, cpu name, feature string) of this machine."""
    b = llvm()
    return (b.get_process_triple(), b.get_host_cpu_name(), b.get_host_cpu_features().flatten())


def cpu_fingerprint() -> str:
    triple, name, features = host_cpu()
    return f"{triple}|{name}|{features}"


def target_machine(*, jit: bool = False):
    """A fresh host target machine (one per engine: engines take ownership)."""
    b = llvm()
    triple, name, features = host_cpu()
    target = b.Target.from_triple(triple)
    if jit:
        return target.create_target_machine(cpu=name, features=features, opt=3, jit=True)
    from .llvm_job import machine
    return machine(b, triple, name, features)


@functools.lru_cache(maxsize=None)
def _shared_tm():
    return target_machine()


@functools.lru_cache(maxsize=None)
def _fast_tm():
    """The host machine with LLVM's fast code generator (llvm_job.compile_objects)."""
    from .llvm_job import machine
    return machine(llvm(), *host_cpu(), fast=True)


# A module with more functions than this (kernels, out-of-line math) is optimized at
# O2 without loop interleaving and unrolling: loops still vectorize, and compile time
# stays near-linear in the graph size (benchmarks/workloads/compile_ops.py).
DEFAULT_BIG_MODULE_FUNCTIONS = 48
BIG_MODULE_FUNCTIONS = DEFAULT_BIG_MODULE_FUNCTIONS   # tests change it (cachekey.py)


def is_big(ir_text: str) -> bool:
    return ir_text.count("\ndefine ") > BIG_MODULE_FUNCTIONS


def _separated(ir_text: str, big: bool | None, *, glue_apart: bool = False):
    """(main text, light text or None, big, glue text or None) of a module's text
    (partition.separate, and with ``glue_apart`` separate_glue; ``big`` None: from its
    count of functions). Only a whole module may have its glue apart: what the glue
    calls becomes visible to the linker, and the parts of a split module each have
    their own copy of it (partition.split)."""
    from .partition import separate
    from .vector_kernels import LIGHT_ATTRIBUTE
    big = is_big(ir_text) if big is None else big
    main, light = separate(ir_text, LIGHT_ATTRIBUTE, inline_math=not big)
    glue = None
    if glue_apart:
        main, glues = separate_glue(main)
        glue = glues[0] if glues else None
    return main, light, big, glue


def separate_glue(ir_text: str, *, shares=(1,)):
    """partition.separate_glue of the module's glue: segments, dispatchers, entries."""
    from .codegen import GLUE, GLUE_ENTRIES
    from .partition import separate_glue as separate
    return separate(ir_text, GLUE, names=GLUE_ENTRIES, shares=shares)


def parse_and_optimize(ir_text: str, *, opt: int = 3, big: bool | None = None):
    """Parse IR text, verify it, and run the O2/O3 pipeline with vectorization on
    (a lighter one for big modules, see BIG_MODULE_FUNCTIONS; ``big`` overrides the
    count of functions); kernels already in vector form get the light pipeline
    apart and are linked in (llvm_job.build)."""
    from . import llvm_job
    # one module: the glue stays in it (optnone spares it the passes)
    main, light, big, _ = _separated(ir_text, big)
    with _lock:
        return llvm_job.build(llvm(), _shared_tm(), main, light, opt=opt, big=big)


def compile_objects(ir_text: str, *, big: bool | None = None, whole: bool = False) -> list:
    """The object code of IR text: parsed, optimized and emitted as a worker would
    (llvm_job.optimized_modules: one object, or two for a big module, three when it is
    ``whole`` (not a part of a split module: _separated) and has glue)."""
    from . import llvm_job
    main, light, big, glue = _separated(ir_text, big, glue_apart=whole)
    with _lock:
        return llvm_job.compile_objects(llvm(), _shared_tm(), _fast_tm, main, light,
                                        opt=3, big=big, glue=glue)


def compile_light(text: str) -> bytes:
    """The object of a module of kernels in vector form (llvm_job.compile_light)."""
    from . import llvm_job
    with _lock:
        return llvm_job.compile_light(llvm(), _fast_tm(), text)


def compile_glue(text: str) -> bytes:
    """The object of a module's glue (separate_glue), made by the fast code
    generator (llvm_job.compile_glue)."""
    from . import llvm_job
    with _lock:
        return llvm_job.compile_glue(llvm(), _fast_tm(), text)


def compile_helpers(text: str) -> bytes:
    """The object of the helpers of a big module's kernels (fast_isel.py), made by
    the optimizing code generator."""
    from . import llvm_job
    with _lock:
        return llvm_job.compile_helpers(llvm(), _shared_tm(), text)


def assembly(ir_text: str) -> str:
    """The assembly of IR text, made as compile_objects makes its code (in a big
    module, the kernels in vector form by the fast code generator, after the rest)."""
    from . import llvm_job
    main, light, big, glue = _separated(ir_text, None, glue_apart=True)
    with _lock:
        return "".join(tm.emit_assembly(mod) for tm, mod in llvm_job.optimized_modules(
            llvm(), _shared_tm(), _fast_tm, main, light, opt=3, big=big, glue=glue))


def emit_object(mod) -> bytes:
    """Object code of an optimized module (llvm_job.emit)."""
    from .llvm_job import emit
    with _lock:
        return emit(llvm(), _shared_tm(), mod)


def data_layout() -> str:
    return str(_shared_tm().target_data)


def triple() -> str:
    return _shared_tm().triple
