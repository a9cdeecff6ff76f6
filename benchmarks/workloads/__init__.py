"""One module per workload. A module defines NAME and TITLE and either

- ``cases(quick)``, ``label(case)``, ``make_data(case)``, ``CHECK_CALLS`` and
  ``BUILDERS = {framework: build(data) -> common.Bench}``: the runner builds each
  framework's version from the same data, checks its first outputs against numpy's
  and times ``step()``; or
- ``run(ctx) -> rows``, for measurements that need fresh processes (compile times),
  with ``child(spec)`` doing one of them in the child process (benchmarks/child.py).
"""
