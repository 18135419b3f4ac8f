"""Tiny in-memory models for unit tests (no data files, no training)."""
import argparse

import torch
from fairseq.data import Dictionary


class ToyTask:
    """The two attributes ``build_model`` reads from a task."""

    def __init__(self, dictionary):
        self.source_dictionary = self.target_dictionary = dictionary


def toy_dictionary(words="a b c d e f g h"):
    d = Dictionary()
    for w in words.split():
        d.add_symbol(w)
    return d


def build_tiny(model_cls, arch_fn, words="a b c d e f g h", seed=0, **overrides):
    """(model in eval mode, task, dictionary) for ``arch_fn`` with dropout 0."""
    d = toy_dictionary(words)
    args = argparse.Namespace(dropout=0.0, **overrides)
    arch_fn(args)
    torch.manual_seed(seed)
    task = ToyTask(d)
    return model_cls.build_model(args, task).eval(), task, d
