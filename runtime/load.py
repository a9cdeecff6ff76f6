"""Turn an artifact (object code + manifest) into a callable NativeFunction."""
from __future__ import annotations

import numpy as np

from symgraph import dims as D
from .jit import load_library, load_object
from .native import NativeFunction
from .signature import ArgSpec, Requirement, Signature
from . import externals, threads
from .builtin import api_address


def signature_from_manifest(m) -> Signature:
    args = [ArgSpec(a["name"], np.dtype(a["dtype"]), tuple(a["shape"])) for a in m["inputs"]]
    reqs = [Requirement(D.from_data(r["left"]), D.from_data(r["right"]), r["where"])
            for r in m["requirements"]]
    return Signature(args, reqs)


def native_function(object_code: bytes, manifest: dict, shared, constants,
                    library: bytes | None = None) -> NativeFunction:
    """``library``: the same code linked as a shared library (loaded without LLVM when
    the system allows it; else the object is loaded)."""
    external = externals.addresses(manifest["external"])  # also loads what the library needs
    py_entry = manifest.get("python_entry")
    code = load_library(library, manifest["entry"], manifest.get("array_entry")) \
        if library else None
    if code is None:
        if py_entry:  # the CPython C API functions it calls, from this interpreter
            external.update((name, api_address(name)) for name in py_entry["api"])
        code = load_object(object_code, manifest["entry"], external, manifest.get("array_entry"))
    if manifest.get("threads_symbol"):
        threads.attach(code, manifest["threads_symbol"])
    outputs = [(np.dtype(o["dtype"]), tuple(D.from_data(d) for d in o["shape"]))
               for o in manifest["outputs"]]
    return NativeFunction(code, signature_from_manifest(manifest), shared=shared,
                          constants=constants, outputs=outputs, symbols=manifest["symbols"],
                          scratch_bytes=D.from_data(manifest["scratch_bytes"]),
                          errors=manifest["errors"],
                          array_data_offset=manifest.get("array_data_offset"),
                          python_entry=py_entry)
