"""Imported again at every step of preempt_imports.py."""
RESULT = 0
for i in range(20_000):
    RESULT = (RESULT * 31 + i * i) % 1000003
