"""Helpers shared by the Python benchmark scripts."""

import time


def best(f, reps):
    """The fastest of `reps` timed calls of `f`, after one untimed warm-up call (seconds)."""
    f()  # warm-up
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)
