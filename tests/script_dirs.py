"""Where the command-line tools live, for the tests that import or run them.

The tools sit in one folder per job under ``scripts/`` (``data``, ``evaluation``, ``benchmarks``,
``experiments``, ``gpu``) and import each other by module name (``import score``), each putting the
folders it borrows from on ``sys.path`` itself.  A test imports a tool the same way after
:func:`add_to_sys_path`.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
JOBS = ("data", "evaluation", "benchmarks", "experiments", "gpu")
DIRS = [os.path.join(SCRIPTS, job) for job in JOBS]


def add_to_sys_path():
    """Every job folder and the checkout (for ``nat_plugins`` without the editable install)."""
    sys.path[:0] = [folder for folder in DIRS + [ROOT] if folder not in sys.path]

