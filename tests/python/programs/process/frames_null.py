"""NULL slots: an unbound local (deleted before the checkpoint, assigned
later), a never-assigned local, a cell not yet bound, NULL below a function
call on the value stack."""
from ckpt import checkpoint


def f():
    a = 1
    b = 2
    del b
    if False:
        never = 0

    def inner():
        return late

    checkpoint()
    try:
        print(b)
    except UnboundLocalError as e:
        print("b unbound:", type(e).__name__)
    try:
        print(never)
    except UnboundLocalError:
        print("never unbound")
    try:
        inner()
    except NameError as e:
        print("late unbound:", type(e).__name__)
    late = "bound now"
    print(inner(), a)


def g():
    return len("ab") + (checkpoint() and 0)


f()
print(abs(g()))
