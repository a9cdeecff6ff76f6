"""Run-time checks whose messages name run-time values, and kernels that can fail.

``ctx.fail_if`` returns a fixed message from the entry, but a bad index is known only
when the code runs. These checks leave up to ``ERROR_VALUES`` i64 values in the slots
after the dim values of the ``dims`` array and return the code of a message template
(``{"type": "IndexError", "message": "... {0} ..."}``) that the runtime fills in and
raises. A check inside a loop lives in a kernel function, which cannot return from the
entry: a ``CheckedKernel`` returns its status, and its call site passes a non-zero
status on, so kernels that validate data stay ordinary internal functions.
"""
from __future__ import annotations

from llvmlite import ir

from . import irtext
from .irutil import I32, I64, PTR, VOID, i64, if_then

# Must equal runtime.native.ERROR_VALUES (compiler/ and runtime/ do not import each other).
ERROR_VALUES = 4


def escape(text: str) -> str:
    """Literal text inside a message template (source paths may hold braces)."""
    return text.replace("{", "{{").replace("}", "}}")


def where(ctx, nid) -> str:
    """The node and the user's line, ready to start a message template."""
    return escape(ctx.node_where(nid))


def _register(ctx, kind: str, template: str) -> int:
    ctx.errors.append({"type": kind, "message": template})
    return len(ctx.errors)


def _leave(b, slots, values):
    if len(values) > ERROR_VALUES:
        raise ValueError(f"a check can name at most {ERROR_VALUES} run-time values")
    for k, v in enumerate(values):
        b.store(v, b.gep(slots, [i64(k)], inbounds=True))


def error_slots(ctx):
    """An i64* to the error-value slots (right after the dims) in the entry."""
    b = ctx.builder
    return b.gep(ctx.dim.dims_ptr, [i64(len(ctx.dim.symbol_index))], inbounds=True)


def fail_with(ctx, pred, template: str, values=(), kind: str = "IndexError") -> None:
    """In the entry: when ``pred`` holds, raise ``kind(template.format(*values))``."""
    code = _register(ctx, kind, template)
    b = ctx.builder
    with if_then(b, pred, name="check"):
        _leave(b, error_slots(ctx), values)
        b.ret(ir.Constant(I32, code))


def _arg(ctx, v):
    """A register as it is (an llvmlite value, or one of a function written as text),
    a Dim as its value."""
    return v if isinstance(v, (ir.Value, irtext.Value)) else ctx.dim(v)


class Kernel:
    """An internal function ``(ptr noalias..., i64...)`` and a builder at its entry.

    ``scalars`` are dims or i64 values of the entry: static ints become constants inside
    the kernel (so a unit stride is visibly 1 to the vectorizer), the others arguments.
    ``self.values`` are the scalars as seen inside. With ``checked=True`` the kernel
    returns an i32 status and may ``fail_if``; ``call`` then checks the status.
    """

    def __init__(self, ctx, prefix, ptr_names, scalars, *, checked=False):
        self.ctx = ctx
        self.checked = checked
        self.dynamic = [s for s in scalars if type(s) is not int]
        n_ptrs = len(ptr_names) + int(checked)
        fnty = ir.FunctionType(I32 if checked else VOID,
                               [PTR] * n_ptrs + [I64] * len(self.dynamic))
        self.fn = fn = ir.Function(ctx.module, fnty, name=ctx.name(prefix))
        fn.linkage = "internal"
        # out of the entry, as every kernel: inlined, its loops made the entry of an MLP
        # step three times as costly to compile (and the entry cannot be split off)
        fn.attributes.add("noinline")
        for k, name in enumerate(list(ptr_names) + (["errvals"] if checked else [])):
            fn.args[k].add_attribute("noalias")
            fn.args[k].name = name
        self.builder = b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.ptrs = list(fn.args[:len(ptr_names)])
        if checked:
            self._slots = b.bitcast(fn.args[len(ptr_names)], I64.as_pointer())
        dyn = iter(fn.args[n_ptrs:])
        self.values = [i64(s) if type(s) is int else next(dyn) for s in scalars]

    def fail_if(self, pred, template: str, values=(), kind: str = "IndexError") -> None:
        """When ``pred`` holds, leave ``values`` and return the error's code."""
        assert self.checked, "fail_if needs a kernel made with checked=True"
        code = _register(self.ctx, kind, template)
        b = self.builder
        with if_then(b, pred, name="check"):
            _leave(b, self._slots, values)
            b.ret(ir.Constant(I32, code))

    def finish(self) -> None:
        b = self.builder
        if self.checked:
            b.ret(ir.Constant(I32, 0))
        else:
            b.ret_void()

    def call(self, buffers) -> None:
        """Call from the entry's current position; a failed check returns from the entry."""
        ctx = self.ctx
        b = ctx.builder
        args = list(buffers)
        if self.checked:
            args.append(b.bitcast(error_slots(ctx), PTR))
        status = b.call(self.fn, args + [_arg(ctx, s) for s in self.dynamic])
        if self.checked:
            with if_then(b, b.icmp_signed("!=", status, ir.Constant(I32, 0)), name="status"):
                b.ret(status)
