"""A fast printer of llvmlite.ir modules: exactly the text of ``str(module)``.

llvmlite prints each instruction through a chain of ``str.format`` calls, ``descr``
methods and string caches (about 35 us a line); this printer writes the same lines
with one f-string per instruction, a few microseconds each. Its output is meant to be
byte for byte llvmlite's (tests/test_irprint.py compares them on a corpus of
programs): the LLVM side, its caches and the benchmarks depend on that text.

Only the instruction classes in ``_PRINTERS`` (looked up by exact class) are printed
here; any other class, and any instruction whose text llvmlite has already cached, is
printed by llvmlite itself, so an unknown instruction can never come out wrong.
Function prototypes, globals and metadata (a few lines each) are llvmlite's too.
"""
from __future__ import annotations

from llvmlite import ir
from llvmlite.ir import instructions as ins

# llvmlite's caches of a value's text and reference (name-mangled attributes of its
# _StrCaching / _StringReferenceCaching mixins)
_CACHED_STR = "_StrCaching__cached_str"


def _md(i) -> str:
    """The ``, !name !ref`` suffix of an instruction's attached metadata."""
    return "".join([f", !{k} {v.get_reference()}" for k, v in i.metadata.items()])


def _binary(i) -> str:
    """Arithmetic, logic and unary ops (the plain Instruction class)."""
    op = i.opname
    if i.flags:
        op = " ".join([op] + i.flags)
    operands = ", ".join([o.get_reference() for o in i.operands])
    return f"{op} {i.type} {operands}{_md(i) if i.metadata else ''}\n"


def _cast(i) -> str:
    (v,) = i.operands
    return f"{i.opname} {v.type} {v.get_reference()} to {i.type} {_md(i) if i.metadata else ''}\n"


def _load(i) -> str:
    (v,) = i.operands
    align = f", align {i.align:d}" if i.align is not None else ""
    return f"load {i.type}, {v.type} {v.get_reference()}{align}{_md(i) if i.metadata else ''}\n"


def _store(i) -> str:
    v, p = i.operands
    align = f", align {i.align:d}" if i.align is not None else ""
    return (f"store {v.type} {v.get_reference()}, {p.type} {p.get_reference()}{align}"
            f"{_md(i) if i.metadata else ''}\n")


def _gep(i) -> str:
    p = i.pointer
    indices = ", ".join([f"{x.type} {x.get_reference()}" for x in i.indices])
    op = "getelementptr inbounds" if i.inbounds else "getelementptr"
    return (f"{op} {i.source_etype}, {p.type} {p.get_reference()}, {indices} "
            f"{_md(i) if i.metadata else ''}\n")


def _call(i) -> str:
    callee = i.operands[0]
    fnty = callee.ftype if type(callee) is ir.Function else callee.function_type
    attrs = i.arg_attributes
    if attrs:
        args = ", ".join([f"{a.type} {' '.join(attrs[k]._to_list(a.type)) + ' '}"
                          f"{a.get_reference()}" if k in attrs
                          else f"{a.type} {a.get_reference()}"
                          for k, a in enumerate(i.operands[1:])])
    else:
        args = ", ".join([f"{a.type} {a.get_reference()}" for a in i.operands[1:]])
    ty = fnty if fnty.var_arg else fnty.return_type
    callee_ref = f"{ty} {callee.get_reference()}"
    if i.cconv:
        callee_ref = f"{i.cconv} {callee_ref}"
    tail = f"{i.tail} " if i.tail else ""
    fn_attrs = " " + " ".join(i.attributes._to_list(fnty.return_type)) if i.attributes else ""
    fm = " " + " ".join(i.fastmath._to_list(fnty.return_type)) if i.fastmath else ""
    return (f"{tail}{i.opname}{fm} {callee_ref}({args}){fn_attrs}"
            f"{_md(i) if i.metadata else ''}\n")


def _terminator(i) -> str:
    """``br`` (conditional or not): typed operands, no newline (as llvmlite)."""
    operands = ", ".join([f"{o.type} {o.get_reference()}" for o in i.operands])
    return f"{i.opname} {operands}{_md(i) if i.metadata else ''}"


def _ret(i) -> str:
    md = _md(i) if i.metadata else ""
    if i.operands:
        v = i.operands[0]
        return f"{i.opname} {v.type} {v.get_reference()}{md}\n"
    return f"{i.opname}{md}\n"


def _phi(i) -> str:
    incs = ", ".join([f"[{v.get_reference()}, {b.get_reference()}]" for v, b in i.incomings])
    return f"phi {' '.join(i.flags)} {i.type} {incs} {_md(i) if i.metadata else ''}\n"


def _select(i) -> str:
    c, x, y = i.operands[:3]
    return (f"select {' '.join(i.flags)} {c.type} {c.get_reference()}, {x.type} "
            f"{x.get_reference()}, {y.type} {y.get_reference()} "
            f"{_md(i) if i.metadata else ''}\n")


def _compare(i) -> str:
    x, y = i.operands[0], i.operands[1]
    flags = "".join([" " + f for f in i.flags])
    return (f"{i.opname}{flags} {i.op} {x.type} {x.get_reference()}, {y.get_reference()} "
            f"{_md(i) if i.metadata else ''}\n")


def _alloca(i) -> str:
    out = f"{i.opname} {i.allocated_type}"
    if i.operands:
        (n,) = i.operands
        out += f", {n.type} {n.get_reference()}"
    if i.align is not None:
        out += f", align {i.align}"
    if i.metadata:
        out += _md(i)
    return out


def _extract_value(i) -> str:
    a = i.aggregate
    indices = ", ".join([str(k) for k in i.indices])
    return (f"extractvalue {a.type} {a.get_reference()}, {indices} "
            f"{_md(i) if i.metadata else ''}\n")


# exact class -> printer of its ``descr`` text (what follows "%name = ")
_PRINTERS = {
    ins.Instruction: _binary,
    ins.CastInstr: _cast,
    ins.LoadInstr: _load,
    ins.StoreInstr: _store,
    ins.GEPInstr: _gep,
    ins.CallInstr: _call,
    ins.Branch: _terminator,
    ins.ConditionalBranch: _terminator,
    ins.Ret: _ret,
    ins.PhiInstr: _phi,
    ins.SelectInstr: _select,
    ins.ICMPInstr: _compare,
    ins.FCMPInstr: _compare,
    ins.AllocaInstr: _alloca,
    ins.ExtractValue: _extract_value,
}

COVERED = tuple(cls.__name__ for cls in _PRINTERS)


def _instruction_line(i, _void=ir.VoidType) -> str:
    """``str(i)``: llvmlite's NamedValue text (reference, descr, right-stripped)."""
    cached = i.__dict__.get(_CACHED_STR)
    if cached is not None:
        return cached
    printer = _PRINTERS.get(type(i))
    if printer is None:
        return str(i)
    if isinstance(i.type, _void):
        return printer(i).rstrip()
    return f"{i.get_reference()} = {printer(i)}".rstrip()


def _function_text(fn) -> str:
    buf: list = []
    fn.descr_prototype(buf)
    if fn.blocks:
        buf.append("{\n")
        line = _instruction_line
        for blk in fn.blocks:
            buf.append(f"{blk._format_name()}:\n")
            buf += [f"  {line(i)}\n" for i in blk.instructions]
        buf.append("}\n")
    return "".join(buf)


def module_text(module: ir.Module) -> str:
    """``str(module)``, faster."""
    lines = [f'; ModuleID = "{module.name}"',
             f'target triple = "{module.triple}"',
             f'target datalayout = "{module.data_layout}"',
             ""]
    lines += [it.get_declaration() for it in module.get_identified_types().values()]
    for v in module.globals.values():
        lines.append(_function_text(v) if type(v) is ir.Function else str(v))
    lines += module._get_metadata_lines()
    return "\n".join(lines)
