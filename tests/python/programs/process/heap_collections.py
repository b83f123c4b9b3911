"""deque (with maxlen), OrderedDict (moved items), defaultdict with a lambda
factory, Counter, big ints, Decimal/Fraction, datetime/date/timedelta,
complex, bytes/bytearray, frozenset."""
import collections
import datetime
import decimal
import fractions

from ckpt import checkpoint

dq = collections.deque([1, 2, 3], maxlen=4)
od = collections.OrderedDict(a=1, b=2, c=3)
od.move_to_end("a")
dd = collections.defaultdict(lambda: ["fresh"])
dd["x"].append(1)
counter = collections.Counter("mississippi")
big = 3 ** 300
neg = -(7 ** 99)
dec = decimal.Decimal("3.14159265358979323846264338327950288")
frac = fractions.Fraction(22, 7)
when = datetime.datetime(2024, 2, 29, 13, 45, 6, 789, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
day = datetime.date(1999, 12, 31)
span = datetime.timedelta(days=3, seconds=5)
misc = (1 + 2j, b"\x00bytes", bytearray(b"mutable"), frozenset({1, 2}))
checkpoint()
dq.append(4)
dq.append(5)
print(dq, dq.maxlen)
print(list(od.items()))
print(dd["y"], dict(dd))
print(counter.most_common(2))
print(big % 1000003, big.bit_length(), neg % 97)
print(dec * 2, frac + 1, frac.limit_denominator(5))
print(when.isoformat(), when + span, day.weekday(), span.total_seconds())
print(misc)
