"""try/except/finally and the handled-exception state: a checkpoint inside
try, inside except (sys.exc_info() and a bare `raise` re-raising the same
exception afterwards), inside finally; each finally runs exactly once."""
import sys

from ckpt import checkpoint

log = []


class Oops(Exception):
    pass


def in_try():
    try:
        log.append("try")
        checkpoint()
        raise Oops("from try")
    except Oops as e:
        log.append("except " + str(e))
    finally:
        log.append("finally 1")


def in_except():
    try:
        raise Oops("handled")
    except Oops as e:
        checkpoint()
        print("exc_info:", sys.exc_info()[0].__name__, sys.exc_info()[1] is e, e.args)
        try:
            raise
        except Oops as again:
            print("bare raise re-raised the same:", again is e)
    print("after except:", sys.exc_info())


def reraise():
    try:
        raise KeyError("k")
    except KeyError:
        checkpoint()
        raise


def in_finally():
    try:
        return "returned"
    finally:
        log.append("finally 2 before")
        checkpoint()
        log.append("finally 2 after")


in_try()
in_except()
try:
    reraise()
except KeyError as e:
    print("caught", repr(e))
print(in_finally())
print(log)
