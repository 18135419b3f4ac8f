#!/usr/bin/env python3
"""Translate with a CMLM / DAT / DiffGLAT checkpoint on exported passes (batch 1, CPU).

A thin CLI over :mod:`nat_plugins.export.translator`; ``--help`` lists its flags,
and every other flag is a fairseq generation flag, e.g.::

    python scripts/evaluation/translate_fast.py data-bin/quickstart --path runs/quickstart/dat/averaged.pt \\
        --remove-bpe < test.bpe.en > test.hyp.de

Outputs are those of ``fairseq-generate`` with the same flags (checked by
``tests/export/test_translate_fast.py``).  Uses onnxruntime when installed
(``make bench`` installs it), else TorchScript.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the checkout

from nat_plugins.export.translator import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
