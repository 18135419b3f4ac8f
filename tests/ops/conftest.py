"""Test setup for nat_plugins.ops.

``nat_plugins/__init__.py`` registers fairseq components, but the ops need torch
only; on a GPU box without fairseq the parity tests must still import them.  If
fairseq is absent, ``nat_plugins`` is registered as a bare namespace so that
importing ``nat_plugins.ops`` skips the package ``__init__``.
"""
import importlib.util
import os
import sys
import types

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
sys.path.insert(0, _HERE)  # dag_brute_force

if "nat_plugins" not in sys.modules and importlib.util.find_spec("fairseq") is None:
    _pkg = types.ModuleType("nat_plugins")
    _pkg.__path__ = [os.path.join(_ROOT, "nat_plugins")]
    sys.modules["nat_plugins"] = _pkg
elif importlib.util.find_spec("nat_plugins") is None:
    sys.path.insert(0, _ROOT)
