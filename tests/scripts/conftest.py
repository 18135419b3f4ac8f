"""Make the command-line tools in scripts/<job>/ importable by module name
(``import score``) and provide shared fixtures for their tests."""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tests import script_dirs  # noqa: E402

script_dirs.add_to_sys_path()


@pytest.fixture
def write_lines(tmp_path):
    """Write ``lines`` to ``tmp_path/name`` and return the path as a string."""

    def write(name, lines):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return str(path)

    return write
