"""``tests/conftest.py`` loaded by path, for helper modules and tests in sub-folders.

A bare ``import conftest`` gets whichever conftest module the run imported first (``tests/ops/conftest.py``
in a full run), so modules that need the root helpers (``run_train``, ``run_generate``, ``ROOT``...) use this.
"""
import importlib.util
import os

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")


def load():
    spec = importlib.util.spec_from_file_location("_tests_root_conftest", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
