"""Test session setup: compiled code is cached in a fresh directory, never the user's."""
import os
import tempfile

_cache = tempfile.mkdtemp(prefix="symgraph-test-cache-")
os.environ.setdefault("SYMGRAPH_CACHE_DIR", _cache)
