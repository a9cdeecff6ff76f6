"""One LLVM job: IR text in, object code out, with symgraph's optimization pipeline.

It imports llvmlite only, so that a worker process (compiler/workers.py) runs it as a
script without importing symgraph, numpy or networkx; target.py runs the same
functions in-process, so a part compiled by a worker is the code the process itself
would have made.

As a script it reads requests from stdin until it closes (each a head line of
``key=value`` words, ``request_line``: triple, cpu, features, opt, big, text_bytes,
light_bytes, glue_bytes; then the IR
text (text_bytes), the light part of partition.separate (light_bytes) and the glue
of partition.separate_glue (glue_bytes); a request may be glue alone), writes the
objects of all of them to stdout (``frame``) and exits with 0; an error of LLVM's
exits with 1 and its message on stderr.
"""
from __future__ import annotations

import sys


def machine(binding, triple: str, cpu: str, features: str, *, fast: bool = False):
    """A target machine for relocatable, position-independent objects; ``fast``: one
    whose code generator skips the machine-level optimizations (see ``optimized_modules``)."""
    target = binding.Target.from_triple(triple)
    return target.create_target_machine(cpu=cpu, features=features, opt=0 if fast else 3,
                                        reloc="pic", codemodel="default")


def parse(binding, tm, text: str):
    mod = binding.parse_assembly(text)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    return mod


def optimize(binding, tm, mod, *, opt: int, big: bool) -> None:
    """The O2/O3 pipeline with vectorization on; a big module (many kernels) gets O2
    without loop interleaving and unrolling, and keeps its vector math out of line."""
    if not opt:
        return
    pto = binding.create_pipeline_tuning_options(speed_level=min(opt, 2 if big else 3))
    pto.loop_vectorization = True
    # Kernels are loops, the loop vectorizer's work. The SLP vectorizer found nothing
    # to gain in them (MLP, CNN and elementwise steps ran as fast without it) and took
    # a fifth of LLVM's time on an MLP step, chewing on inlined vector math.
    pto.slp_vectorization = False
    pto.loop_interleaving = not big
    pto.loop_unrolling = not big
    pb = binding.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    if not big:
        _inline_vector_math(binding, mod, tm)


def optimize_light(binding, tm, mod, *, big: bool = False) -> None:
    """The pipeline of kernels written in vector form (compiler/vector_kernels.py):
    their bodies and vector math inlined (math is kept out of line in a big module,
    as in optimize: partition.separate marks it noinline there),
    instcombine and simplifycfg to clean up the IR as emitted, dead math copies dropped.
    No vectorizer and none of O2's dozens of passes: a tenth of their time here.

    ``big``: no instcombine. For the fast code generator it was a fifth of a batch of
    kernels' time (light_stream.py: 0.15 of 0.72 s for 210 kernels) and it made their
    code 7 % smaller, which changed nothing measurable in the run time (a 3,000-op
    graph at batch 1,024: 146 ms without, 150 ms with, within this host's noise)."""
    pm = binding.create_new_module_pass_manager()
    pm.add_always_inliner_pass()     # the kernels' bodies (and math, unless big)
    pm.add_sroa_pass()               # accumulators kept in stack slots (softmax rows)
    if not big:
        pm.add_instruction_combine_pass()
    pm.add_simplify_cfg_pass()
    pm.add_global_dead_code_eliminate_pass()
    pm.run(mod, binding.create_pass_builder(tm, binding.create_pipeline_tuning_options(
        speed_level=2)))


def build(binding, tm, text: str, light: str | None, *, opt: int, big: bool):
    """The optimized module of a main text and, if any, its light part (see
    partition.separate) optimized apart and linked in."""
    mod = parse(binding, tm, text)
    optimize(binding, tm, mod, opt=opt, big=big)
    if light:
        extra = parse(binding, tm, light)
        if opt:
            optimize_light(binding, tm, extra)
        mod.link_in(extra)
    return mod


def optimized_modules(binding, tm, fast_tm, text: str, light: str | None, *, opt: int,
                      big: bool, glue: str | None = None) -> list:
    """(target machine, optimized module) pairs of a main text and its light part
    (partition.separate): one module, the light part linked in, or two in a big
    module, whose light part (kernels already in vector form) ``fast_tm`` compiles (a
    callable making it on demand).

    Why two: in a big module LLVM's time goes to the code generator, a fixed cost of
    about 2 ms per function plus 65 us per line of IR at O3 (measured on the kernels
    of a 10,000-op graph: 6-7 ms per fused kernel). Those kernels are vector code
    already, written as the machine should run them, and the machine-level passes
    (scheduling, greedy allocation, machine LICM and CSE, block placement) found little
    to improve in them: code generation without them took 45-55 % of the time, and the
    3,000-op graph ran as fast within the noise of this host (its medians varied by
    more than the difference). Small modules keep one module at O3: their kernels are
    the hot loops of a training step, and their code generation is not the bulk of
    the compile.

    ``glue`` (a big module's segments, partition.separate_glue): a third module, of
    ``optnone`` functions, which the fast code generator compiles as they are."""
    two = light and big and opt
    fast = fast_tm() if two or glue is not None else None
    glued = [(fast, parse(binding, fast, glue))] if glue is not None else []
    if not two:
        return [(tm, build(binding, tm, text, light, opt=opt, big=big))] + glued
    mod = parse(binding, tm, text)
    optimize(binding, tm, mod, opt=opt, big=big)
    kernels = parse(binding, fast, light)
    optimize_light(binding, fast, kernels, big=True)
    return [(tm, mod), (fast, kernels)] + glued


def compile_objects(binding, tm, fast_tm, text: str, light: str | None, *, opt: int,
                    big: bool, glue: str | None = None) -> list:
    """The objects of ``optimized_modules``, one per module."""
    return [emit(binding, machine_, mod) for machine_, mod in
            optimized_modules(binding, tm, fast_tm, text, light, opt=opt, big=big,
                              glue=glue)]


def compile_light(binding, fast_tm, text: str) -> bytes:
    """The object of a module of kernels in vector form only (light_stream.py): the
    light part of a big module (``optimized_modules``), compiled alone."""
    mod = parse(binding, fast_tm, text)
    optimize_light(binding, fast_tm, mod, big=True)
    return emit(binding, fast_tm, mod)


def compile_glue(binding, fast_tm, text: str) -> bytes:
    """The object of a module of glue (partition.separate_glue: ``optnone`` functions),
    compiled as it is by the fast code generator."""
    return emit(binding, fast_tm, parse(binding, fast_tm, text))


def compile_helpers(binding, tm, text: str) -> bytes:
    """The object of the helpers of a big module's kernels (fast_isel.py): tiny
    functions, cleaned up and compiled with ``tm``'s own code generator."""
    mod = parse(binding, tm, text)
    optimize_light(binding, tm, mod)
    return emit(binding, tm, mod)


def request_line(request: dict) -> bytes:
    """A request's head line: ``key=value`` words (no json: importing it was a tenth
    of a worker's start-up before LLVM loads)."""
    words = []
    for key, value in request.items():
        text = str(int(value) if isinstance(value, bool) else value)
        if not text or any(c.isspace() or c == "=" for c in key + text):
            raise ValueError(f"cannot send {key}={text!r} to an LLVM worker")
        words.append(f"{key}={text}")
    return (" ".join(words) + "\n").encode()


def parse_request(line: bytes) -> dict:
    """The dict of ``request_line``: numbers as ints, the rest as text."""
    out = {}
    for word in line.decode().split():
        key, _, value = word.partition("=")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def frame(objects: list) -> bytes:
    """A worker's objects on its stdout: each one's length (8 bytes, little-endian),
    then its bytes."""
    return b"".join(len(o).to_bytes(8, "little") + o for o in objects)


def unframe(data: bytes) -> list:
    """The objects of ``frame``; ValueError for a truncated answer."""
    out, at = [], 0
    while at < len(data):
        if at + 8 > len(data):
            raise ValueError("truncated answer from an LLVM worker")
        n = int.from_bytes(data[at:at + 8], "little")
        if at + 8 + n > len(data):
            raise ValueError("truncated answer from an LLVM worker")
        out.append(data[at + 8:at + 8 + n])
        at += 8 + n
    return out


def emit(binding, tm, mod) -> bytes:
    """The object code of an optimized module, compiled without loop strength
    reduction: on x86 the loops address their operands as base + index * size anyway,
    and LSR took a sixth of LLVM's time on a 1,000-op graph and an eighth on an MLP
    step, for no measured change in the speed of the MLP, CNN and elementwise steps.
    The switch is a global option of LLVM's, so it is set for this object only
    (callers hold the lock around LLVM)."""
    binding.set_option("", "-disable-lsr=true")
    try:
        return tm.emit_object(mod)
    finally:
        binding.set_option("", "-disable-lsr=false")


def _inline_vector_math(binding, mod, tm) -> None:
    """Inline the out-of-line vector math (vecmath_lib) into the vectorized loops that
    now call it: a call clobbers every vector register, so the loop would spill its
    live values around each one. Only the vector variants are ``alwaysinline``, and
    they have no callers before the loop vectorizer runs, hence this second pass."""
    pm = binding.create_new_module_pass_manager()
    pm.add_always_inliner_pass()
    pm.add_instruction_combine_pass()
    pm.add_simplify_cfg_pass()
    pm.run(mod, binding.create_pass_builder(tm, binding.create_pipeline_tuning_options(
        speed_level=2)))


def main() -> int:
    # LLVM is loaded while the parent is still lowering (about 70 ms), not after the
    # part has come
    try:
        import llvmlite.binding as binding
        binding.initialize_native_target()
        binding.initialize_native_asmprinter()
    except Exception as exc:  # noqa: BLE001  the parent compiles the part itself
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 3
    objects, machines = [], {}
    while True:
        head = sys.stdin.buffer.readline()
        if not head.strip():
            break      # no (more) requests: a worker started for a part that never came
        try:
            request = parse_request(head)
            sizes = [request["text_bytes"], request["light_bytes"], request["glue_bytes"]]
            data = sys.stdin.buffer.read(sum(sizes))
            if len(data) != sum(sizes):
                raise ValueError("truncated request")
            text = data[:sizes[0]].decode()
            light = data[sizes[0]:sizes[0] + sizes[1]].decode() or None
            glue = data[sizes[0] + sizes[1]:].decode() or None
            where = (request["triple"], request["cpu"], request["features"])
            if where not in machines:
                machines[where] = machine(binding, *where)
            tm = machines[where]
        except Exception as exc:  # noqa: BLE001  the parent compiles the part itself
            sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
            return 3
        try:
            def fast(where=where):
                return machine(binding, *where, fast=True)
            if text:
                objects += compile_objects(binding, tm, fast, text, light,
                                           opt=request["opt"], big=request["big"], glue=glue)
            elif glue:      # glue alone (workers.Worker.send_last)
                objects.append(compile_glue(binding, fast(), glue))
        except Exception as exc:  # noqa: BLE001  reported by the parent
            sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
            return 1
    if objects:
        sys.stdout.buffer.write(frame(objects))
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
