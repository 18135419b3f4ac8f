"""The fairseq/torch/NumPy shims."""
import argparse

import numpy as np
import torch

import nat_plugins  # noqa: F401  (installs the shims)
from nat_plugins.compat import load_checkpoint_file


def test_generation_batches_keep_every_sentence():
    from fairseq.data import data_utils

    for n in (3, 11, 41):
        batches = data_utils.batch_by_size(np.arange(n), lambda i: 5, max_tokens=12000, required_batch_size_multiple=8)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))


def test_numpy_aliases():
    assert np.float is float and np.int is int


def test_safe_loader_reads_fairseq_style_checkpoint_but_not_arbitrary_code(tmp_path):
    path = tmp_path / "ck.pt"
    torch.save({"args": argparse.Namespace(lr=[0.1]), "extra_state": {"m": np.array([1.0, 2.0])},
                "model": {"w": torch.ones(2)}}, path)
    state = load_checkpoint_file(str(path))
    assert state["args"].lr == [0.1] and state["extra_state"]["m"].tolist() == [1.0, 2.0]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    try:
        torch.load(tmp_path / "evil.pt", weights_only=True)
    except Exception as exc:
        assert "Unsupported global" in str(exc) or "weights_only" in str(exc).lower()
    else:
        raise AssertionError("weights_only loading was switched off")
