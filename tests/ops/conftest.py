"""Test setup for nat_plugins.ops: the ops need torch only.

On a GPU box without fairseq, ``nat_plugins/__init__`` registers nothing and
``nat_plugins.ops`` imports with torch alone; the checkout only needs to be
on ``sys.path`` when the package is not installed.
"""
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
sys.path.insert(0, _HERE)  # dag_brute_force

if importlib.util.find_spec("nat_plugins") is None:
    sys.path.insert(0, _ROOT)
