"""Reading the plain-text files the pipeline scripts consume."""


def read_lines(path, error=ValueError):
    """The lines of a UTF-8 text file, without newlines.

    An unreadable or non-UTF-8 file raises ``error`` (each script passes its
    own user-error class) with a one-line message naming the file.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text: {exc.reason}") from exc
