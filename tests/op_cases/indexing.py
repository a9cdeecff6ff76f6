"""Op cases of the indexing family: basic slicing, gathers, one_hot, pad, concatenate, stack."""
import numpy as np

import symgraph as sg
from symgraph.op import apply
from symgraph.ops.indexing import SliceGrad, TakeGrad
from ..opinfo import OpCase, register, integers

# key name -> (key, shapes); every shape is valid for the key, incl. size-0 and size-1 dims
SLICE_KEYS = {
    "1:-1:2": (np.s_[1:-1:2], [((7, 3),), ((0, 3),), ((1,),), ((2, 2),)]),
    "::-1": (np.s_[::-1], [((4, 3),), ((0,),), ((1, 2),)]),
    "::-2,1": (np.s_[::-2, 1], [((5, 3),), ((0, 2),), ((1, 2),)]),
    "-1": (np.s_[-1], [((4, 3),), ((1, 0),), ((2,),)]),
    "...,None,1:-1:2": (np.s_[..., None, 1:-1:2], [((2, 7),), ((3, 0),), ((5,),), ((2, 1, 4),)]),
    "None,:,-3::-2": (np.s_[None, :, -3::-2], [((4, 6),), ((0, 1),), ((3, 2),)]),
    "1,...,::3": (np.s_[1, ..., ::3], [((2, 3, 7),), ((3, 0),), ((2, 1),)]),
    "5:1:-1,None": (np.s_[5:1:-1, None], [((8, 2),), ((3, 2),), ((0, 1),)]),
    "-100:100": (np.s_[-100:100], [((3, 2),), ((0,),)]),
    "2:2": (np.s_[2:2], [((5, 2),), ((1,),)]),
    "...": (np.s_[...], [((2, 3),), ((),)]),
    "None": (np.s_[None], [((2, 3),), ((),)]),
}
for _name, (_key, _shapes) in SLICE_KEYS.items():
    register(OpCase(f"getitem[{_name}]", lambda x, k=_key: x[k], lambda x, k=_key: x[k], _shapes))


def _slice_grad_ref(key, shape):
    def ref(g):
        out = np.zeros(shape, g.dtype)
        out[key] = g
        return out
    return ref


# SliceGrad directly (its vjp is Slice): key (1:-1:2, ::-1) of a (6, 3) tensor is (2, 3)
register(OpCase("slice_grad", lambda g: apply(SliceGrad(key=((1, -1, 2), (None, None, -1)),
                                                        shape=(6, 3)), g),
                _slice_grad_ref(np.s_[1:-1:2, ::-1], (6, 3)), [((2, 3),)]))

register(
    OpCase("take[axis=None]", lambda x, i: sg.take(x, i), lambda x, i: np.take(x, i),
           [((3, 4), (5,)), ((3, 4), (2, 2)), ((3, 4), (0,)), ((12,), ())],
           inputs=(None, integers(-12, 12)), input_dtypes=(None, "int64")),
    OpCase("take[axis=0]", lambda x, i: sg.take(x, i, axis=0),
           lambda x, i: np.take(x, i, axis=0),
           [((4, 3), (6,)), ((4, 0), (2,)), ((4, 3), (2, 3)), ((4,), (0,)), ((4, 1), ())],
           inputs=(None, integers(-4, 4)), input_dtypes=(None, "int32")),
    OpCase("take[axis=-1]", lambda x, i: sg.take(x, i, axis=-1),
           lambda x, i: np.take(x, i, axis=-1),
           [((2, 3), (4,)), ((0, 3), (2,)), ((2, 1, 3), (2, 2))],
           inputs=(None, integers(-3, 3)), input_dtypes=(None, "int64")),
    OpCase("getitem[idx]", lambda x, i: x[i], lambda x, i: x[i],
           [((5, 2), (7,)), ((5,), (3, 2)), ((5, 0), (1,))],
           inputs=(None, integers(-5, 5)), input_dtypes=(None, "int64")),
    OpCase("getitem[:,idx]", lambda x, i: x[:, i], lambda x, i: x[:, i],
           [((2, 5), (3,)), ((0, 5), (4,)), ((1, 5, 2), ())],
           inputs=(None, integers(-5, 5)), input_dtypes=(None, "int64")),
    OpCase("getitem[...,idx]", lambda x, i: x[..., i], lambda x, i: x[..., i],
           [((2, 3, 5), (4,)), ((5,), (2,))],
           inputs=(None, integers(-5, 5)), input_dtypes=(None, "int32")),
)


def _take_grad_ref(axis, shape):
    def ref(g, i):
        out = np.zeros(shape, g.dtype)
        np.add.at(out, (slice(None),) * axis + (i,), g)
        return out
    return ref


# TakeGrad directly, with repeated indices (they must add up): shape (4, 3), axis 1
register(OpCase("take_grad", lambda g, i: apply(TakeGrad(axis=1, shape=(4, 3)), g, i),
                _take_grad_ref(1, (4, 3)), [((4, 6), (6,)), ((4, 2, 2), (2, 2))],
                inputs=(None, integers(-3, 3)), input_dtypes=(None, "int64"),
                grad_inputs=(0,)))

register(
    OpCase("one_hot", lambda y: sg.one_hot(y, 4), lambda y: np.eye(4, dtype=np.float32)[y],
           [((5,),), ((2, 3),), ((0,),), ((),)], inputs=(integers(0, 4),),
           input_dtypes=("int64",), dtypes=("float32",), grad_inputs=()),
    OpCase("one_hot[float64,int32]", lambda y: sg.one_hot(y, 3, dtype="float64"),
           lambda y: np.eye(3)[y], [((6,),), ((1,),)], inputs=(integers(0, 3),),
           input_dtypes=("int32",), dtypes=("float64",), grad_inputs=()),
)

PADS = {
    "1": (1, 0.0), "(2,)": ((2,), 0.0), "(1,2)": ((1, 2), -1.5),
    "((0,1),(2,0))": (((0, 1), (2, 0)), 3.0), "((1,1),)": (((1, 1),), 0.0),
}
for _name, (_pw, _value) in PADS.items():
    register(OpCase(f"pad[{_name}]",
                    lambda x, p=_pw, v=_value: sg.pad(x, p, constant_values=v),
                    lambda x, p=_pw, v=_value: np.pad(x, p, constant_values=v),
                    [((2, 3),), ((0, 2),), ((1, 1),)]))
register(OpCase("pad[3d]", lambda x: sg.pad(x, ((0, 0), (1, 0), (2, 3))),
                lambda x: np.pad(x, ((0, 0), (1, 0), (2, 3))), [((2, 1, 2),), ((1, 0, 3),)]))

register(
    OpCase("concatenate[axis=0]", lambda a, b: sg.concatenate([a, b]),
           lambda a, b: np.concatenate([a, b]),
           [((2, 3), (4, 3)), ((0, 3), (1, 3)), ((1,), (0,)), ((2, 0), (1, 0))]),
    OpCase("concatenate[axis=-1,3 inputs]", lambda a, b, c: sg.concatenate([a, b, c], axis=-1),
           lambda a, b, c: np.concatenate([a, b, c], axis=-1),
           [((2, 1), (2, 3), (2, 0)), ((1, 2, 2), (1, 2, 1), (1, 2, 3))]),
    OpCase("concatenate[same input twice]", lambda a: sg.concatenate([a, a * 2.0], axis=1),
           lambda a: np.concatenate([a, a * 2], axis=1), [((2, 3),), ((0, 1),)]),
    OpCase("concatenate[float32+float64]", lambda a, b: sg.concatenate([a, b]),
           lambda a, b: np.concatenate([a, b]), [((2, 2), (1, 2))],
           input_dtypes=("float32", "float64"), dtypes=("float64",)),
    OpCase("concatenate[int]", lambda a, b: sg.concatenate([a, b], axis=1),
           lambda a, b: np.concatenate([a, b], axis=1), [((2, 2), (2, 3))],
           inputs=(integers(-9, 9), integers(-9, 9)), input_dtypes=("int32", "int64"),
           dtypes=("float64",)),
    OpCase("stack[axis=0]", lambda a, b: sg.stack([a, b]), lambda a, b: np.stack([a, b]),
           [((2, 3), (2, 3)), ((0,), (0,)), ((), ())]),
    OpCase("stack[axis=-1,3 inputs]", lambda a, b, c: sg.stack([a, b, c], axis=-1),
           lambda a, b, c: np.stack([a, b, c], axis=-1),
           [((2, 1), (2, 1), (2, 1)), ((3,), (3,), (3,))]),
)
