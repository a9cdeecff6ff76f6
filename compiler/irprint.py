"""A fast printer of llvmlite.ir modules: exactly the text of ``str(module)``.

llvmlite prints through chains of ``str.format`` calls, ``descr`` methods and string
caches that raise and catch an AttributeError the first time each value or type is
printed; this printer writes the same lines with one f-string per instruction and
remembers each value's reference and each type's text for the length of one print.
Its output is byte for byte llvmlite's (tests/test_irprint.py compares them on a
corpus of programs): the LLVM side, its caches and the benchmarks depend on that text.

What it covers, by exact class: the instructions in ``_PRINTERS`` (``COVERED``),
function definitions and declarations, references to arguments, blocks, instructions,
functions, global variables and plain constants, and integer, typed pointer, vector and
array types.
Everything else (other instruction classes, globals, metadata, other values and
types) is printed by llvmlite itself, so what this printer does not know can never
come out wrong; nor can a value or type whose text llvmlite has already cached,
because that cached text is what is printed. And should another version of llvmlite
print a covered class differently, a check on a sample module (once per process)
hands every module to llvmlite's own printing.
"""
from __future__ import annotations

import functools

import llvmlite
from llvmlite import ir
from llvmlite.ir import instructions as ins
from llvmlite.ir import types as ty
from llvmlite.ir import values as val

from .irtext import quoted, text_function

# llvmlite before 0.45 printed typed pointers only and had no switch for it
_TYPED_POINTERS = getattr(llvmlite, "ir_layer_typed_pointers_enabled", True)
_TYPED_POINTER = getattr(ty, "_TypedPointerType", None)

# llvmlite's caches of a value's or type's text and of a value's reference: the
# name-mangled attributes of its _StrCaching and _StringReferenceCaching mixins
_CACHED_STR = "_StrCaching__cached_str"
_CACHED_REF = "_StringReferenceCaching__cached_refstr"

# exact class -> name of the _Printer method printing its ``descr`` (what follows
# "%name = "), for the instruction classes this printer covers
_PRINTERS = {
    ins.Instruction: "binary",
    ins.CastInstr: "cast",
    ins.LoadInstr: "load",
    ins.StoreInstr: "store",
    ins.GEPInstr: "gep",
    ins.CallInstr: "call",
    ins.Branch: "terminator",
    ins.ConditionalBranch: "terminator",
    ins.Ret: "ret",
    ins.PhiInstr: "phi",
    ins.SelectInstr: "select",
    ins.ICMPInstr: "compare",
    ins.FCMPInstr: "compare",
    ins.AllocaInstr: "alloca",
    ins.ExtractValue: "extract_value",
    ins.ExtractElement: "vector_element",
    ins.InsertElement: "vector_element",
    ins.ShuffleVector: "shuffle_vector",
}
COVERED = tuple(sorted(cls.__name__ for cls in _PRINTERS))


def _named_classes(prefix: str, classes) -> dict:
    """class -> reference prefix, for classes whose reference is llvmlite's quoted name."""
    return {c: prefix for c in classes
            if c._get_reference is val.NamedValue._get_reference and c.name_prefix == prefix}


_NAMED = {**_named_classes("%", (val.Argument, val.Block, *_PRINTERS)),
          **_named_classes("@", (ir.Function, ir.GlobalVariable))}


_ATTRIBUTE_TEXTS: dict = {}


def _attribute_text(attrs, typ) -> str:
    """``' '.join(attrs._to_list(typ))``, made once per set of attributes and type (a
    kernel's pointers all carry ``noalias``: 3 us each, 1,500 kernels)."""
    key = (frozenset(attrs), attrs.align, attrs.dereferenceable,
           attrs.dereferenceable_or_null, typ)
    text = _ATTRIBUTE_TEXTS.get(key)
    if text is None:
        text = _ATTRIBUTE_TEXTS[key] = " ".join(attrs._to_list(typ))
    return text


class _Printer:
    """One print of one module: the references and type texts made so far (by id; the
    module keeps every value and type alive while it is printed)."""

    def __init__(self):
        self.refs: dict = {}
        self.typed: dict = {}
        self.types: dict = {}
        self.lines = {cls: getattr(self, name) for cls, name in _PRINTERS.items()}

    # -- the pieces of a line --------------------------------------------------------
    def type(self, t) -> str:
        s = self.types.get(id(t))
        if s is None:
            s = t.__dict__.get(_CACHED_STR)
            if s is None:
                cls = type(t)
                if cls is ty.IntType:
                    s = f"i{t.width:d}"
                elif cls is _TYPED_POINTER and _TYPED_POINTERS and t.addrspace == 0:
                    s = self.type(t.pointee) + "*"
                elif cls is ty.VectorType:
                    s = f"<{t.count:d} x {self.type(t.element)}>"
                elif cls is ty.ArrayType:
                    s = f"[{t.count:d} x {self.type(t.element)}]"
                else:
                    s = str(t)
            self.types[id(t)] = s
        return s

    def ref(self, v) -> str:
        s = self.refs.get(id(v))
        if s is None:
            s = v.__dict__.get(_CACHED_REF)
            if s is None:
                cls = type(v)
                prefix = _NAMED.get(cls)
                if prefix is not None:
                    s = quoted(prefix, v.name)
                elif cls is ir.Constant:
                    s = self._constant(v)
                else:
                    s = v.get_reference()
            self.refs[id(v)] = s
        return s

    @staticmethod
    def _constant(v) -> str:
        """Constant._get_reference, without its cache."""
        c = v.constant
        if c is None:
            return v.type.null
        if c is ir.Undefined:
            return "undef"
        if isinstance(c, bytearray):
            return v.get_reference()
        return v.type.format_constant(c)

    def operand(self, v) -> str:
        """``type ref``."""
        s = self.typed.get(id(v))
        if s is None:
            s = self.typed[id(v)] = f"{self.type(v.type)} {self.ref(v)}"
        return s

    def metadata(self, i) -> str:
        """The ``, !name !ref`` suffix of an instruction's attached metadata."""
        return "".join([f", !{k} {v.get_reference()}" for k, v in i.metadata.items()])

    # -- instruction lines (their ``descr`` text) --------------------------------------
    def binary(self, i) -> str:
        """Arithmetic, logic and unary ops: the plain Instruction class."""
        op = i.opname
        if i.flags:
            op = " ".join([op] + i.flags)
        operands = ", ".join([self.ref(o) for o in i.operands])
        return f"{op} {self.type(i.type)} {operands}{self.metadata(i) if i.metadata else ''}\n"

    def cast(self, i) -> str:
        (v,) = i.operands
        return (f"{i.opname} {self.operand(v)} to {self.type(i.type)} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    def load(self, i) -> str:
        (v,) = i.operands
        align = f", align {i.align:d}" if i.align is not None else ""
        return (f"load {self.type(i.type)}, {self.operand(v)}{align}"
                f"{self.metadata(i) if i.metadata else ''}\n")

    def store(self, i) -> str:
        v, p = i.operands
        align = f", align {i.align:d}" if i.align is not None else ""
        return (f"store {self.operand(v)}, {self.operand(p)}{align}"
                f"{self.metadata(i) if i.metadata else ''}\n")

    def gep(self, i) -> str:
        operand = self.operand
        indices = ", ".join([operand(x) for x in i.indices])
        op = "getelementptr inbounds" if i.inbounds else "getelementptr"
        return (f"{op} {self.type(i.source_etype)}, {operand(i.pointer)}, {indices} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    def call(self, i) -> str:
        callee = i.operands[0]
        fnty = callee.ftype if type(callee) is ir.Function else callee.function_type
        operand, attrs = self.operand, i.arg_attributes
        if attrs:
            args = ", ".join([
                f"{self.type(a.type)} {' '.join(attrs[k]._to_list(a.type))} {self.ref(a)}"
                if k in attrs else operand(a) for k, a in enumerate(i.operands[1:])])
        else:
            args = ", ".join([operand(a) for a in i.operands[1:]])
        callee_ref = f"{self.type(fnty if fnty.var_arg else fnty.return_type)} {self.ref(callee)}"
        if i.cconv:
            callee_ref = f"{i.cconv} {callee_ref}"
        tail = f"{i.tail} " if i.tail else ""
        fn_attrs = " " + " ".join(i.attributes._to_list(fnty.return_type)) if i.attributes else ""
        fm = " " + " ".join(i.fastmath._to_list(fnty.return_type)) if i.fastmath else ""
        return (f"{tail}{i.opname}{fm} {callee_ref}({args}){fn_attrs}"
                f"{self.metadata(i) if i.metadata else ''}\n")

    def terminator(self, i) -> str:
        """``br`` (conditional or not): typed operands, no newline (as llvmlite)."""
        operands = ", ".join([self.operand(o) for o in i.operands])
        return f"{i.opname} {operands}{self.metadata(i) if i.metadata else ''}"

    def ret(self, i) -> str:
        md = self.metadata(i) if i.metadata else ""
        if i.operands:
            return f"{i.opname} {self.operand(i.operands[0])}{md}\n"
        return f"{i.opname}{md}\n"

    def phi(self, i) -> str:
        ref = self.ref
        incs = ", ".join([f"[{ref(v)}, {ref(b)}]" for v, b in i.incomings])
        return (f"phi {' '.join(i.flags)} {self.type(i.type)} {incs} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    def select(self, i) -> str:
        c, x, y = i.operands[:3]
        operand = self.operand
        return (f"select {' '.join(i.flags)} {operand(c)}, {operand(x)}, {operand(y)} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    def compare(self, i) -> str:
        x, y = i.operands[0], i.operands[1]
        flags = "".join([" " + f for f in i.flags])
        return (f"{i.opname}{flags} {i.op} {self.operand(x)}, {self.ref(y)} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    def alloca(self, i) -> str:
        out = f"{i.opname} {self.type(i.allocated_type)}"
        if i.operands:
            (n,) = i.operands
            out += f", {self.operand(n)}"
        if i.align is not None:
            out += f", align {i.align}"
        if i.metadata:
            out += self.metadata(i)
        return out

    def extract_value(self, i) -> str:
        indices = ", ".join([str(k) for k in i.indices])
        return (f"extractvalue {self.operand(i.aggregate)}, {indices} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    def vector_element(self, i) -> str:
        """extractelement and insertelement (llvmlite prints no metadata for them)."""
        return f"{i.opname} {', '.join([self.operand(o) for o in i.operands])}\n"

    def shuffle_vector(self, i) -> str:
        return (f"shufflevector {', '.join([self.operand(o) for o in i.operands])} "
                f"{self.metadata(i) if i.metadata else ''}\n")

    # -- whole functions -----------------------------------------------------------------
    def instruction(self, i) -> str:
        """``str(i)``: llvmlite's NamedValue text (reference, descr, right-stripped)."""
        cached = i.__dict__.get(_CACHED_STR)
        if cached is not None:
            return cached
        line = self.lines.get(type(i))
        if line is None:
            return str(i)
        if isinstance(i.type, ty.VoidType):
            return line(i).rstrip()
        return f"{self.ref(i)} = {line(i)}".rstrip()

    def argument(self, a) -> str:
        """``str(a)`` of an Argument (with its parameter attributes)."""
        attrs = a.attributes
        if attrs or attrs.align or attrs.dereferenceable or attrs.dereferenceable_or_null:
            return f"{self.type(a.type)} {_attribute_text(attrs, a.type)} {self.ref(a)}"
        return self.operand(a)

    def hidden_declaration(self, fn) -> str:
        """``declare hidden`` of a function defined in another object of the bundle."""
        fnty = fn.function_type
        params = ", ".join([self.type(t) for t in fnty.args])
        return f"declare hidden {self.type(fnty.return_type)} {self.ref(fn)}({params})"

    def prototype(self, fn, define: bool = False) -> str:
        """Function.descr_prototype: ``define``/``declare`` line of a function
        (``define``: a function whose body is text, irtext.py)."""
        rv = fn.return_value
        if type(rv) is not val.ReturnValue or any(type(a) is not val.Argument for a in fn.args):
            buf: list = []
            fn.descr_prototype(buf)
            return buf[0].replace("declare", "define", 1) if define else buf[0]
        rattrs = rv.attributes
        ret = (f"{' '.join(rattrs._to_list(rv.type))} {self.type(rv.type)}" if rattrs or
               rattrs.align or rattrs.dereferenceable or rattrs.dereferenceable_or_null
               else self.type(rv.type))
        args = ", ".join([self.argument(a) for a in fn.args])
        attrs = " " + " ".join(fn.attributes._to_list(fn.ftype.return_type)) \
            if fn.attributes else ""
        if fn.args:
            vararg = ", ..." if fn.ftype.var_arg else ""
        else:
            vararg = "..." if fn.ftype.var_arg else ""
        head = " ".join([x for x in ("define" if fn.blocks or define else "declare", fn.linkage,
                                     fn.calling_convention, ret) if x])
        section = f' section "{fn.section}"' if fn.section else ""
        md = fn._stringify_metadata()
        md = f" {md}" if md else ""
        return f"{head} {self.ref(fn)}({args}{vararg}){attrs}{section}{md}\n"

    def function(self, fn) -> str:
        written = text_function(fn)
        if written is not None:
            return self.prototype(fn, define=True) + written.body()
        buf = [self.prototype(fn)]
        if fn.blocks:
            buf.append("{\n")
            line = self.instruction
            for blk in fn.blocks:
                buf.append(f"{blk._format_name()}:\n")
                buf += [f"  {line(i)}\n" for i in blk.instructions]
            buf.append("}\n")
        return "".join(buf)


def module_text(module: ir.Module) -> str:
    """``str(module)``, faster (and llvmlite's own ``str(module)`` when this llvmlite
    prints a sample module differently: see ``agrees_with_llvmlite``)."""
    if not agrees_with_llvmlite():
        return str(module)
    return _text(module)


def _text(module: ir.Module) -> str:
    p = _Printer()
    lines = module_head(module)
    lines += [p.function(v) if type(v) is ir.Function else str(v)
              for v in module.globals.values()]
    lines += module._get_metadata_lines()
    return "\n".join(lines)


def module_head(module: ir.Module) -> list:
    return [f'; ModuleID = "{module.name}"', f'target triple = "{module.triple}"',
            f'target datalayout = "{module.data_layout}"', "",
            *[it.get_declaration() for it in module.get_identified_types().values()]]


def module_texts(module: ir.Module, shipped: dict) -> tuple:
    """(the module's text, the text left to compile) in one print: in the second, each
    function named ``"declare"`` in ``shipped`` (kernels compiled apart, in
    light_stream.py) is declared ``hidden``, and each named ``"omit"`` (their bodies)
    left out. Only for a printer that agrees with llvmlite (text kernels need it)."""
    if not agrees_with_llvmlite():
        raise RuntimeError("module_texts needs the fast printer (irprint.agrees_with_llvmlite)")
    p = _Printer()
    full, rest = module_head(module), module_head(module)
    for v in module.globals.values():
        if type(v) is not ir.Function:
            full.append(str(v))
            rest.append(full[-1])
            continue
        text = p.function(v)
        full.append(text)
        what = shipped.get(v.name)
        if what is None:
            rest.append(text)
        elif what == "declare":
            rest.append(p.hidden_declaration(v))
    metadata = module._get_metadata_lines()
    return "\n".join(full + metadata), "\n".join(rest + metadata)


@functools.lru_cache(maxsize=None)
def agrees_with_llvmlite() -> bool:
    """Whether this printer writes llvmlite's text for a module with every covered
    instruction class (checked once per process, in about a millisecond): a version of
    llvmlite that prints some of them differently gets its own printing instead."""
    module = _sample_module()
    try:
        return _text(module) == str(module)
    except Exception:  # noqa: BLE001  (a version of llvmlite this printer does not know)
        return False


def _sample_module() -> ir.Module:
    m = ir.Module(name="sample")
    i1, i8, i32, f32 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.FloatType()
    p8 = i8.as_pointer()
    callee = ir.Function(m, ir.FunctionType(f32, [f32, p8]), name="callee")
    callee.attributes.add("readnone")
    callee.args[1].add_attribute("noalias")
    fn = ir.Function(m, ir.FunctionType(i32, [p8, ir.IntType(64)]), name="fn")
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.args[0].add_attribute("noalias")
    fn.args[0].name = "p"
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    slot = b.alloca(ir.ArrayType(i32, 2), name="slot")
    fp = b.bitcast(fn.args[0], f32.as_pointer())
    x = b.load(b.gep(fp, [fn.args[1]], inbounds=True), name="x")
    y = b.fadd(x, ir.Constant(f32, 0.5), flags=("reassoc", "nsz"))
    z = b.call(callee, [b.fneg(y), fn.args[0]], name="z")
    b.store(z, b.gep(fp, [ir.Constant(ir.IntType(64), 1)]))
    b.branch(loop)
    b.position_at_end(loop)
    k = b.phi(i32, name="k")
    k.add_incoming(ir.Constant(i32, 0), entry)
    k1 = b.add(k, ir.Constant(i32, 1), flags=("nsw",))
    k.add_incoming(k1, loop)
    b.store(k1, b.gep(slot, [ir.Constant(i32, 0), ir.Constant(i32, 1)], inbounds=True))
    more = b.and_(b.icmp_signed("<", k1, ir.Constant(i32, 4)),
                  b.fcmp_unordered("!=", z, ir.Constant(f32, 0.0)))
    back = b.cbranch(more, loop, done)
    back.set_metadata("llvm.loop", m.add_metadata([ir.MetaDataString(m, "hint")]))
    b.position_at_end(done)
    pair = ir.Constant(ir.LiteralStructType([i32, i1]), None)
    v4 = ir.VectorType(i32, 4)
    one = b.insert_element(ir.Constant(v4, ir.Undefined), k1, ir.Constant(i32, 0))
    lanes = b.shuffle_vector(one, ir.Constant(v4, ir.Undefined), ir.Constant(v4, [0] * 4))
    last = b.extract_element(lanes, ir.Constant(i32, 3))
    b.ret(b.select(b.extract_value(pair, 1), last, b.zext(ir.Constant(i8, 1), i32)))
    void = ir.Function(m, ir.FunctionType(ir.VoidType(), []), name="void")
    ir.IRBuilder(void.append_basic_block("entry")).ret_void()
    return m
