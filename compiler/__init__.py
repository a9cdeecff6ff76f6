"""Compiler: rewrite passes, fusion, scheduling and LLVM code generation.

Installed as ``symgraph.compiler``; it never imports the runtime.
"""
