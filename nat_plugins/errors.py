"""User-facing errors.

Bad input (missing files, wrong flags, mismatched dictionaries, over-long
inputs, graphs too small for a target) must end a fairseq CLI run with one
clear line, not a 40-line traceback.  Code anywhere in the plugin raises
:class:`NATUserError`; :func:`install_excepthook` makes the interpreter print
such errors as ``nat_plugins: error: <message>`` and exit with status 2,
while every other exception keeps its full traceback (a real bug should
stay debuggable).
"""
import sys

__all__ = ["NATUserError", "install_excepthook"]


class NATUserError(ValueError):
    """An error caused by the user's input or flags, not by a bug.

    Subclasses ``ValueError`` so callers that already catch ``ValueError``
    (and tests using ``pytest.raises(ValueError)``) keep working.
    """


_previous_hook = None


def _find_user_error(exc):
    # fairseq sometimes wraps errors (e.g. "Cannot load model parameters
    # from checkpoint ..."), so look through the cause/context chain.
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, NATUserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _is_cli_flag_check(exc, tb):
    # fairseq_cli validates flag combinations with bare asserts (e.g. "Must
    # specify batch size either with --max-tokens or --batch-size"): an
    # assertion raised directly in a fairseq_cli module is a flag error.
    if not isinstance(exc, AssertionError) or not str(exc) or tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "fairseq_cli" in tb.tb_frame.f_code.co_filename


def _hook(exc_type, exc, tb):
    user_error = _find_user_error(exc)
    if user_error is None and _is_cli_flag_check(exc, tb):
        user_error = exc
    if user_error is not None:
        msg = " ".join(str(user_error).split())
        sys.stderr.write(f"nat_plugins: error: {msg}\n")
        sys.stdout.flush()
        sys.stderr.flush()
        # sys.excepthook cannot choose the exit status; os._exit skips
        # nothing that matters here since the process is ending on an error.
        import os

        os._exit(2)
    _previous_hook(exc_type, exc, tb)


def install_excepthook():
    """Print uncaught :class:`NATUserError` as one line (idempotent)."""
    global _previous_hook
    if sys.excepthook is not _hook:
        _previous_hook = sys.excepthook
        sys.excepthook = _hook
