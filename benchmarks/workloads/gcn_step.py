"""One Adam step of a 2-layer GCN (Kipf & Welling) on Zachary's karate club graph.

Normalized adjacency D^-1/2 (A + I) D^-1/2 as a constant, identity features,
34 -> 16 -> 2 (the two clubs), masked softmax cross-entropy on four labeled members.
symgraph has no optimizer library yet, so Adam is written as explicit updates of
shared m, v and t, as it is for PyTensor; PyTorch uses torch.optim.Adam.
"""
from __future__ import annotations

import numpy as np

from common import Bench
import peers

NAME = "gcn_step"
TITLE = "Adam step, 2-layer GCN (34-16-2) on the karate club graph"
LR, BETA1, BETA2, EPS = 0.01, 0.9, 0.999, 1e-8
LABELED = (0, 1, 32, 33)  # two members of each club
CHECK_CALLS = 2


def cases(quick: bool):
    return [{"hidden": 16}]


def label(case) -> str:
    return "34 nodes, 78 edges"


def make_data(case, seed: int = 0) -> dict:
    import networkx as nx
    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    a = nx.to_numpy_array(g, nodelist=range(n), weight=None) + np.eye(n)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    adj = (a * d[:, None] * d[None, :]).astype(np.float32)
    clubs = np.array([0 if g.nodes[k]["club"] == "Mr. Hi" else 1 for k in range(n)])
    targets = np.zeros((n, 2), np.float32)           # one-hot rows of the labeled nodes only
    targets[list(LABELED), clubs[list(LABELED)]] = 1.0
    rng = np.random.default_rng(seed)

    def glorot(fan_in, fan_out):
        r = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-r, r, (fan_in, fan_out)).astype(np.float32)

    return {"adj": adj, "features": np.eye(n, dtype=np.float32), "targets": targets,
            "params": [glorot(n, case["hidden"]), glorot(case["hidden"], 2)]}


def build_symgraph(data) -> Bench:
    sg = peers.load_symgraph()
    with sg.Graph():
        adj, feats = sg.constant(data["adj"]), sg.constant(data["features"])
        targets = sg.constant(data["targets"])
        ps = [sg.shared(p, name=f"w{k + 1}") for k, p in enumerate(data["params"])]
        w1, w2 = ps
        h = sg.relu(adj @ (feats @ w1))
        logp = sg.nn.log_softmax(adj @ (h @ w2), axis=1)
        loss = -sg.sum(targets * logp) / len(LABELED)
        grads = sg.grad(loss, ps)
        t = sg.shared(np.float32(0), name="t")
        t1 = t + 1
        updates = [(t, t1)]
        for p, g in zip(ps, grads):
            m = sg.shared(np.zeros_like(p.get_value()), name=f"m_{p.name}")
            v = sg.shared(np.zeros_like(p.get_value()), name=f"v_{p.name}")
            m1 = BETA1 * m + (1 - BETA1) * g
            v1 = BETA2 * v + (1 - BETA2) * g * g
            mhat = m1 / (1 - BETA1 ** t1)
            vhat = v1 / (1 - BETA2 ** t1)
            updates += [(m, m1), (v, v1), (p, p - LR * mhat / (sg.sqrt(vhat) + EPS))]
        f, seconds = peers.compile_symgraph([], loss, updates=updates)
    return Bench(lambda: f(), compile_seconds=seconds, compiled=f)


def build_numpy(data) -> Bench:
    adj, feats, targets = data["adj"], data["features"], data["targets"]
    params = [p.copy() for p in data["params"]]
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    t = [0]
    f32 = np.float32

    def step():
        w1, w2 = params
        h = np.maximum(adj @ (feats @ w1), 0)
        z2 = adj @ (h @ w2)
        shifted = z2 - z2.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(targets * logp) / len(LABELED)
        # d loss / d z2 = (softmax * row weight - targets) / labeled
        dz2 = (np.exp(logp) * targets.sum(axis=1, keepdims=True) - targets) / len(LABELED)
        dhw2 = adj.T @ dz2
        g2 = h.T @ dhw2
        dh = (dhw2 @ w2.T) * (h > 0)
        g1 = feats.T @ (adj.T @ dh)
        t[0] += 1
        for p, g, m, v in zip(params, (g1, g2), ms, vs):
            m *= f32(BETA1)
            m += f32(1 - BETA1) * g
            v *= f32(BETA2)
            v += f32(1 - BETA2) * g * g
            mhat = m / f32(1 - BETA1 ** t[0])
            vhat = v / f32(1 - BETA2 ** t[0])
            p -= f32(LR) * mhat / (np.sqrt(vhat) + f32(EPS))
        return loss

    return Bench(step)


def build_torch(data) -> Bench:
    torch = peers.load_torch()
    adj, feats, targets = (torch.from_numpy(data[k]) for k in ("adj", "features", "targets"))
    ps = [torch.tensor(p, requires_grad=True) for p in data["params"]]
    w1, w2 = ps
    opt = torch.optim.Adam(ps, lr=LR, betas=(BETA1, BETA2), eps=EPS)

    def step():
        opt.zero_grad(set_to_none=True)
        h = torch.relu(adj @ (feats @ w1))
        logp = torch.log_softmax(adj @ (h @ w2), dim=1)
        loss = -torch.sum(targets * logp) / len(LABELED)
        loss.backward()
        opt.step()
        return loss.detach()

    return Bench(step, note="torch.optim.Adam, " + peers.torch_note())


def build_jax(data) -> Bench:
    jax, jnp = peers.load_jax()
    adj, feats, targets = (jnp.asarray(data[k]) for k in ("adj", "features", "targets"))

    def loss_fn(params):
        w1, w2 = params
        h = jax.nn.relu(adj @ (feats @ w1))
        logp = jax.nn.log_softmax(adj @ (h @ w2), axis=1)
        return -jnp.sum(targets * logp) / len(LABELED)

    @jax.jit
    def update(params, ms, vs, t):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        t = t + 1
        ms = [BETA1 * m + (1 - BETA1) * g for m, g in zip(ms, grads)]
        vs = [BETA2 * v + (1 - BETA2) * g * g for v, g in zip(vs, grads)]
        params = [p - LR * (m / (1 - BETA1 ** t)) / (jnp.sqrt(v / (1 - BETA2 ** t)) + EPS)
                  for p, m, v in zip(params, ms, vs)]
        return params, ms, vs, t, loss

    params = [jnp.asarray(p) for p in data["params"]]
    state = [params, [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params],
             jnp.float32(0)]

    def step():
        out = jax.block_until_ready(update(*state))
        state[:] = out[:4]
        return out[4]

    return Bench(step)


def build_pytensor(data) -> Bench:
    pytensor, pt, _ = peers.load_pytensor()
    from pytensor.tensor.special import log_softmax
    adj, feats, targets = (pt.constant(data[k]) for k in ("adj", "features", "targets"))
    ps = [pytensor.shared(p.copy(), name=f"w{k + 1}") for k, p in enumerate(data["params"])]
    w1, w2 = ps
    h = pt.maximum(pt.dot(adj, pt.dot(feats, w1)), 0)
    logp = log_softmax(pt.dot(adj, pt.dot(h, w2)), axis=1)
    loss = -pt.sum(targets * logp) / np.float32(len(LABELED))
    grads = pytensor.grad(loss, ps)
    t = pytensor.shared(np.float32(0), name="t")
    t1 = t + np.float32(1)
    f32 = np.float32
    updates = [(t, t1)]
    for p, g in zip(ps, grads):
        m = pytensor.shared(np.zeros_like(p.get_value()))
        v = pytensor.shared(np.zeros_like(p.get_value()))
        m1 = f32(BETA1) * m + f32(1 - BETA1) * g
        v1 = f32(BETA2) * v + f32(1 - BETA2) * g * g
        mhat = m1 / (f32(1) - f32(BETA1) ** t1)
        vhat = v1 / (f32(1) - f32(BETA2) ** t1)
        updates += [(m, m1), (v, v1), (p, p - f32(LR) * mhat / (pt.sqrt(vhat) + f32(EPS)))]
    f, seconds = peers.compile_pytensor([], loss, updates)
    return Bench(lambda: f(), compile_seconds=seconds, note=peers.pytensor_note())


BUILDERS = {"symgraph": build_symgraph, "numpy": build_numpy, "torch": build_torch,
            "jax": build_jax, "pytensor": build_pytensor}
