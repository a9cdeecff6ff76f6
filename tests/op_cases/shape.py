"""Op cases of the shape family (reshape, transpose, broadcasting)."""
import numpy as np

import symgraph as sg
from ..opinfo import OpCase, register

register(
    OpCase("reshape", lambda x: sg.reshape(x, (4, -1)), lambda x: x.reshape(4, -1),
           [((2, 6),), ((4, 0),), ((2, 2, 1),)]),
    OpCase("transpose", lambda x: sg.transpose(x), np.transpose, [((2, 3),), ((2, 3, 4),), ((0, 2),)]),
    OpCase("transpose_axes", lambda x: sg.transpose(x, (1, 2, 0)),
           lambda x: np.transpose(x, (1, 2, 0)), [((2, 3, 4),), ((1, 0, 2),)]),
    OpCase("broadcast_to", lambda x: sg.broadcast_to(x, (2, 3, 4)),
           lambda x: np.broadcast_to(x, (2, 3, 4)), [((3, 1),), ((4,),), ((),)]),
    OpCase("expand_dims", lambda x: sg.expand_dims(x, 1), lambda x: np.expand_dims(x, 1),
           [((2, 3),), ((0,),)]),
    OpCase("squeeze", lambda x: sg.squeeze(x), np.squeeze, [((2, 1, 3),), ((1, 1),)]),
)
