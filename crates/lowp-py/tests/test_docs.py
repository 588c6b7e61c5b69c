"""The examples in the package's docstrings and the README's Python quickstart run and print what they say."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import lowp
import lowp.compat
import lowp.linalg
import lowp.ops
import lowp.ptq

README = Path(__file__).resolve().parents[3] / "README.md"
MODULES = [lowp, lowp.compat, lowp.ops, lowp.linalg, lowp.ptq, lowp._lowp]
try:
    import lowp.torch

    MODULES.append(lowp.torch)
except ImportError:  # torch not installed: its examples cannot run
    pass

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = finder.find(module, globs={"np": np, "lowp": lowp})
    if module is lowp._lowp:  # the extension's classes: find() skips objects not defined in Python
        for cls in (lowp.Format, lowp.QuantizedTensor):
            tests += finder.find(cls, f"lowp.{cls.__name__}", globs={"np": np, "lowp": lowp})
    examples = sum(len(t.examples) for t in tests)
    assert examples > 0, f"{module.__name__} has no examples"
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} of {examples} examples failed (output above)"


def test_readme_python_quickstart():
    text = README.read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(README), 0)
    assert len(test.examples) >= 5, "the README's Python quickstart (>>> examples) is missing"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    assert runner.failures == 0
