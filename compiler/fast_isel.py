"""Kernels of a big module written so that LLVM's fast instruction selector takes them whole.

The kernels of a big module are compiled by the fast code generator (llvm_job.machine,
``fast``), whose FastISel selects a block's instructions one at a time and hands any
it does not know to SelectionDAG: a DAG of its own for a call it cannot lower, the
rest of the block for any other instruction. On this LLVM (22, x86-64) it does not
know, for vectors: an operand that is a constant, ``fneg``, calls of intrinsics
(``llvm.maximum``, ``llvm.fabs``, ...), element inserts and extracts, shuffles, and
compares and selects (measured with ``-pass-remarks-missed=isel``). In the kernels of
a 10,000-op graph the maximum and fabs calls and the fnegs alone made these fallbacks
a third of their code generation.

So the kernels of a streamed big module (light_stream.py) call a small helper
instead: ``define hidden <8 x float> @"sg.fi.N"(<8 x float> %a) { fneg; ret }``, one
per distinct instruction (its constants baked in), which FastISel calls like any
function of vector registers. The helpers go to one library object, made once per
compile by the optimizing code generator, so their bodies are good code: the
10,000-op graph ran as fast as before (1.76 s against 1.76-1.79 s at batch 4,096).

Compares and selects stay: their ``<N x i1>`` masks cannot be passed to a call
without a DAG either. Casts between pointer types are not written at all (see
OutliningBuilder): with both changes a batch of a 10,000-op graph's kernels took
0.27 s instead of 0.45 s to compile, and its text was a quarter shorter.
"""
from __future__ import annotations

from llvmlite import ir

from .irtext import Block, TextBuilder, Value, define

PREFIX = "sg.fi"

_BINARY = ("add", "sub", "mul", "sdiv", "srem", "udiv", "urem", "and_", "or_", "xor",
           "shl", "lshr", "ashr", "fadd", "fsub", "fmul", "fdiv", "frem")


def is_helper(name: str) -> bool:
    return name.startswith(PREFIX + ".")


def _plain_vector(t) -> bool:
    """A vector type that is not a mask (``<N x i1>``: no call can take one)."""
    return type(t) is ir.VectorType and not (type(t.element) is ir.IntType
                                            and t.element.width == 1)


def _vector_constant(v) -> bool:
    return isinstance(v, ir.Constant) and _plain_vector(v.type)


def _registers(args) -> list:
    """The registers among a builder call's arguments (a call's list included)."""
    out = []
    for a in args:
        if isinstance(a, Value):
            out.append(a)
        elif type(a) is list or type(a) is tuple:
            out.extend(_registers(a))
    return out


def _shape(a):
    """What of a builder argument goes into a helper's identity: a register's type, a
    constant's text, a callee's name, any other argument (a type, a flag) as text."""
    if isinstance(a, Value):
        return ("r", str(a.type))
    if isinstance(a, ir.Constant):
        return ("c", f"{a.type} {a.get_reference()}")
    if isinstance(a, ir.Function):
        return ("f", a.name)
    if isinstance(a, (list, tuple)):
        return tuple(_shape(x) for x in a)
    return ("o", str(a))


def _substitute(a, params):
    """``a`` with its registers replaced, in order, by the values of ``params``."""
    if isinstance(a, Value):
        return next(params)
    if isinstance(a, (list, tuple)):
        return type(a)(_substitute(x, params) for x in a)
    return a


def _own_values(args) -> bool:
    """Whether every value among ``args`` is a register or a constant (not a global,
    which a helper's module would lack)."""
    for a in args:
        if type(a) is list or type(a) is tuple:
            if not _own_values(a):
                return False
        elif isinstance(a, ir.Value) and not isinstance(a, (ir.Constant, ir.Function)):
            return False
    return True


class _Scratch:
    """Stands in for a TextFunction while an instruction is written once to learn
    its result type."""

    def __init__(self, module):
        self.module = module
        self.callees: dict = {}

    def fresh(self) -> str:
        return '%"r"'


class Outliner:
    """The helpers of one module (made on first use) and the builder that calls them."""

    def __init__(self, module: ir.Module):
        self.module = module
        self.helpers: dict = {}          # identity -> ir.Function
        self._signatures: dict = {}

    def builder(self, block: Block) -> "OutliningBuilder":
        return OutliningBuilder(block, self)

    def call(self, builder, base, args, extra: dict, name: str):
        """The call of the helper that writes ``base(builder, *args, **extra)``, or
        that instruction itself when an argument cannot go into a helper."""
        if not _own_values(args):
            return base(builder, *args, name=name, **extra)
        key = (base.__name__, tuple([_shape(a) for a in args]),
               tuple(sorted((k, _shape(v)) for k, v in extra.items())))
        helper = self.helpers.get(key)
        if helper is None:
            helper = self.helpers[key] = self._define(base, args, extra)
        return TextBuilder.call(builder, helper, _registers(args), name=name)

    def _define(self, base, args, kwargs) -> ir.Function:
        regs = _registers(args)
        scratch = TextBuilder(Block(_Scratch(self.module), "entry"))
        probe = [Value(r.type, f'%"a{k}"') for k, r in enumerate(regs)]
        result = base(scratch, *_substitute(args, iter(probe)), **kwargs)
        fnty = ir.FunctionType(result.type, [r.type for r in regs])
        fn = ir.Function(self.module, fnty, name=f"{PREFIX}.{len(self.helpers)}")
        fn.linkage = "internal"      # as a kernel: ``hidden`` where it is shipped
        b, params = define(fn)
        b.ret(base(b, *_substitute(args, iter(params)), **kwargs))
        return fn


class OutliningBuilder(TextBuilder):
    """A TextBuilder that writes what FastISel misses as calls of helpers, and no
    casts between pointer types: LLVM's pointers are opaque (``float*`` parses as
    ``ptr``), so such a cast is an instruction that does nothing but still costs
    parsing and selection (a quarter of a kernel's lines were these)."""

    def __init__(self, block: Block, outliner: Outliner):
        super().__init__(block)
        self.outliner = outliner

    def bitcast(self, value, typ, name=""):
        if isinstance(typ, ir.PointerType) and isinstance(value, Value) \
                and isinstance(value.type, ir.PointerType):
            return Value(typ, value.ref)
        return TextBuilder.bitcast(self, value, typ, name)

    def fneg(self, arg, name="", flags=()):
        if not _plain_vector(arg.type):
            return TextBuilder.fneg(self, arg, name, flags)
        return self.outliner.call(self, TextBuilder.fneg, (arg,),
                                  {"flags": tuple(flags)} if flags else {}, name)

    def call(self, fn, args, name=""):
        if (type(fn) is not ir.Function or not fn.name.startswith("llvm.")
                or not _plain_vector(fn.ftype.return_type)
                or not all(_plain_vector(a.type) or not isinstance(a.type, ir.VectorType)
                           for a in args)):
            return TextBuilder.call(self, fn, args, name)
        return self.outliner.call(self, TextBuilder.call, (fn, list(args)), {}, name)

    def extract_element(self, vector, idx, name=""):
        if not _plain_vector(vector.type):
            return TextBuilder.extract_element(self, vector, idx, name)
        return self.outliner.call(self, TextBuilder.extract_element, (vector, idx), {}, name)

    def insert_element(self, vector, value, idx, name=""):
        if not _plain_vector(vector.type):
            return TextBuilder.insert_element(self, vector, value, idx, name)
        return self.outliner.call(self, TextBuilder.insert_element, (vector, value, idx),
                                  {}, name)

    def shuffle_vector(self, vector1, vector2, mask, name=""):
        if not _plain_vector(vector1.type):
            return TextBuilder.shuffle_vector(self, vector1, vector2, mask, name)
        return self.outliner.call(self, TextBuilder.shuffle_vector,
                                  (vector1, vector2, mask), {}, name)


def _binary(method: str):
    base = getattr(TextBuilder, method)

    def write(self, lhs, rhs, name="", flags=()):
        if not (_vector_constant(rhs) or _vector_constant(lhs)):   # registers: selected
            return base(self, lhs, rhs, name, flags)
        return self.outliner.call(self, base, (lhs, rhs),
                                  {"flags": tuple(flags)} if flags else {}, name)
    write.__name__ = method
    return write


for _method in _BINARY:
    setattr(OutliningBuilder, _method, _binary(_method))
