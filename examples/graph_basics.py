"""Build a graph, differentiate it, print it, run it.

The classic example: E = sum(exp(A * B)) with A of shape (2, 3) and B of shape (1, 3)
broadcast along the rows, and the gradients dE/dA and dE/dB as graphs of their own.

    python examples/graph_basics.py
"""
import numpy as np

import symgraph as sg


def main():
    # 1. Declare: placeholders have a type (dtype + shape) but no value yet.
    A = sg.placeholder(shape=(2, 3), dtype="float64", name="A")
    B = sg.placeholder(shape=(1, 3), dtype="float64", name="B")
    E = sg.sum(sg.exp(A * B))

    # 2. Differentiate: the gradients are new nodes in the same graph.
    dA, dB = sg.grad(E, [A, B])

    print("== the graph of E ==")
    sg.debugprint(E)
    print("== the graphs of dE/dA and dE/dB ==")
    sg.debugprint([dA, dB])

    # 3. Compile and run: one function returning the value and both gradients.
    f = sg.function([A, B], [E, dA, dB])
    print("== the compiled function ==")
    print(f)
    sg.debugprint(f)

    a = np.array([[1, 1, 1], [2, 2, 2]], dtype=np.float64)
    b = np.array([[1, 2, 3]], dtype=np.float64)
    e, da, db = f(a, b)
    print("== values ==")
    print("A =", a.tolist())
    print("B =", b.tolist())
    print("E =", e)
    print("dE/dA =", np.round(da, 4).tolist())
    print("dE/dB =", np.round(db, 4).tolist())

    # 4. Check against the closed form: dE/dA = B*exp(A*B), dE/dB = sum_rows(A*exp(A*B)).
    want_e = np.exp(a * b).sum()
    want_da = b * np.exp(a * b)
    want_db = (a * np.exp(a * b)).sum(axis=0, keepdims=True)
    ok = (np.allclose(e, want_e) and np.allclose(da, want_da) and np.allclose(db, want_db))
    print("matches the closed form:", ok)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
