"""Reading the plain-text files the pipeline scripts consume.

A line ends at ``\\n`` only, which is what ``wc -l``, fairseq-preprocess and
fairseq-generate count: ``\\r``, U+2028 and the other characters that Python's
``str.splitlines`` would also break on stay inside their line, so line *n*
of a hypothesis file always lines up with line *n* of its reference.  A
Windows line end ``\\r\\n`` counts as one line end.
"""


def split_lines(text):
    """The lines of ``text``, split at ``\\n`` only, without their line ends."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # a final "\n" ends the last line; it does not start a new one
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path, error=ValueError):
    """The lines of a UTF-8 text file (see :func:`split_lines`).

    An unreadable or non-UTF-8 file raises ``error`` (each script passes its
    own user-error class) with a one-line message naming the file and line.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path} is not UTF-8 text (line {line}: {exc.reason})") from exc
    return split_lines(text)


def count_lines(path, error=ValueError):
    """Number of lines of ``path`` as :func:`split_lines` counts them."""
    try:
        with open(path, "rb") as handle:
            count, last = 0, b"\n"
            for block in iter(lambda: handle.read(1 << 20), b""):
                count += block.count(b"\n")
                last = block[-1:]
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    return count + (last != b"\n")  # an unterminated last line counts too


def check_parallel(source, target, error=ValueError, what="split"):
    """Raise ``error`` unless ``source`` and ``target`` hold the same, non-zero number of lines."""
    n_src, n_tgt = count_lines(source, error), count_lines(target, error)
    if n_src != n_tgt:
        raise error(f"{what} {source} has {n_src} lines but {target} has {n_tgt}: the two sides of a parallel "
                    "corpus must align line by line")
    if n_src == 0:
        raise error(f"{what} {source} and {target} are empty")
    return n_src
