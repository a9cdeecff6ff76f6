"""Op cases of the reduction family."""
import numpy as np

import symgraph as sg
from ..opinfo import OpCase, register, normal, distinct, positive

SHAPES = [((3, 4),), ((2, 3, 4),), ((1, 5),), ((0, 3),)]


def reductions(name, fn, ref, domain=normal, axes_list=(None, 0, -1, (0, 1)), shapes=SHAPES, **kw):
    for axis in axes_list:
        for keepdims in (False, True):
            tag = f"{name}[axis={axis},keepdims={keepdims}]"
            register(OpCase(tag, lambda x, a=axis, k=keepdims: fn(x, axis=a, keepdims=k),
                            lambda x, a=axis, k=keepdims: ref(x, axis=a, keepdims=k),
                            shapes, inputs=(domain,), **kw))


reductions("sum", sg.sum, np.sum)
reductions("mean", sg.mean, np.mean)
reductions("prod", sg.prod, np.prod, positive)
reductions("max", sg.max, np.max, distinct)
reductions("min", sg.min, np.min, distinct)
reductions("var", sg.var, np.var)
# std's gradient is infinite where the variance is 0 (one element): not tested there
reductions("std", sg.std, np.std, distinct, shapes=[SHAPES[0], SHAPES[1], SHAPES[3]])
reductions("logsumexp", sg.logsumexp,
           lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)))
for _axis in (None, 0, -1):
    for _fn, _ref, _nm in ((sg.argmax, np.argmax, "argmax"), (sg.argmin, np.argmin, "argmin")):
        register(OpCase(f"{_nm}[axis={_axis}]", lambda x, f=_fn, a=_axis: f(x, axis=a),
                        lambda x, f=_ref, a=_axis: f(x, axis=a), SHAPES[:3], inputs=(distinct,),
                        grad_inputs=()))

register(OpCase("prod_with_zeros", lambda x: sg.prod(x, axis=1), lambda x: np.prod(x, axis=1),
                [((4, 3),)], inputs=(lambda r, s, d: np.array(
                    [[0, 2, 3], [0, 0, 1.5], [1.1, 2, -1], [2, 0, 0.5]], d),)))
