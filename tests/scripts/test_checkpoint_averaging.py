"""Tests for scripts/evaluation/average_checkpoints.py on small synthetic checkpoints."""
import argparse
import collections
import os

import pytest
import torch

import average_checkpoints as avg


def _checkpoint(path, seed, arch="transformer", updates=100, val_loss=None, shape=(3, 4), extra_param=False):
    """Write a checkpoint shaped like fairseq's: model state, hydra-style cfg,
    an argparse.Namespace (to exercise the weights-only allow-list),
    optimizer history and state."""
    generator = torch.Generator().manual_seed(seed)
    model = collections.OrderedDict(
        [
            ("encoder.weight", torch.randn(shape, generator=generator)),
            ("decoder.bias", torch.randn(4, generator=generator, dtype=torch.float64)),
            ("encoder.version", torch.tensor([seed])),
        ]
    )
    if extra_param:
        model["decoder.extra"] = torch.zeros(2)
    state = {
        "args": None,
        "cfg": {
            "model": argparse.Namespace(arch=arch, _name=arch),
            "checkpoint": {"best_checkpoint_metric": "loss", "maximize_best_checkpoint_metric": False},
        },
        "model": model,
        "optimizer_history": [{"num_updates": updates}],
        "last_optimizer_state": {"state": {0: torch.ones(5)}},
        "extra_state": {"val_loss": val_loss, "train_iterator": {"epoch": 1}},
    }
    torch.save(state, path)
    return str(path)


def test_average_is_the_exact_mean_and_loads_weights_only(tmp_path):
    first = _checkpoint(tmp_path / "checkpoint_1_200.pt", seed=1, updates=200)
    second = _checkpoint(tmp_path / "checkpoint_1_100.pt", seed=2, updates=100)
    output = str(tmp_path / "averaged.pt")
    assert avg.main(["--inputs", first, second, "--output", output]) == 0

    import nat_plugins.compat  # noqa: F401  (installs the allow-list)

    result = torch.load(output, weights_only=True)
    a, b = torch.load(first, weights_only=True)["model"], torch.load(second, weights_only=True)["model"]
    for name in ("encoder.weight", "decoder.bias"):
        expected = ((a[name].double() + b[name].double()) / 2).to(a[name].dtype)
        assert result["model"][name].dtype == a[name].dtype
        assert torch.equal(result["model"][name], expected)
    assert torch.equal(result["model"]["encoder.version"], a["encoder.version"])  # from the newest
    assert "last_optimizer_state" not in result
    assert result["extra_state"]["averaged_from"] == ["checkpoint_1_200.pt", "checkpoint_1_100.pt"]
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "cmlm_small"}, "different architectures"),
        ({"shape": (4, 3)}, "parameter encoder.weight differs"),
        ({"extra_param": True}, "different parameter sets"),
    ],
)
def test_incompatible_checkpoints_are_rejected(tmp_path, capsys, kwargs, message):
    first = _checkpoint(tmp_path / "a.pt", seed=1)
    second = _checkpoint(tmp_path / "b.pt", seed=2, **kwargs)
    assert avg.main(["--inputs", first, second, "--output", str(tmp_path / "out.pt")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_last_n_by_update_number(tmp_path):
    for updates in (50, 100, 150, 1000):
        _checkpoint(tmp_path / f"checkpoint_{1 + updates // 400}_{updates}.pt", seed=updates, updates=updates)
    _checkpoint(tmp_path / "checkpoint_last.pt", seed=0)
    _checkpoint(tmp_path / "checkpoint7.pt", seed=0)
    names = [os.path.basename(p) for p in avg.last_checkpoints(str(tmp_path), 3)]
    assert names == ["checkpoint_3_1000.pt", "checkpoint_1_150.pt", "checkpoint_1_100.pt"]
    with pytest.raises(avg.AverageError, match="has 4"):
        avg.last_checkpoints(str(tmp_path), 5)


def test_last_n_by_epoch_when_no_update_checkpoints(tmp_path):
    for epoch in (2, 10, 9):
        _checkpoint(tmp_path / f"checkpoint{epoch}.pt", seed=epoch)
    assert [os.path.basename(p) for p in avg.last_checkpoints(str(tmp_path), 2)] == ["checkpoint10.pt", "checkpoint9.pt"]


def test_best_n_by_recorded_metric_counts_copies_once(tmp_path):
    _checkpoint(tmp_path / "checkpoint_1_100.pt", seed=1, updates=100, val_loss=5.0)
    _checkpoint(tmp_path / "checkpoint_1_200.pt", seed=2, updates=200, val_loss=4.0)
    _checkpoint(tmp_path / "checkpoint_1_300.pt", seed=3, updates=300, val_loss=4.5)
    _checkpoint(tmp_path / "checkpoint.best_loss_4.0002.pt", seed=2, updates=200, val_loss=4.0)  # a copy
    best = [os.path.basename(p) for p in avg.best_checkpoints(str(tmp_path), 2)]
    assert best == ["checkpoint.best_loss_4.0002.pt", "checkpoint_1_300.pt"]  # first name of the copies
    worst_first = avg.best_checkpoints(str(tmp_path), 3, maximize=True)
    assert os.path.basename(worst_first[0]) == "checkpoint_1_100.pt"


def test_missing_checkpoint_error(tmp_path, capsys):
    assert avg.main(["--inputs", str(tmp_path / "nope.pt"), "--output", str(tmp_path / "o.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_last_n_includes_a_newer_checkpoint_last_and_allows_fewer(tmp_path):
    _checkpoint(tmp_path / "checkpoint_1_50.pt", seed=1, updates=50)
    _checkpoint(tmp_path / "checkpoint_last.pt", seed=2, updates=73)  # stopped between save intervals
    names = [os.path.basename(p) for p in avg.last_checkpoints(str(tmp_path), 3, allow_fewer=True)]
    assert names == ["checkpoint_last.pt", "checkpoint_1_50.pt"]
    with pytest.raises(avg.AverageError, match="has 2"):
        avg.last_checkpoints(str(tmp_path), 3)
