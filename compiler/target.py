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
    return target.create_target_machine(cpu=name, features=features, opt=3, reloc="pic",
                                        codemodel="default")


@functools.lru_cache(maxsize=None)
def _shared_tm():
    return target_machine()


# A module with more functions than this (kernels, out-of-line math) is optimized at
# O2 without loop interleaving and unrolling: loops still vectorize, and compile time
# stays near-linear in the graph size (benchmarks/workloads/compile_ops.py).
BIG_MODULE_FUNCTIONS = 48


def parse_and_optimize(ir_text: str, *, opt: int = 3):
    """Parse IR text, verify it, and run the O2/O3 pipeline with vectorization on
    (a lighter one for big modules, see BIG_MODULE_FUNCTIONS)."""
    b = llvm()
    big = ir_text.count("\ndefine ") > BIG_MODULE_FUNCTIONS
    with _lock:
        tm = _shared_tm()
        mod = b.parse_assembly(ir_text)
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        if opt:
            pto = b.create_pipeline_tuning_options(speed_level=min(opt, 2 if big else 3))
            pto.loop_vectorization = True
            pto.slp_vectorization = True
            pto.loop_interleaving = not big
            pto.loop_unrolling = not big
            pb = b.create_pass_builder(tm, pto)
            pb.getModulePassManager().run(mod, pb)
            if not big:
                _inline_vector_math(b, mod, tm)
        return mod


def _inline_vector_math(b, mod, tm):
    """Inline the out-of-line vector math (vecmath_lib) into the vectorized loops that
    now call it: a call clobbers every vector register, so the loop would spill its
    live values around each one. Only the vector variants are ``alwaysinline``, and
    they have no callers before the loop vectorizer runs, hence this second pass."""
    pm = b.create_new_module_pass_manager()
    pm.add_always_inliner_pass()
    pm.add_instruction_combine_pass()
    pm.add_simplify_cfg_pass()
    pm.run(mod, b.create_pass_builder(tm, b.create_pipeline_tuning_options(speed_level=2)))


def emit_object(mod) -> bytes:
    with _lock:
        return _shared_tm().emit_object(mod)


def emit_assembly(mod) -> str:
    with _lock:
        return _shared_tm().emit_assembly(mod)


def data_layout() -> str:
    return str(_shared_tm().target_data)


def triple() -> str:
    return _shared_tm().triple
