"""The tokenized-BLEU text convention, shared by validation and scripts/evaluation/score.py.

Kept free of fairseq and torch so the scorer can use it cheaply.
"""
import re

__all__ = ["compound_split"]

_HYPHEN = re.compile(r"(\S)-(\S)")


def compound_split(line):
    """fairseq/NAT tokenized-BLEU convention: ``a-b`` -> ``a ##AT##-##AT## b``.

    One left-to-right pass of non-overlapping matches, exactly like the
    ``perl -ple 's{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g'`` of fairseq's
    ``compound_split_bleu.sh``: in ``a-b-c`` only the first hyphen splits,
    because its match consumed the ``b``.  Published numbers use this
    convention, so we keep its quirk.
    """
    return _HYPHEN.sub(r"\1 ##AT##-##AT## \2", line)
