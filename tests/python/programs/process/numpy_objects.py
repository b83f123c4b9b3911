"""Object arrays: elements of any Python type, identity kept (the same list
inside the array and in a global, the same object twice), a 2-d object
array in Fortran order, None elements; arrays inside lists and dicts."""
import fractions

import numpy as np

from ckpt import checkpoint

shared = [1, 2]
obj = np.empty(5, dtype=object)
obj[:] = [shared, "text", fractions.Fraction(1, 3), None, shared]
obj2 = np.asfortranarray(np.array([[{"k": 1}, (1, 2)], [3.5, obj]], dtype=object))
container = {"arrays": [obj, np.arange(3)], "same": obj}
checkpoint()
obj[0].append(3)
print(obj.tolist()[:4], obj[0] is obj[4] is shared, obj.dtype)
print(obj2[1, 1] is obj, obj2[0, 0], obj2.flags.f_contiguous, container["same"] is obj)
print(container["arrays"][1] + 1)
