"""Text conventions for BLEU that the plugin itself needs at validation time.

The command-line scorer (``scripts/score.py``) offers the full set; the one
convention the task needs lives here so the package never imports scripts.
"""
import re

__all__ = ["compound_split"]

_HYPHEN = re.compile(r"(\S)-(\S)")


def compound_split(line):
    """fairseq/NAT tokenized-BLEU convention: ``a-b`` -> ``a ##AT##-##AT## b``."""
    # Applied twice so chains like "a-b-c" split at every hyphen (the regex
    # consumes the right-hand character of each match).
    line = _HYPHEN.sub(r"\1 ##AT##-##AT## \2", line)
    return _HYPHEN.sub(r"\1 ##AT##-##AT## \2", line)
