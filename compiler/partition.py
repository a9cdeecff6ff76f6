"""Splitting the IR text of a big module into modules that LLVM compiles separately.

LLVM's cost is per loop (several milliseconds each here), and one module is optimized
and compiled on one core. A module lowered in segments (codegen.SEGMENT) is split
along them: every part holds a contiguous run of segments with the functions they
reach, and the first part also holds the entry points, which call the other parts'
segments. Each part is compiled to its own object (compiler/workers.py) and the
objects are linked into one.

Linkage across parts:
- a segment defined in one part and called from another becomes ``hidden`` (visible
  to the linker, not exported from a shared library) and is declared where called;
- an internal function reached from several parts (a kernel used by two segments,
  the GEMM helper, scalar vector math) is copied into each: internal copies never
  clash;
- any other function reached from a later part (the vector variants of vector math,
  which must stay external until the vectorizer has run) is renamed there with the
  part's suffix, so no two objects define the same symbol;
- private or internal constants are copied where used; other variables stay in the
  first part and are declared ``external`` where used (the runtime's thread count
  word); a module whose private variables are used outside the first part is not
  split (``split`` returns None).

A module lowered without segments (a graph of a few dozen steps, like an MLP's
training step) is split along its kernels and parallel dispatchers (functions named
``k.<op>.<n>`` and ``par.<...>.<n>``, which the entry calls) in the same way.

The text is llvmlite's: a function is a ``define`` line, an opening brace on a line of
its own, its body and a ``}`` line; metadata lines start with ``!``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = r'@(?:"([^"]+)"|([-\w.$]+))'
_REF = re.compile(_NAME)
# The vector variant named in a "vector-function-abi-variant" attribute: _ZGV..._f(g)
_VARIANT = re.compile(r'_ZGV\w*?_[-\w.$]+\(([-\w.$]+)\)')
_DEFINE = re.compile(r'define\s+(?:(internal|private|hidden|linkonce_odr|weak_odr)\s+)?.*?'
                     + _NAME + r'\(')


@dataclass
class Function:
    name: str
    lines: list
    internal: bool
    refs: set = field(default_factory=set)  # names of globals and functions it uses


@dataclass
class Module:
    header: list        # source name, triple, data layout
    declares: list      # ``declare`` lines
    globals: dict       # name -> its definition line
    functions: dict     # name -> Function, in the order of the text
    metadata: list      # ``!`` lines and attribute groups


def parse(text: str) -> Module:
    """The top-level pieces of a module's text (llvmlite's layout)."""
    lines = text.split("\n")
    mod = Module([], [], {}, {}, [])
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("define"):
            j = i
            while lines[j] != "}":
                j += 1
            m = _DEFINE.match(line)
            name = m.group(2) or m.group(3)
            body = lines[i:j + 1]
            refs = set()
            for chunk in body:
                for r in _REF.finditer(chunk):
                    refs.add(r.group(1) or r.group(2))
            refs.update(_VARIANT.findall(line))
            refs.discard(name)
            mod.functions[name] = Function(name, body, m.group(1) in ("internal", "private"),
                                           refs)
            i = j + 1
            continue
        if line.startswith("declare"):
            mod.declares.append(line)
        elif line.startswith("@"):
            r = _REF.match(line)
            mod.globals[r.group(1) or r.group(2)] = line
        elif line.startswith("!") or line.startswith("attributes"):
            mod.metadata.append(line)
        elif line.strip():
            mod.header.append(line)
        i += 1
    return mod


def _closure(mod: Module, roots, stop=frozenset()) -> list:
    """The functions defined in ``mod`` that ``roots`` reach (not through ``stop``),
    roots first."""
    seen, order, stack = set(stop), [], list(reversed(list(roots)))
    while stack:
        name = stack.pop()
        if name in seen or name not in mod.functions:
            continue
        seen.add(name)
        order.append(name)
        stack.extend(sorted(mod.functions[name].refs - seen, reverse=True))
    return order


def _weight(mod: Module, names) -> int:
    """A guess of LLVM's time for these functions: its cost is mostly per loop (half as
    much in kernels already in vector form: the light pipeline)."""
    from .vector_kernels import LIGHT_ATTRIBUTE
    total = 0
    for n in names:
        lines = mod.functions[n].lines
        if "optnone" in lines[0]:
            total += len(lines) // 10
        elif LIGHT_ATTRIBUTE in lines[0]:
            total += len(lines) + LOOP_WEIGHT // 2 * sum(1 for x in lines
                                                         if is_loop_header(x))
        else:
            total += len(lines) + LOOP_WEIGHT * sum(1 for x in lines if is_loop_header(x))
    return total


LOOP_WEIGHT = 100
# the fast code generator's cost of a line of a glue module, in _weight's units:
# measured on an MLP step, its glue module (1,770 lines) took 23-25 ms, its kernels
# about 60 us per unit of weight at O3
GLUE_LINE_WEIGHT = 0.25


def glue_weight(glue_text) -> int:
    """_weight's estimate of compiling a glue module (separate_glue) apart."""
    return int(GLUE_LINE_WEIGHT * glue_text.count("\n")) if glue_text else 0


# The units of a module without segments: its kernels and their parallel dispatchers
# (compiler/parallel.py), by the prefixes of their names.
KERNEL = ("k", "par")


def is_loop_header(line: str) -> bool:
    """Whether a line of IR is the label of a loop's condition block (irutil.for_range
    and the loops written like it name it ``<name>.cond``)."""
    return line.endswith(".cond:") and not line.startswith(" ")


def count_loops(text: str) -> int:
    # a plain count: the regex form of is_loop_header took 17 ms on an MLP step
    return text.count(".cond:\n")


def plan(mod: Module, units: list, parts: int, *, first_extra: int = 0) -> list:
    """Contiguous runs of ``units`` (segment or kernel names), one per part, of about
    equal cost (_weight of the functions each run reaches, a function shared by units
    of one run counted once); the first part also carries everything else (and
    ``first_extra``), and its run may be empty."""
    unit_set = set(units)
    roots = [n for n in mod.functions if n not in unit_set and not mod.functions[n].internal]
    base = first_extra + _weight(
        mod, _closure(mod, [r for r in roots if not _is_vector_math(r)], unit_set))
    seen: set = set()
    steps = []     # cost each unit adds to a run holding the units before it
    for u in units:
        new = [n for n in _closure(mod, [u], unit_set - {u}) if n not in seen]
        seen.update(new)
        steps.append(_weight(mod, new))
    total = base + sum(steps)
    runs, current, load = [], [], base
    for u, size in zip(units, steps):
        # a new run starts where this one's end is nearer its share than with ``u``
        # (the first may hold no unit at all: the entry and what it alone reaches can
        # be its share)
        share = total * (len(runs) + 1) / parts
        if (current or not runs) and len(runs) < parts - 1 and \
                abs(load - share) <= abs(load + size - share):
            runs.append(current)
            current = []
        current.append(u)
        load += size
    runs.append(current)
    return runs


def _is_vector_math(name: str) -> bool:
    from .vecmath_lib import PREFIX
    return name.startswith(PREFIX + ".")


def split(text: str, unit_prefix, parts: int, *, first_extra: int = 0):
    """The module texts of ``parts`` parts (fewer when there are few units), or None
    when the module cannot be split (see the module docstring). The units are the
    functions named ``<unit_prefix>.<...>`` (one prefix or a tuple of them);
    ``first_extra``: weight (_weight) of other work the first part's process has."""
    prefixes = (unit_prefix,) if isinstance(unit_prefix, str) else tuple(unit_prefix)
    if parts < 2 or not _names_unit(text, prefixes):
        return None        # no unit named at all: not worth parsing (4 ms on an MLP step)
    mod = parse(text)
    units = [n for n in mod.functions if n.startswith(tuple(p + "." for p in prefixes))]
    if len(units) < 2:
        return None
    runs = plan(mod, units, min(parts, len(units)), first_extra=first_extra)
    if len(runs) < 2:
        return None
    unit_part = {u: k for k, run in enumerate(runs) for u in run}
    texts = []
    for k, run in enumerate(runs):
        roots = run if k else [n for n, f in mod.functions.items()
                               if unit_part.get(n) == 0 or (n not in unit_part and not f.internal)]
        part = part_text(mod, k, roots, set(run), {u for u, p in unit_part.items() if p != k},
                         units)
        if part is None:
            return None
        texts.append(part)
    return texts


def part_text(mod: Module, k: int, roots, here: set, elsewhere: set, order: list):
    """The text of part ``k`` of ``mod``: the functions ``roots`` reach, with the units
    ``here`` (made ``hidden`` in a part other than the first) and without the units
    ``elsewhere``, declared where used (``order``: all units, in the order to declare
    them). None when a private variable would have to be shared (see the module
    docstring)."""
    names = _closure(mod, roots, elsewhere)
    used = set().union(*(mod.functions[n].refs for n in names)) if names else set()
    if k:
        glob = _borrowed_globals(mod, used)   # variables are defined in the first part
        if glob is None:
            return None
    else:   # every variable, even one only other parts use
        glob = [mod.globals[g] for g in sorted(used & set(mod.globals))]
        glob += [mod.globals[g] for g in sorted(set(mod.globals) - used)
                 if _external_global(mod.globals[g]) is not None]
    rename = {} if k == 0 else {
        n: f"{n}.p{k}" for n in names
        if not mod.functions[n].internal and n not in here and n not in elsewhere}
    decls = [_declaration(mod.functions[u]) for u in order if u in elsewhere and u in used]
    renamed = re.compile(r'(?<=[@"(])(' + "|".join(map(re.escape, rename)) + r')(?=[")])') \
        if rename else None
    bodies = []
    for n in names:
        f = mod.functions[n]
        body = as_hidden(f.lines) if k and n in here else f.lines
        if renamed is not None and (n in rename or not f.refs.isdisjoint(rename)):
            # only the functions that name a renamed one are scanned (one pass each)
            body = renamed.sub(lambda m: rename[m.group(1)], "\n".join(body)).split("\n")
        bodies.extend(body)
    return _assemble(mod, glob, decls, bodies)


def separate(text: str, light_attribute: str, *, inline_math: bool = True):
    """(main, light): the module's text without the functions marked with
    ``light_attribute`` (kernels already in vector form, compiler/vector_kernels.py),
    which it declares instead, and a module of those functions with what they reach,
    for the light pipeline (llvm_job.optimize_light). ``light`` is None when nothing is
    marked (or when the marked functions use a variable that cannot be shared).

    The marked kernels become ``hidden`` in ``light``; the vector math they call is
    copied there as ``internal`` (never clashing with the main module's copy), so the
    two modules link into one module or load as two objects; ``inline_math=False`` (a
    big module) makes those copies ``noinline``, as the main module keeps its math out
    of line."""
    if light_attribute not in text:
        return text, None
    mod = parse(text)
    light = [n for n, f in mod.functions.items() if light_attribute in f.lines[0]]
    if not light:
        return text, None
    light_set = set(light)
    reach = _closure(mod, light)
    used = set().union(*(mod.functions[n].refs for n in reach))
    glob = _borrowed_globals(mod, used)
    if glob is None:
        return text, None
    bodies = []
    for n in reach:
        f = mod.functions[n]
        if n in light_set:
            bodies.extend(as_hidden(f.lines))
        elif not f.internal:
            head = internal_copy(f.lines[0], inline=inline_math)
            bodies.extend([head] + f.lines[1:])
        else:
            bodies.extend(f.lines)
    roots = [n for n, f in mod.functions.items()
             if n not in light_set and not f.internal and not _is_vector_math(n)]
    keep = _closure(mod, roots, light_set)
    kept = [line for n in mod.functions if n in keep          # in the text's order
            for line in mod.functions[n].lines]
    return (_assemble(mod, list(mod.globals.values()),
                      [_declaration(mod.functions[n]) for n in light], kept),
            _assemble(mod, glob, [], bodies))


def separate_glue(text: str, prefix, *, names=(), shares=(1,)):
    """(main, glue): a module's text without its ``optnone`` functions named
    ``<prefix>.<...>`` (one prefix or a tuple of them: the segments, straight-line glue
    around kernel calls, and the parallel dispatchers) or one of ``names`` (the entry
    points), which it declares where used, and the texts of modules of those alone
    (one per share, of about those proportions, fewer when there are fewer
    functions), for LLVM's fast code generator; glue is None when there are none (or
    they use a variable that cannot be shared).

    Why: ``optnone`` spares them the IR passes, not the O3 code generator's greedy
    register allocator, which took 0.54 of 0.81 s on the main module of a 10,000-op
    graph; the fast generator compiles them in a fifth of that. Unlike ``separate``,
    nothing is copied: what the glue calls (kernels, dispatchers) stays in main, made
    ``hidden`` there, and the glue declares it."""
    prefixes = (prefix,) if isinstance(prefix, str) else tuple(prefix)
    if "optnone" not in text or not (_names_unit(text, prefixes)
                                     or any(f'@"{n}"' in text for n in names)):
        return text, None
    mod = parse(text)
    starts = tuple(p + "." for p in prefixes)
    glue = [n for n, f in mod.functions.items()
            if (n.startswith(starts) or n in names) and "optnone" in f.lines[0]]
    if not glue:
        return text, None
    glue_set = set(glue)
    used = set().union(*(mod.functions[n].refs for n in glue))
    called = {n for n in used if n in mod.functions and n not in glue_set}
    if _borrowed_globals(mod, used) is None:
        return text, None
    rest, rest_refs = [], set()
    for n, f in mod.functions.items():
        if n not in glue_set:
            rest.extend(as_hidden(f.lines) if n in called else f.lines)
            rest_refs |= f.refs
    return (_assemble(mod, list(mod.globals.values()),
                      [_declaration(mod.functions[n]) for n in glue if n in rest_refs], rest),
            [_glue_text(mod, run, glue_set) for run in _runs(mod, glue, shares)])


def _runs(mod: Module, names: list, shares) -> list:
    """``names`` in at most ``len(shares)`` runs, in order, whose numbers of lines are
    about in the proportions ``shares``."""
    total = sum(len(mod.functions[n].lines) for n in names)
    ends = [total * sum(shares[:k + 1]) / sum(shares) for k in range(len(shares))]
    runs, current, size = [], [], 0
    for n in names:
        if current and len(runs) < len(ends) - 1 and size >= ends[len(runs)]:
            runs.append(current)
            current = []
        current.append(n)
        size += len(mod.functions[n].lines)
    return runs + [current]


def _glue_text(mod: Module, names: list, glue_set: set) -> str:
    """A module of the glue functions ``names``, declaring what they call."""
    used = set().union(*(mod.functions[n].refs for n in names))
    called = sorted(n for n in used if n in mod.functions and n not in glue_set
                    or n in glue_set and n not in names)
    return _assemble(mod, _borrowed_globals(mod, used),
                     [_declaration(mod.functions[n]) for n in called],
                     [line for n in names for line in as_hidden(mod.functions[n].lines)])


def _names_unit(text: str, prefixes) -> bool:
    """Whether ``text`` names a function ``<prefix>.<...>`` (quoted or not)."""
    return any(f'@"{p}.' in text or f"@{p}." in text for p in prefixes)


def _assemble(mod: Module, glob: list, decls: list, bodies: list) -> str:
    """A module's text: ``mod``'s header and declarations, then ``glob`` (global
    lines), ``decls`` (declarations of functions defined elsewhere), ``bodies`` (the
    lines of the functions defined here) and ``mod``'s metadata."""
    return "\n".join([*mod.header, *mod.declares, *glob, *decls, *bodies,
                      *mod.metadata]) + "\n"


_INTERNAL_HEAD = re.compile(r"^define\s+(?:internal|private)\s+")
_EXTERNAL_HEAD = re.compile(r"^define\s+(?:(?:hidden|protected|dso_local)\s+)*")


def as_hidden(lines: list) -> list:
    """A function's lines with an internal or private definition made ``hidden``
    (visible to the other objects of one bundle, not exported)."""
    return [_INTERNAL_HEAD.sub("define hidden ", lines[0], count=1)] + lines[1:]


def internal_copy(head: str, *, inline: bool) -> str:
    """The ``define`` line of an ``internal`` copy of an external function (vector
    math copied where its callers go); ``inline=False`` makes it ``noinline`` (a big
    module keeps its math out of line)."""
    head = _EXTERNAL_HEAD.sub("define internal ", head, count=1)
    return head if inline else re.sub(r"\balwaysinline\b", "noinline", head)


_LOCAL_CONSTANT = re.compile(r'=\s*(private|internal)\s+(unnamed_addr\s+)?constant\b')


def _borrowed_globals(mod: Module, used: set):
    """The lines, for a module other than the one that defines them, of the globals
    ``used`` there: private or internal constants copied, variables declared
    ``external``; None when one of them cannot be seen from another object."""
    out = []
    for g in sorted(used & set(mod.globals)):
        line = mod.globals[g]
        if not _LOCAL_CONSTANT.search(line):
            line = _external_global(line)
            if line is None:
                return None
        out.append(line)
    return out


def _external_global(line: str):
    """The declaration, for another part, of a global variable with external linkage
    (``@"x" = external global i32``), or None for one that other objects cannot see."""
    m = re.match(r'(@(?:"[^"]+"|[-\w.$]+))\s*=\s*((?:\w+\s+)*?)(global|constant)\s+(.*)$', line)
    if m is None or re.search(r'\b(private|internal)\b', m.group(2)):
        return None
    rest = m.group(4)
    if rest[:1] in "[{<":
        close = {"[": "]", "{": "}", "<": ">"}[rest[0]]
        depth = 0
        for end, ch in enumerate(rest):
            depth += (ch == rest[0]) - (ch == close)
            if depth == 0:
                break
        ty = rest[:end + 1]
    else:
        ty = rest.split()[0]
    visibility = " ".join(w for w in m.group(2).split() if w in ("hidden", "protected"))
    return f"{m.group(1)} = external {visibility + ' ' if visibility else ''}{m.group(3)} {ty}"


def _declaration(f: Function) -> str:
    """The declaration of a function defined in another part: ``hidden`` unless it is
    defined with default visibility there (an entry point: were one object to say
    hidden, the linker would hide it from the shared library)."""
    head = f.lines[0]
    start = head.index("(")
    depth, end = 0, start
    for end in range(start, len(head)):
        depth += {"(": 1, ")": -1}.get(head[end], 0)
        if depth == 0:
            break
    params = [re.sub(r'\s+%("[^"]*"|[-\w.$]+)$', "", p.strip())
              for p in _split_params(head[start + 1:end])]
    words = head[len("define"):head.index("@")].split()
    ret = [w for w in words if w not in ("internal", "private", "hidden")]
    hidden = "hidden " if f.internal or "hidden" in words else ""
    return f'declare {hidden}{" ".join(ret)} @"{f.name}"({", ".join(params)})'


def _split_params(text: str) -> list:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out
