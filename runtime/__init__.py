"""Runtime: argument checking, the reference executor, native calls and artifacts.

Installed as ``symgraph.runtime``; it loads artifacts without needing a graph.
"""
