"""A small module's first kernels go to a worker while the rest is lowered
(compiler/early_part.py), and the worker takes the glue after them (two requests:
llvm_job.main). The code computes what the reference executor computes, every symbol
is defined once, and a big module leaves its kernels to the light stream."""
import re
import subprocess

import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler import early_part, llvm_job, target, workers
from .test_compile_parallel import (_assert_native_matches_reference, _mlp,  # noqa: F401
                                     two_workers)
from .test_vector_kernels import big_module


@pytest.fixture
def shipped(monkeypatch):
    """What each EarlyPart shipped: (its part's text, whether the entry points existed
    yet, the rest's text), filled when the compile ends."""
    seen = []
    real_ship, real_send = early_part.EarlyPart.ship, early_part.EarlyPart.send_glue

    def ship(self, module):
        lowering = "sg_pycall" not in module.globals
        real_ship(self, module)
        seen.append({"part": self.text, "during_lowering": lowering})

    def send_glue(self, glue):
        seen[-1].update(rest=self.rest_text, glue=glue)
        real_send(self, glue)

    monkeypatch.setattr(early_part.EarlyPart, "ship", ship)
    monkeypatch.setattr(early_part.EarlyPart, "send_glue", send_glue)
    return seen


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_the_first_kernels_compile_while_the_rest_is_lowered(two_workers, shipped, dtype, n):
    f = _assert_native_matches_reference(dtype, n)
    assert f.artifact.early_kernels >= 2 and f.artifact.parts == 2
    assert shipped and shipped[0]["part"] is not None and shipped[0]["during_lowering"]


def _defined(text):
    return re.findall(r'^define (?!internal|private)[^@]*@"([^"]+)"', text, re.M)


def test_part_rest_and_glue_define_every_symbol_once(two_workers, shipped):
    with sg.Graph():
        x, ws, loss, updates = _mlp("float32")
        sg.function([x], loss, updates=updates)
    record = shipped[0]
    part, rest, glue = record["part"], record["rest"], record["glue"]
    kernels = [n for n in _defined(part) if n.startswith(early_part.KERNEL_PREFIX)]
    # besides the kernels, only renamed copies of vector variants (partition.part_text)
    assert kernels and all(n in kernels or n.endswith(".p1") for n in _defined(part))
    assert 'define hidden' in part and "sg_entry" not in part
    rest_main, _ = target.separate_glue(rest)
    for name in kernels:          # the rest calls them through a declaration
        assert f'declare hidden void @"{name}"' in rest_main or name not in rest_main
    exported = _defined(part) + _defined(rest_main) + _defined(glue)
    assert len(exported) == len(set(exported)), "a symbol defined twice"
    assert "sg_entry" in _defined(glue) and "sg_pycall" in _defined(glue)
    for text in (part, rest_main, glue):
        target.llvm().parse_assembly(text).verify()


def test_a_big_module_streams_its_kernels_instead(two_workers, shipped):
    with big_module(True), sg.Graph():
        x = sg.placeholder(shape=("n", 19), dtype=np.float32, name="x")
        h = sg.tanh(x) * 0.5 + sg.exp(-sg.abs(x))
        f = sg.function([x], [h, sg.sum(h * h, axis=1)])
        xv = np.random.default_rng(2).standard_normal((5, 19)).astype(np.float32)
        got = f(xv)
    assert f.artifact.early_kernels == 0 and not shipped
    ref = np.tanh(xv) * 0.5 + np.exp(-np.abs(xv))
    np.testing.assert_allclose(got[0], ref, rtol=2e-6, atol=2e-6)


def test_a_request_line_round_trips_and_refuses_what_it_cannot_carry():
    request = {"triple": "x86_64-unknown-linux-gnu", "cpu": "skylake-avx512",
               "features": "+avx512f,-sse4a", "opt": 3, "big": False, "text_bytes": 12}
    back = llvm_job.parse_request(llvm_job.request_line(request))
    assert back == dict(request, big=0)
    for bad in ({"cpu": "two words"}, {"cpu": ""}, {"a=b": 1}):
        with pytest.raises(ValueError, match="cannot send"):
            llvm_job.request_line(bad)


KERNEL = """define hidden void @"k.add.0"(i8* %"p")
{
entry:
  ret void
}
"""
GLUE = """declare hidden void @"k.add.0"(i8*)
define i32 @"sg_entry"(i8* %"a", i8* %"d") noinline optnone
{
entry:
  call void @"k.add.0"(i8* %"a")
  ret i32 0
}
"""


def _worker_answer(*requests):
    proc = subprocess.run(workers._command(), input=b"".join(requests), capture_output=True,
                          timeout=120)
    return proc.returncode, llvm_job.unframe(proc.stdout), proc.stderr.decode()


def test_a_worker_compiles_a_part_and_then_the_glue_alone():
    head = workers._request(False)
    code, objects, err = _worker_answer(workers._request_bytes(head, KERNEL, None, None),
                                        workers._request_bytes(head, "", None, GLUE))
    assert code == 0, err
    assert len(objects) == 2 and all(o.startswith(b"\x7fELF") for o in objects)
    assert b"k.add.0" in objects[0] and b"sg_entry" in objects[1]


def test_a_truncated_request_leaves_the_part_to_the_parent():
    head = workers._request(False)
    data = workers._request_bytes(head, KERNEL, None, None)
    code, objects, err = _worker_answer(data[:-5])
    assert code == 3 and objects == [] and "truncated request" in err
