"""sg.debugprint: one line per node with id, name, dtype, shape and op; a shared
subexpression is printed once and referred to by its id afterwards."""
import io
import re

import numpy as np
import pytest

import symgraph as sg


def build():
    with sg.Graph() as g:
        x = sg.placeholder(shape=("N", 3), dtype="float32", name="x")
        w = sg.shared(np.ones(3, np.float32), name="w")
        h = sg.tanh(x * w)
        y = sg.sum(h * h + 1.0)
    return g, x, w, h, y


def test_debugprint_of_a_tensor_shows_op_name_dtype_and_shape():
    g, x, w, h, y = build()
    text = sg.debugprint(y, file=io.StringIO())
    lines = text.splitlines()
    assert lines[0] == f"%{y.id}:float32[] = sum{{axes=(0, 1), keepdims=False}}"
    assert f"%{x.id} x:float32[N, 3] = placeholder" in text
    assert f"%{w.id} w:float32[3] = shared" in text
    assert f"%{h.id}:float32[N, 3] = tanh" in text
    assert "constant{value=1.}" in text
    # children are indented under their consumer, in argument order
    mul = next(k for k, line in enumerate(lines) if line.endswith("= multiply")
               and "%" + str(h.id) not in line)
    assert lines[mul + 1].startswith(" |" * (lines[mul].count(" |") + 1) + "%")


def test_a_shared_subexpression_is_printed_once_with_its_id():
    g, x, w, h, y = build()
    text = sg.debugprint(y, file=io.StringIO())
    assert len(re.findall(rf"%{h.id}:float32\[N, 3\] = tanh", text)) == 1
    assert f"%{h.id}:float32[N, 3] (printed above)" in text
    assert text.count("= tanh") == 1


def test_debugprint_returns_the_text_and_writes_to_stdout_by_default(capsys):
    g, x, w, h, y = build()
    text = sg.debugprint(y)
    assert capsys.readouterr().out == text
    buf = io.StringIO()
    assert sg.debugprint(y, file=buf) == text == buf.getvalue()


def test_the_same_graph_prints_the_same_text():
    first = sg.debugprint(build()[-1], file=io.StringIO())
    second = sg.debugprint(build()[-1], file=io.StringIO())
    assert first == second


def test_debugprint_of_several_tensors_shares_what_they_share():
    g, x, w, h, y = build()
    with g:
        z = sg.exp(h)
    text = sg.debugprint([y, z], file=io.StringIO())
    assert text.count("= tanh") == 1 and f"%{h.id}:float32[N, 3] (printed above)" in text


def test_debugprint_of_a_function_shows_outputs_and_updates():
    g, x, w, h, y = build()
    with g:
        (gw,) = sg.grad(y, [w])
        f = sg.function([x], y, updates=[(w, w - 0.1 * gw)], mode="reference")
    optimized = sg.debugprint(f, file=io.StringIO())
    built = sg.debugprint(f, file=io.StringIO(), optimized=False)
    for text in (optimized, built):
        assert text.startswith("output 0\n")
        assert "\nupdate of w\n" in text
        assert "x:float32[N, 3] = placeholder" in text and "w:float32[3] = shared" in text
    assert "= tanh" in built and "%{}:float32[] = sum".format(y.id) in built
    assert built == f.describe(optimized=False)
    f_plain = sg.function([x], y, rewrites=False, mode="reference")
    assert sg.debugprint(f_plain, file=io.StringIO()) == sg.debugprint(
        f_plain, file=io.StringIO(), optimized=False)


def test_debugprint_refuses_other_objects():
    with pytest.raises(TypeError, match="Tensor"):
        sg.debugprint(np.ones(3), file=io.StringIO())


def test_repr_of_a_tensor_uses_the_same_label():
    g, x, w, h, y = build()
    assert repr(x) == f"<Tensor %{x.id} x:float32[N, 3]>"
    assert repr(y) == f"<Tensor %{y.id}:float32[]>"
