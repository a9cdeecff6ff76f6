"""Train a small MLP on the bundled handwritten digits with symgraph.

A 64-64-10 tanh network, softmax cross-entropy, minibatch SGD. The whole training step
(forward, backward, parameter updates) is one compiled function; the weights are shared
variables that the step updates in place.

    python examples/train_digits.py              # 30 epochs, ~97% test accuracy
    python examples/train_digits.py --epochs 2   # a quick smoke run

The data set is examples/data/digits.npz (1797 8x8 images, see examples/data/README.md).
"""
import argparse
import pathlib
import time

import numpy as np

import symgraph as sg

DATA = pathlib.Path(__file__).resolve().parent / "data" / "digits.npz"


def load_digits(seed, test_fraction=0.2):
    """Pixels scaled to [0, 1] as float32, split by a seeded shuffle into train and test."""
    with np.load(DATA) as z:
        images, labels = z["images"], z["labels"]
    x = images.reshape(len(images), -1).astype(np.float32) / 16.0
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], labels[train]), (x[test], labels[test])


def init_params(rng, sizes):
    """Glorot-uniform weights and zero biases, as shared variables."""
    params = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        limit = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-limit, limit, size=(n_in, n_out)).astype(np.float32)
        params.append(sg.shared(w, name=f"w{k}"))
        params.append(sg.shared(np.zeros(n_out, np.float32), name=f"b{k}"))
    return params


def mlp(x, params):
    """tanh hidden layers, linear output (logits)."""
    h = x
    for k in range(0, len(params), 2):
        w, b = params[k], params[k + 1]
        h = h @ w + b
        if k + 2 < len(params):
            h = sg.tanh(h)
    return h


def build(params, lr, mode):
    # "batch" names one symbolic dim: x and y have the same (any) number of rows.
    x = sg.placeholder(shape=("batch", 64), dtype="float32", name="x")
    y = sg.placeholder(shape=("batch",), dtype="int64", name="y")
    logits = mlp(x, params)
    loss = sg.nn.cross_entropy(logits, y)
    grads = sg.grad(loss, params)
    updates = [(p, p - lr * g) for p, g in zip(params, grads)]
    kw = {} if mode is None else {"mode": mode}  # None: sg.function's default mode
    step = sg.function([x, y], loss, updates=updates, name="train_step", **kw)
    predict = sg.function([x], sg.argmax(logits, axis=1), name="predict", **kw)
    return step, predict


def accuracy(predict, x, y):
    return float(np.mean(predict(x) == y))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", default=None, help="sg.function mode (default: symgraph's)")
    ap.add_argument("--show-graph", action="store_true", help="debugprint the training step")
    args = ap.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_digits(args.seed)
    print(f"digits: {len(x_train)} train, {len(x_test)} test, {x_train.shape[1]} features, "
          f"{len(np.unique(y_train))} classes")

    rng = np.random.default_rng(args.seed)
    params = init_params(rng, [64, args.hidden, 10])
    t0 = time.perf_counter()
    step, predict = build(params, args.lr, args.mode)
    print(f"compiled {step!r} in {time.perf_counter() - t0:.2f}s "
          f"({step.graph.number_of_nodes()} nodes)")
    if args.show_graph:
        sg.debugprint(step)

    print(f"training: 64-{args.hidden}-10 tanh MLP, SGD lr={args.lr}, "
          f"batch {args.batch_size}, {args.epochs} epochs")
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            losses.append(float(step(x_train[idx], y_train[idx])))
        history.append(float(np.mean(losses)))
        print(f"epoch {epoch:3d}  loss {history[-1]:.4f}  "
              f"train acc {accuracy(predict, x_train, y_train):.4f}")
    elapsed = time.perf_counter() - t0

    print(f"loss history: {' '.join(f'{v:.4f}' for v in history)}")
    print(f"trained in {elapsed:.2f}s")
    print(f"test accuracy: {accuracy(predict, x_test, y_test):.4f}")


if __name__ == "__main__":
    main()
