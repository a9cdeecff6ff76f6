"""Functions written straight as LLVM IR text: a builder with the part of llvmlite's
IRBuilder interface that the vector-form kernels use (vector_kernels.py,
kernels.emit_group), whose instructions are lines of text instead of llvmlite objects.

Why: lowering a 10,000-op graph spent about 4 s making llvmlite instruction objects
(each one validates its operands' types, registers its name, builds attribute sets)
and 2 s printing them again, for 1,500 kernels whose text is all that LLVM ever sees.
Here each instruction is one f-string, written once.

The text is what llvmlite would print for the same calls, byte for byte: the same
names (from the function's own llvmlite name scope, registered in the same order,
void instructions included), the same spacing. tests/test_irtext.py builds kernels
both ways and compares. A kernel written here is declared in the llvmlite module as
an ordinary ir.Function (callers call it as before); irprint prints its definition
from this text (``TextFunction.attach``). Operand types are not checked here as
llvmlite checks them: LLVM's verifier checks the parsed module (llvm_job.parse).
"""
from __future__ import annotations

from contextlib import contextmanager

from llvmlite import ir
from llvmlite.ir import types as ty

_I1 = ir.IntType(1)
_CMP = {">": "gt", "<": "lt", "==": "eq", "!=": "ne", ">=": "ge", "<=": "le"}
_SIMPLE = frozenset("-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$._0123456789")

# the attribute of a declared ir.Function that holds its TextFunction (irprint)
TEXT_ATTRIBUTE = "_sg_text_function"


def quoted(prefix: str, name: str) -> str:
    """A value's reference as llvmlite writes it: quoted, escaped where needed."""
    if "\\" in name or '"' in name:
        name = name.replace("\\", "\\5c").replace('"', "\\22")
    return f'{prefix}"{name}"'


def _label(name: str) -> str:
    """Block._format_name: quoted unless a simple identifier."""
    if name and name[0] not in "0123456789" and all(c in _SIMPLE for c in name):
        return name
    return '"' + name.replace("\\", "\\5c").replace('"', "\\22") + '"'


class Value:
    """An SSA value of a text function: its llvmlite type and its reference."""
    __slots__ = ("type", "ref")

    def __init__(self, type_, ref: str):
        self.type = type_
        self.ref = ref

    def get_reference(self) -> str:
        return self.ref


class Phi(Value):
    """A phi: its line is written when the function is, after every incoming is known."""
    __slots__ = ("flags", "incomings")

    def __init__(self, type_, ref, flags):
        super().__init__(type_, ref)
        self.flags = flags
        self.incomings: list = []

    def add_incoming(self, value, block) -> None:
        self.incomings.append((value, block))

    def line(self) -> str:
        incs = ", ".join([f"[{_ref(v)}, {b.ref}]" for v, b in self.incomings])
        return f"{self.ref} = phi {' '.join(self.flags)} {self.type} {incs} ".rstrip()


class Alloca(Value):
    """An alloca: its line is written with the function, so an ``align`` set after it
    is made (as on llvmlite's AllocaInstr) is in it."""
    __slots__ = ("allocated", "count", "align")

    def __init__(self, type_, ref, allocated, count):
        super().__init__(type_, ref)
        self.allocated, self.count, self.align = allocated, count, None

    def line(self) -> str:
        count = f", {_operand(self.count)}" if self.count is not None else ""
        align = f", align {self.align}" if self.align is not None else ""
        return f"{self.ref} = alloca {self.allocated}{count}{align}"


class Block:
    __slots__ = ("function", "name", "ref", "lines", "term")
    type = ty.LabelType()

    def __init__(self, function, name: str):
        self.function = function
        self.name = name
        self.ref = quoted("%", name)
        self.lines: list = []        # text, or a Phi or Alloca
        self.term = None             # the terminator's text

    @property
    def is_terminated(self) -> bool:
        return self.term is not None

    def text(self) -> str:
        body = "".join([f"  {x if type(x) is str else x.line()}\n" for x in self.lines])
        term = f"  {self.term}\n" if self.term is not None else ""
        return f"{_label(self.name)}:\n{body}{term}"


class _Terminator:
    """What ``branch``/``cbranch`` return: metadata can still be attached."""
    __slots__ = ("block",)

    def __init__(self, block):
        self.block = block

    def set_metadata(self, name: str, node) -> None:
        self.block.term += f", !{name} {node.get_reference()}"


class TextFunction:
    """The definition, as text, of a function declared in an llvmlite module."""

    def __init__(self, decl: ir.Function):
        self.decl = decl
        self.module = decl.module
        self.name = decl.name
        self.scope = decl.scope
        self.args = [Value(a.type, quoted("%", a.name)) for a in decl.args]
        self.blocks: list = []
        self.callees: dict = {}          # name -> ir.Function called (light_stream.py)
        self._body = None
        setattr(decl, TEXT_ATTRIBUTE, self)
        # the scope's own tables, for ``fresh`` (None: an llvmlite without them)
        self._used = getattr(self.scope, "_useset", None)
        self._counts = getattr(self.scope, "_basenamemap", None)

    def fresh(self) -> str:
        """The reference of a new unnamed value: ``scope.register("", deduplicate=True)``
        (llvmlite's ``.N`` names, in its order), without its generic loop."""
        used, counts = self._used, self._counts
        if used is None or counts is None:
            return quoted("%", self.scope.register("", deduplicate=True))
        n = counts[""] + 1
        name = f".{n}"
        while name in used:
            n += 1
            name = f".{n}"
        counts[""] = n
        used.add(name)
        return f'%"{name}"'

    @property
    def entry_basic_block(self):
        return self.blocks[0]

    def append_basic_block(self, name: str = "") -> Block:
        blk = Block(self, self.scope.register(name, deduplicate=True))
        self.blocks.append(blk)
        return blk

    def body(self) -> str:
        """The ``{ ... }`` part of the definition (made once: a function is asked for
        it only when complete, and a kernel of a big module twice, light_stream.py)."""
        if self._body is None:
            self._body = "{\n" + "".join([b.text() for b in self.blocks]) + "}\n"
        return self._body


_POINTERS: dict = {}
_MASKS: dict = {}


def _mask_type(lanes: int):
    """<lanes x i1>, one object per width (its text is then made once)."""
    t = _MASKS.get(lanes)
    if t is None:
        t = _MASKS[lanes] = ir.VectorType(_I1, lanes)
    return t


def _pointer_to(t):
    """``t.as_pointer()``, one object per type (equal types are one key): a new type
    object would format its text again each time it is printed."""
    p = _POINTERS.get(t)
    if p is None:
        p = _POINTERS[t] = t.as_pointer()
    return p


def _ref(v) -> str:
    return v.ref if type(v) in (Value, Phi, Alloca, Block) else v.get_reference()


def _operand(v) -> str:
    if type(v) is Value or type(v) is Phi or type(v) is Alloca:
        return f"{v.type} {v.ref}"
    return f"{v.type} {v.get_reference()}"


def _label_suffix(label: str, suffix: str) -> str:
    """The name llvmlite's if_then/if_else give a block after ``label``."""
    return label[:25] + ".." + suffix if len(label) > 50 else label + suffix


def _binop(opname: str):
    def method(self, lhs, rhs, name="", flags=()):
        op = " ".join([opname, *flags]) if flags else opname
        return self._value(lhs.type, f"{op} {lhs.type} {_ref(lhs)}, {_ref(rhs)}", name)
    method.__name__ = opname
    return method


def _with_overflow(opname: str):
    """llvmlite's ``<op>_with_overflow``: a call of the intrinsic, a {value, i1} result."""
    def method(self, lhs, rhs, name=""):
        ty = lhs.type
        fnty = ir.FunctionType(ir.LiteralStructType([ty, _I1]), [ty, ty])
        fn = self.module.declare_intrinsic(f"llvm.{opname}.with.overflow", [ty], fnty)
        return self.call(fn, [lhs, rhs], name=name)
    method.__name__ = f"{opname}_with_overflow"
    return method


def _cast(opname: str):
    def method(self, value, typ, name=""):
        if value.type is typ or value.type == typ:
            return value               # as llvmlite's builder: no cast to the same type
        return self._value(typ, f"{opname} {_operand(value)} to {typ} ", name)
    method.__name__ = opname
    return method


class TextBuilder:
    """The IRBuilder calls of the vector-form kernels, written as text."""

    def __init__(self, block: Block):
        self._block = block

    # -- position ---------------------------------------------------------------------
    @property
    def block(self) -> Block:
        return self._block

    @property
    def function(self) -> TextFunction:
        return self._block.function

    @property
    def module(self):
        return self._block.function.module

    def append_basic_block(self, name: str = "") -> Block:
        return self._block.function.append_basic_block(name)

    def position_at_end(self, block: Block) -> None:
        self._block = block

    @contextmanager
    def goto_block(self, block: Block):
        """Lines go before a terminated block's terminator, as llvmlite's goto_block."""
        old = self._block
        self._block = block
        try:
            yield
        finally:
            self._block = old

    def goto_entry_block(self):
        return self.goto_block(self._block.function.entry_basic_block)

    def position_before(self, terminator: _Terminator) -> None:
        """Lines go before ``terminator`` (what branch/cbranch returned): the only
        instruction llvmlite's position_before is given here (codegen's prologue)."""
        self._block = terminator.block

    # -- lines ------------------------------------------------------------------------
    def _register(self, name: str) -> str:
        if not name:
            return self._block.function.fresh()
        return quoted("%", self._block.function.scope.register(name, deduplicate=True))

    def _value(self, typ, text: str, name: str = "") -> Value:
        block = self._block
        ref = block.function.fresh() if not name else self._register(name)
        block.lines.append(f"{ref} = {text}".rstrip())
        return Value(typ, ref)

    def _void(self, text: str) -> None:
        self._register("")                  # llvmlite names void instructions too
        self._block.lines.append(text.rstrip())

    def _terminate(self, text: str) -> _Terminator:
        self._register("")
        self._block.term = text
        return _Terminator(self._block)

    # -- arithmetic -------------------------------------------------------------------
    add, sub, mul = _binop("add"), _binop("sub"), _binop("mul")
    sdiv, srem, udiv, urem = _binop("sdiv"), _binop("srem"), _binop("udiv"), _binop("urem")
    and_, or_, xor = _binop("and"), _binop("or"), _binop("xor")
    shl, lshr, ashr = _binop("shl"), _binop("lshr"), _binop("ashr")
    fadd, fsub, fmul = _binop("fadd"), _binop("fsub"), _binop("fmul")
    fdiv, frem = _binop("fdiv"), _binop("frem")

    sadd_with_overflow, smul_with_overflow = _with_overflow("sadd"), _with_overflow("smul")
    ssub_with_overflow = _with_overflow("ssub")

    def neg(self, value, name=""):
        return self.sub(ir.Constant(value.type, 0), value, name=name)

    def not_(self, value, name=""):
        if isinstance(value.type, ir.VectorType):
            return self.xor(value, ir.Constant(value.type, (-1,) * value.type.count), name)
        return self.xor(value, ir.Constant(value.type, -1), name)

    def fneg(self, arg, name="", flags=()):
        op = " ".join(["fneg", *flags]) if flags else "fneg"
        return self._value(arg.type, f"{op} {arg.type} {_ref(arg)}", name)

    # -- comparisons and selection ----------------------------------------------------
    def _compare(self, opname, op, lhs, rhs, name, flags=()):
        t = lhs.type
        typ = _mask_type(t.count) if isinstance(t, ir.VectorType) else _I1
        fl = "".join([" " + f for f in flags])
        return self._value(typ, f"{opname}{fl} {op} {_operand(lhs)}, {_ref(rhs)} ", name)

    def icmp_signed(self, cmpop, lhs, rhs, name=""):
        op = _CMP[cmpop]
        return self._compare("icmp", op if cmpop in ("==", "!=") else "s" + op, lhs, rhs, name)

    def icmp_unsigned(self, cmpop, lhs, rhs, name=""):
        op = _CMP[cmpop]
        return self._compare("icmp", op if cmpop in ("==", "!=") else "u" + op, lhs, rhs, name)

    def fcmp_ordered(self, cmpop, lhs, rhs, name="", flags=()):
        op = "o" + _CMP[cmpop] if cmpop in _CMP else cmpop
        return self._compare("fcmp", op, lhs, rhs, name, flags)

    def fcmp_unordered(self, cmpop, lhs, rhs, name="", flags=()):
        op = "u" + _CMP[cmpop] if cmpop in _CMP else cmpop
        return self._compare("fcmp", op, lhs, rhs, name, flags)

    def select(self, cond, lhs, rhs, name="", flags=()):
        return self._value(lhs.type, f"select {' '.join(flags)} {_operand(cond)}, "
                                     f"{_operand(lhs)}, {_operand(rhs)} ", name)

    # -- casts ------------------------------------------------------------------------
    trunc, zext, sext = _cast("trunc"), _cast("zext"), _cast("sext")
    fptrunc, fpext = _cast("fptrunc"), _cast("fpext")
    fptosi, fptoui = _cast("fptosi"), _cast("fptoui")
    sitofp, uitofp = _cast("sitofp"), _cast("uitofp")
    bitcast = _cast("bitcast")
    ptrtoint, inttoptr = _cast("ptrtoint"), _cast("inttoptr")

    # -- memory -----------------------------------------------------------------------
    def alloca(self, typ, size=None, name=""):
        if size is not None and not hasattr(size, "type"):
            raise NotImplementedError("TextBuilder.alloca: a count that is not a value")
        block = self._block
        ref = block.function.fresh() if not name else self._register(name)
        inst = Alloca(_pointer_to(typ), ref, typ, size)
        block.lines.append(inst)
        return inst

    def load(self, ptr, name="", align=None, typ=None):
        typ = typ if typ is not None else ptr.type.pointee
        al = f", align {align:d}" if align is not None else ""
        return self._value(typ, f"load {typ}, {_operand(ptr)}{al}", name)

    def store(self, value, ptr, align=None):
        al = f", align {align:d}" if align is not None else ""
        self._void(f"store {_operand(value)}, {_operand(ptr)}{al}")

    def store_atomic(self, value, ptr, ordering, align):
        self._void(f"store atomic {_operand(value)}, {_operand(ptr)} {ordering}, "
                   f"align {align}")

    def cmpxchg(self, ptr, cmp, val, ordering, failordering=None, name=""):
        failordering = ordering if failordering is None else failordering
        typ = ir.LiteralStructType([val.type, _I1])
        return self._value(typ, f"cmpxchg {_operand(ptr)}, {cmp.type} {_ref(cmp)}, "
                                f"{cmp.type} {_ref(val)} {ordering} {failordering} ", name)

    def gep(self, ptr, indices, inbounds=False, name="", source_etype=None):
        if source_etype is not None:
            raise NotImplementedError("TextBuilder.gep: an explicit source type")
        pointee = ptr.type.pointee
        if len(indices) == 1 and not isinstance(pointee, ir.PointerType):
            typ = ptr.type               # one index: a pointer of the same type
        else:
            typ, last = ptr.type, None
            for i in indices:
                last, typ = typ, typ.gep(i)
            typ = last if (not isinstance(typ, ir.PointerType)
                           and isinstance(last, ir.PointerType)) else _pointer_to(typ)
        op = "getelementptr inbounds" if inbounds else "getelementptr"
        idx = ", ".join([_operand(i) for i in indices])
        return self._value(typ, f"{op} {pointee}, {_operand(ptr)}, {idx} ", name)

    # -- vectors and aggregates ---------------------------------------------------------
    def extract_element(self, vector, idx, name=""):
        return self._value(vector.type.element, f"extractelement {_operand(vector)}, "
                                                f"{_operand(idx)}", name)

    def insert_element(self, vector, value, idx, name=""):
        return self._value(vector.type, f"insertelement {_operand(vector)}, "
                                        f"{_operand(value)}, {_operand(idx)}", name)

    def shuffle_vector(self, vector1, vector2, mask, name=""):
        typ = ir.VectorType(vector1.type.element, mask.type.count)
        return self._value(typ, f"shufflevector {_operand(vector1)}, {_operand(vector2)}, "
                                f"{_operand(mask)} ", name)

    def extract_value(self, agg, idx, name=""):
        idx = list(idx) if isinstance(idx, (tuple, list)) else [idx]
        typ = agg.type
        for i in idx:
            typ = typ.elements[i]
        return self._value(typ, f"extractvalue {_operand(agg)}, "
                                f"{', '.join([str(i) for i in idx])} ", name)

    def insert_value(self, agg, value, idx, name=""):
        idx = list(idx) if isinstance(idx, (tuple, list)) else [idx]
        return self._value(agg.type, f"insertvalue {_operand(agg)}, {_operand(value)}, "
                                     f"{', '.join([str(i) for i in idx])} ", name)

    # -- calls and control flow ---------------------------------------------------------
    def call(self, fn, args, name=""):
        if type(fn) is ir.Function:
            self._block.function.callees[fn.name] = fn
            fnty = fn.ftype
        elif type(fn) is Value:             # a register holding a function's address
            fnty = fn.type.pointee
        else:
            self._block.function.callees[fn.name] = fn
            fnty = fn.function_type
        ret = fnty.return_type
        callee = f"{fnty if fnty.var_arg else ret} {fn.get_reference()}"
        cconv = f"{fn.calling_convention} " if getattr(fn, "calling_convention", "") else ""
        text = f"call {cconv}{callee}({', '.join([_operand(a) for a in args])})"
        if isinstance(ret, ty.VoidType):
            self._void(text)
            return None
        return self._value(ret, text, name)

    def phi(self, typ, name="", flags=()):
        phi = Phi(typ, self._register(name), list(flags))
        self._block.lines.append(phi)
        return phi

    @contextmanager
    def _branch_helper(self, enter: Block, leave: Block):
        self.position_at_end(enter)
        yield leave
        if not self._block.is_terminated:
            self.branch(leave)

    def _branches(self, pred, likely, suffixes, what: str) -> list:
        """The blocks llvmlite's if_then/if_else append after the current one (named
        after it), the first two the targets of a branch on ``pred``."""
        if likely is not None:
            raise NotImplementedError(f"TextBuilder.{what}: branch weights")
        name = self._block.name
        blocks = [self.append_basic_block(_label_suffix(name, s)) for s in suffixes]
        self.cbranch(pred, blocks[0], blocks[1])
        return blocks

    @contextmanager
    def if_then(self, pred, likely=None):
        """llvmlite's IRBuilder.if_then, the same blocks and names."""
        then, end = self._branches(pred, likely, (".if", ".endif"), "if_then")
        with self._branch_helper(then, end):
            yield end
        self.position_at_end(end)

    @contextmanager
    def if_else(self, pred, likely=None):
        """llvmlite's IRBuilder.if_else: yields the (then, otherwise) contexts."""
        then, otherwise, end = self._branches(pred, likely, (".if", ".else", ".endif"),
                                              "if_else")
        yield self._branch_helper(then, end), self._branch_helper(otherwise, end)
        self.position_at_end(end)

    def branch(self, target: Block) -> _Terminator:
        return self._terminate(f"br label {target.ref}")

    def cbranch(self, cond, truebr: Block, falsebr: Block) -> _Terminator:
        return self._terminate(f"br {_operand(cond)}, label {truebr.ref}, label {falsebr.ref}")

    def ret(self, value) -> _Terminator:
        return self._terminate(f"ret {_operand(value)}")

    def ret_void(self) -> _Terminator:
        return self._terminate("ret void")


def define(decl: ir.Function, outliner=None):
    """(builder at the new entry block, argument values) of ``decl``'s body written as
    text (``decl`` is an llvmlite declaration with its final names and attributes);
    ``outliner`` (fast_isel.Outliner): a builder that calls helpers for what the fast
    instruction selector misses."""
    fn = TextFunction(decl)
    entry = fn.append_basic_block("entry")
    return (outliner.builder(entry) if outliner is not None else TextBuilder(entry)), fn.args


def text_function(decl):
    """The TextFunction of a declared function, or None."""
    return decl.__dict__.get(TEXT_ATTRIBUTE)
