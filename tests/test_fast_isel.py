"""Kernels for the fast code generator (compiler/fast_isel.py): what its instruction
selector misses becomes a call of a helper, one helper per distinct instruction, the
rest is written as before; compiled, the kernels of a streamed big module leave the
selector nothing to hand to SelectionDAG but compares and selects."""
import os
import subprocess
import sys
import textwrap

from llvmlite import ir

from symgraph.compiler import fast_isel, irtext
from symgraph.compiler.irprint import module_text

F32 = ir.FloatType()
V8 = ir.VectorType(F32, 8)
I32 = ir.IntType(32)


def _kernel(outline: bool):
    """(module, kernel text, outliner) of a function doing a bit of everything."""
    m = ir.Module("m")
    outliner = fast_isel.Outliner(m) if outline else None
    fn = ir.Function(m, ir.FunctionType(V8, [V8, V8, ir.IntType(8).as_pointer()]), name="k")
    b, (x, y, p) = irtext.define(fn, outliner)
    two = ir.Constant(V8, [2.0] * 8)
    maximum = ir.Function(m, ir.FunctionType(V8, [V8, V8]), name="llvm.maximum.v8f32")
    other = ir.Function(m, ir.FunctionType(V8, [V8]), name="sg.vm.exp.float32.v8")
    v = b.fneg(x)                                      # missed
    v = b.fmul(v, two)                                 # constant operand: missed
    v = b.fadd(v, y)                                   # registers: selected
    v = b.call(maximum, [v, ir.Constant(V8, [0.0] * 8)])   # intrinsic: missed
    v = b.call(other, [v])                             # a function: selected
    mask = b.fcmp_ordered(">", v, y)                   # a mask: stays
    v = b.select(mask, v, y)
    e = b.extract_element(v, ir.Constant(I32, 3))      # missed
    q = b.bitcast(p, F32.as_pointer())                 # a pointer cast: not written
    b.store(e, q)
    b.ret(b.fmul(v, ir.Constant(V8, [2.0] * 8)))       # the same helper as above
    return m, irtext.text_function(fn).body(), outliner


def test_missed_instructions_become_calls_of_helpers():
    m, body, _ = _kernel(True)
    for missed in ("fneg", "llvm.maximum", "extractelement", "splat", "<float"):
        assert missed not in body, missed
    assert body.count('@"sg.fi.') == 5
    assert "fadd <8 x float>" in body and '@"sg.vm.exp.float32.v8"' in body
    assert "fcmp ogt" in body and "select" in body
    assert "bitcast" not in body and "store float" in body


def test_one_helper_per_distinct_instruction_with_its_constants_inside():
    m, body, _ = _kernel(False)
    assert "fneg" in body and "bitcast" in body        # without an outliner: as before
    m, body, outliner = _kernel(True)
    helpers = list(outliner.helpers.values())
    assert len(helpers) == 4                            # x*2 twice is one helper
    texts = [irtext.text_function(h).body() for h in helpers]
    assert any("fneg <8 x float>" in t for t in texts)
    assert any("fmul <8 x float>" in t and "0x4000000000000000" in t for t in texts)
    assert any("llvm.maximum.v8f32" in t and ("zeroinitializer" in t or "0x0" in t)
               for t in texts)
    assert all(fast_isel.is_helper(h.name) for h in helpers)
    # the module with its helpers is valid IR
    from symgraph.compiler import target
    target.llvm().parse_assembly(module_text(m)).verify()


_STREAMED = """
import os, sys
os.environ["SYMGRAPH_COMPILE_WORKERS"] = "2"
os.environ["SYMGRAPH_CACHE_DIR"] = "off"
sys.path.insert(0, {tests!r})
from symgraph.compiler import target, light_stream, codegen
target.BIG_MODULE_FUNCTIONS = 8
light_stream.MIN_BATCH = light_stream.MAX_BATCH = 5
codegen.SEGMENT_STEPS, codegen.SEGMENTED_FROM = 8, 16
target.llvm().set_option("", "-pass-remarks-missed=isel")
import symgraph as sg
from test_light_stream import _helper_chain
with sg.Graph():
    inputs, outputs = _helper_chain("float32")
    f = sg.function(inputs, outputs)
print("parts", f.artifact.parts)
"""


def test_streamed_kernels_leave_selection_dag_only_compares_and_selects():
    tests = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(_STREAMED.format(tests=tests))],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[-1]) > 3            # streamed: batches and the rest
    missed = [ln for ln in run.stderr.splitlines()
              if "FastISel missed" in ln and "(in function: k." in ln]
    # remarks were on (a select misses, and with it the block above it)
    assert any(" = select " in ln for ln in missed)
    others = [ln for ln in missed if " = fcmp " not in ln and " = select " not in ln]
    assert not others, others[:5]
