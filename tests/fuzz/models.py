"""Mutations of a model's metadata, and outputs a model might give, for fuzzing the model loader.

Shared by the seeded test in the default run (``tests/test_fuzz.py``) and the coverage-guided
harness (``tests/fuzz/atheris_loaders.py``). The metadata mutations reach into the JSON a model
carries (``labels``, ``feature_config``, ``training``, ``metrics``, ``input_kind``,
``min_frames``): a value anywhere replaced by one of another type, out of range, not finite,
huge, deeply nested, or text with control characters; a key removed or added; a value replaced
by text that is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["ODD_VALUES", "mutate_metadata", "odd_output", "OUTPUT_SHAPES", "OUTPUT_DTYPES"]

#: Values put in place of a metadata value.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 3, 2**31, 2**40, 2**63, 10**400, -(10**400), 0.5, -0.5, 1e-320,
    1e308, -1e308, float("nan"), float("inf"), float("-inf"), "", "x", "mfcc", "frames",
    "\x1b]0;pwned\x07", "a\nb", "\u202eevil", " angry", "a" * 10_000, [], {}, [1, 2], ["x"],
    {"x": 1}, [[[[[]]]]], list(range(1000)),
]


def _deep(depth: int) -> Any:
    value: Any = 0
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into ``value``, the empty one included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:20]):
            out += _paths(item, (*prefix, i))
    return out


def _set(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    value = dict(value) if isinstance(value, dict) else list(value)
    value[head] = _set(value[head], rest, new)
    return value


def mutate_metadata(props: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    """One to three mutations of a model's ``metadata_props`` (key -> JSON text).

    Each picks a key and either replaces a value somewhere inside its JSON with one of
    :data:`ODD_VALUES` (or a list or object nested 20 to 100,000 deep), deletes a field, adds
    one, deletes the key, or replaces its text with text that is not JSON.
    """
    out = dict(props)
    for _ in range(int(rng.integers(1, 4))):
        keys = sorted(out) + ["input_kind", "min_frames", "extra"]
        key = keys[int(rng.integers(0, len(keys)))]
        try:
            value = json.loads(out[key]) if key in out else None
        except ValueError:
            value = out[key]
        op = rng.random()
        if op < 0.6:
            paths = _paths(value)
            path = paths[int(rng.integers(0, len(paths)))]
            if rng.random() < 0.1:
                new = _deep(int(rng.choice([20, 33, 40, 1000, 100_000])))
            else:
                new = ODD_VALUES[int(rng.integers(0, len(ODD_VALUES)))]
            value = _set(value, path, new)
        elif op < 0.75 and isinstance(value, dict) and value:
            del value[sorted(value)[int(rng.integers(0, len(value)))]]
        elif op < 0.85 and isinstance(value, dict):
            value["new_field"] = ODD_VALUES[int(rng.integers(0, len(ODD_VALUES)))]
        elif op < 0.93:
            out.pop(key, None)
            continue
        else:
            out[key] = ["not json {", "[" * 5000, "\x00\x1b", ""][int(rng.integers(0, 4))]
            continue
        try:
            out[key] = json.dumps(value)
        except (ValueError, RecursionError):  # deeper than json.dumps goes: write it by hand
            out[key] = "[" * 100_000 + "]" * 100_000
    return out


#: Shapes :func:`odd_output` gives a model's output, for ``n`` labels.
OUTPUT_SHAPES = {
    "()": lambda n: (), "(n,)": lambda n: (n,), "(1, n)": lambda n: (1, n),
    "(2, n)": lambda n: (2, n), "(1, 1, n)": lambda n: (1, 1, n), "(1, 0)": lambda n: (1, 0),
    "(0, n)": lambda n: (0, n), "(1, n-1)": lambda n: (1, n - 1), "(1, n+1)": lambda n: (1, n + 1),
}

#: Element types of :func:`odd_output`.
OUTPUT_DTYPES = ("float32", "float64", "float16", "int64", "int32", "uint8", "bool")


def odd_output(n_labels: int, rng: np.random.Generator) -> np.ndarray:
    """An output a model might give in place of ``(1, n_labels)`` probabilities.

    Half of them have the right shape and element type with values that are or are not
    probabilities (a softmax, one-hot, uniform, logits, NaN, infinite, negative, above 1, a sum
    a little off 1); the others have another shape or element type.
    """
    n = n_labels
    p = rng.random(n) + 1e-3
    p = p / p.sum()
    values = {
        "softmax": p, "onehot": np.eye(n)[int(rng.integers(0, n))], "uniform": np.full(n, 1 / n),
        "logits": rng.normal(size=n) * 3, "nan": np.where(np.arange(n) == 0, np.nan, p),
        "inf": np.where(np.arange(n) == 0, np.inf, p), "negative": p - 2 / n,
        "above": p * 2, "off_by_2e-3": p * (1 + 2e-3), "off_by_1e-5": p * (1 + 1e-5),
        "zeros": np.zeros(n),
    }
    kind = sorted(values)[int(rng.integers(0, len(values)))]
    row = values[kind]
    if rng.random() < 0.5:
        return row.astype(np.float32)[np.newaxis]
    shape = sorted(OUTPUT_SHAPES)[int(rng.integers(0, len(OUTPUT_SHAPES)))]
    dims = OUTPUT_SHAPES[shape](n)
    size = int(np.prod(dims)) if dims else 1
    flat = np.resize(row, size) if size else np.zeros(0)
    dtype = OUTPUT_DTYPES[int(rng.integers(0, len(OUTPUT_DTYPES)))]
    with np.errstate(invalid="ignore", over="ignore"):
        return flat.reshape(dims).astype(dtype)
