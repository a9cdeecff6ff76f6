"""Functions written as IR text (compiler/irtext.py) are what llvmlite's builder makes
for the same calls, byte for byte; whole programs are compared in test_irprint.py,
here every builder call is, on hand-built functions."""
import numpy as np
import pytest
from llvmlite import ir

import symgraph as sg
from symgraph.compiler import irprint, irtext, kernels
from symgraph.compiler.codegen import lower_program
from symgraph.compiler.irprint import module_text
from symgraph.compiler.irutil import I32, I64, PTR

F32, F64, I1, I8, I32, I64 = (ir.FloatType(), ir.DoubleType(), ir.IntType(1), ir.IntType(8),
                              ir.IntType(32), ir.IntType(64))
V8 = ir.VectorType(F32, 8)


def _every_call(b, args, module):
    """One function's body through every TextBuilder call (the same for both builders)."""
    p, n, x = args
    fp = b.bitcast(p, F32.as_pointer(), name="fp")
    slot = b.alloca(V8, name="slot")
    with b.goto_entry_block():
        b.alloca(ir.ArrayType(I32, 4))
    loop = b.append_basic_block("loop.body")
    odd = b.append_basic_block('odd "name"')
    done = b.append_basic_block("9done")
    pre = b.block
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(I64, name="i")
    i.add_incoming(ir.Constant(I64, 0), pre)
    at = b.gep(fp, [i], inbounds=True)
    v = b.load(at, align=4)
    w = b.fmul(b.fadd(v, x, flags=("reassoc", "nsz")), b.fneg(x))
    w = b.frem(b.fdiv(b.fsub(w, x), x), x)
    c = b.fcmp_ordered("<", w, x)
    c2 = b.fcmp_unordered("uno", w, x, flags=("nnan",))
    w = b.select(b.or_(c, c2), w, ir.Constant(F32, 0.5))
    b.store(w, at, align=4)
    k = b.add(i, ir.Constant(I64, 1), flags=["nsw", "nuw"])
    j = b.mul(b.sub(k, n), b.neg(n))
    j = b.ashr(b.xor(b.and_(j, n), b.not_(n)), ir.Constant(I64, 1))
    j = b.sdiv(b.srem(j, n), n)
    j = b.lshr(b.shl(b.udiv(b.urem(j, n), n), ir.Constant(I64, 2)), ir.Constant(I64, 1))
    t = b.trunc(j, I32)
    back = b.cbranch(b.icmp_signed("<", k, n), loop, odd)
    back.set_metadata("llvm.loop", module.add_metadata([ir.MetaDataString(module, "m")]))
    i.add_incoming(k, loop)
    b.position_at_end(odd)
    e = b.icmp_unsigned(">=", t, ir.Constant(I32, 3))
    f = b.sitofp(b.zext(e, I32), F64)
    g = b.fptrunc(b.fpext(b.uitofp(b.sext(t, I64), F32), F64), F32)
    h = b.add(b.fptosi(g, I32), b.fptoui(g, I32))
    vec = b.insert_element(ir.Constant(V8, ir.Undefined), g, ir.Constant(I32, 0))
    vec = b.shuffle_vector(vec, ir.Constant(V8, ir.Undefined), ir.Constant(
        ir.VectorType(I32, 8), [0] * 8))
    b.store(vec, slot, align=32)
    vmask = b.fcmp_ordered("==", vec, b.load(slot))
    lane = b.extract_element(b.select(vmask, vec, vec), ir.Constant(I32, 3))
    pair_ty = ir.LiteralStructType([F32, I32])
    pair = b.insert_value(ir.Constant(pair_ty, ir.Undefined), lane, 0)
    pair = b.insert_value(pair, h, 1)
    callee = ir.Function(module, ir.FunctionType(F32, [F32, F64]), name="callee")
    r = b.call(callee, [b.extract_value(pair, 0), f])
    b.call(ir.Function(module, ir.FunctionType(ir.VoidType(), []), name="sink"), [])
    b.branch(done)
    b.position_at_end(done)
    b.ret(r)


def _module(text: bool) -> str:
    m = ir.Module(name="m")
    fn = ir.Function(m, ir.FunctionType(F32, [I8.as_pointer(), I64, F32]), name="f")
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.args[0].add_attribute("noalias")
    for a, name in zip(fn.args, ("p", "n", "x")):
        a.name = name
    if text:
        b, args = irtext.define(fn)
    else:
        b, args = ir.IRBuilder(fn.append_basic_block("entry")), fn.args
    _every_call(b, args, m)
    return module_text(m) if text else str(m)


def test_every_builder_call_writes_llvmlites_text():
    written, made = _module(True), _module(False)
    for k, (a, b) in enumerate(zip(written.splitlines(), made.splitlines())):
        assert a == b, f"line {k + 1} differs"
    assert written == made


def test_the_written_text_is_valid_ir():
    from symgraph.compiler import target
    mod = target.llvm().parse_assembly(_module(True))
    mod.verify()


def test_void_calls_return_nothing_and_unsupported_forms_say_so():
    m = ir.Module(name="m")
    b, _ = irtext.define(ir.Function(m, ir.FunctionType(ir.VoidType(), []), name="g"))
    assert b.call(ir.Function(m, ir.FunctionType(ir.VoidType(), []), name="h"), []) is None
    with pytest.raises(NotImplementedError, match="not a value"):
        b.alloca(I32, size=4)
    with pytest.raises(NotImplementedError, match="branch weights"):
        with b.if_then(ir.Constant(ir.IntType(1), 1), likely=True):
            pass
    with pytest.raises(NotImplementedError, match="source type"):
        b.gep(b.alloca(I32), [ir.Constant(I32, 0)], source_etype=I32)


def _vector_program():
    with sg.Graph():
        x = sg.placeholder(shape=("n", 37), dtype=np.float32, name="x")
        y = sg.placeholder(shape=(37,), dtype=np.float32, name="y")
        f = sg.function([x, y], sg.maximum(x * y + 1.0, x) - y, mode="reference")
    return f.optimized


def test_vector_kernels_and_glue_are_written_as_text():
    module, _ = lower_program(_vector_program())
    written = {f.name: f for f in module.functions if irtext.text_function(f) is not None}
    kernels_ = [f for n, f in written.items() if n.startswith("k.")]
    assert kernels_ and all('"sg-light"' in str(f.attributes) for f in kernels_)
    text = module_text(module)
    assert all(f"define internal void @\"{f.name}\"" in text for f in kernels_)
    # the entry points and the dispatchers too; only vector math is left to llvmlite
    assert {"sg_entry", "sg_pycall"} <= set(written)
    assert all(n in written for n in module.globals if n.startswith("par."))
    left = [f.name for f in module.functions if f.blocks and f.name not in written]
    assert all(n.startswith(("sg.vm.", "sg.gemm", "sg_call_arrays")) for n in left), left


def test_an_untrusted_printer_gets_kernels_made_by_llvmlite(monkeypatch):
    """When irprint would hand the module to llvmlite's own printing, nothing may be
    text that llvmlite cannot print."""
    monkeypatch.setattr(irprint, "agrees_with_llvmlite", lambda: False)
    assert not kernels.writes_text()
    module, _ = lower_program(_vector_program())
    assert not [f for f in module.functions if irtext.text_function(f) is not None]
    assert module_text(module) == str(module)


def test_glue_instructions_print_as_llvmlite():
    """What the dispatchers and the Python entry use besides the kernels' instructions:
    counted allocas aligned after the fact, if/else blocks (llvmlite's names, long
    labels cut), atomics, overflow intrinsics, pointer casts, calls through a pointer."""
    def build(b, args, m):
        n = b.ptrtoint(args[0], I64)
        a = b.alloca(ir.IntType(8), size=n, name="buf")
        a.align = 64
        with b.if_else(b.icmp_signed(">", n, ir.Constant(I64, 0))) as (then, otherwise):
            with then:
                b.store_atomic(ir.Constant(I64, 0), b.bitcast(a, I64.as_pointer()), "release", 8)
            with otherwise:
                pair = b.cmpxchg(b.bitcast(a, I64.as_pointer()), ir.Constant(I64, 0),
                                 ir.Constant(I64, 1), "acquire", "monotonic")
                b.extract_value(pair, 1)
        with b.if_then(b.icmp_signed("==", n, ir.Constant(I64, 3))):
            b.smul_with_overflow(n, n)
        blk = b.append_basic_block("x" * 60)
        b.branch(blk)
        b.position_at_end(blk)
        with b.if_then(b.icmp_signed("==", n, ir.Constant(I64, 4))):
            b.sadd_with_overflow(n, n)
        target = b.inttoptr(n, ir.FunctionType(ir.VoidType(), [PTR]).as_pointer())
        b.call(target, [args[0]])
        b.ret_void()

    def module(text: bool):
        m = ir.Module(name="glue")
        fn = ir.Function(m, ir.FunctionType(ir.VoidType(), [PTR]), name="g")
        if text:
            b, args = irtext.define(fn)
        else:
            b, args = ir.IRBuilder(fn.append_basic_block("entry")), fn.args
        build(b, args, m)
        return irprint.module_text(m) if text else str(m)
    assert module(True) == module(False)
