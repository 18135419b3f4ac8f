"""DA-Transformer's reference recipe (issue #15): defaults for new trainings, legacy for old checkpoints.

New trainings get the reference's graph size ``int(lambda * (|x| + 1))``, framed targets
``<s> y </s>``, framed decoder inputs ``<s> <unk>... </s>`` and learned decoder positions.
A checkpoint whose saved arguments lack the attributes decodes as before.
"""
import argparse

import pytest
import torch
from fairseq import options

from nat_plugins.models.dat import DATModel, dat_tiny
from tests.model_builders import ToyTask, toy_dictionary


def _parse_train_args(extra=()):
    """What ``fairseq-train --arch dat_tiny`` stores in a new checkpoint's args."""
    parser = options.get_training_parser()
    argv = ["data-bin-unused", "--task", "nat_translation", "--arch", "dat_tiny", "--criterion", "dag_loss",
            "--user-dir", "nat_plugins", *extra]
    return options.parse_args_and_arch(parser, input_args=argv)


def _build(args):
    d = toy_dictionary()
    args.dropout = 0.0
    torch.manual_seed(0)
    return DATModel.build_model(args, ToyTask(d)), d


def test_new_trainings_default_to_the_reference_recipe():
    args = _parse_train_args()
    assert args.dag_frame_target is True
    assert args.dag_graph_size == "source+eos"
    assert args.dag_canvas == "framed"
    assert args.decoder_learned_pos is True
    off = _parse_train_args(["--dag-frame-target", "off", "--dag-graph-size", "source", "--dag-canvas", "unk"])
    assert (off.dag_frame_target, off.dag_graph_size, off.dag_canvas) == (False, "source", "unk")
    assert _parse_train_args(["--dag-frame-target"]).dag_frame_target is True


def test_a_bad_on_off_value_is_an_argparse_error():
    with pytest.raises(SystemExit) as err:
        _parse_train_args(["--dag-frame-target", "maybe"])
    assert err.value.code == 2


def test_reference_graph_size_counts_the_source_eos_and_truncates():
    model, d = _build(_parse_train_args())
    eos, pad, a = d.eos(), d.pad(), d.index("a")
    # |x| = 32 with lambda 4: 4 * 33 = 132 >= 4 separate modality paths of 32 tokens + the frame (130);
    # the legacy round(4 * 32) = 128 cannot hold them.
    src = torch.tensor([[a] * 32 + [eos], [pad] * 29 + [a] * 3 + [eos]])
    assert model.graph_lengths(src, 4.0).tolist() == [132, 16]
    assert model.graph_lengths(src, 2.5).tolist() == [82, 10]  # int(82.5), int(10.0)
    legacy, _ = _build(_legacy_args())
    assert legacy.graph_lengths(src, 4.0).tolist() == [128, 12]
    assert legacy.graph_lengths(src, 2.5).tolist() == [80, 8]  # round(80.0), round(7.5) (to even)


def test_reference_canvas_is_framed_and_legacy_canvas_is_unk():
    model, d = _build(_parse_train_args())
    canvas = model.graph_canvas(torch.tensor([5, 2, 1]))
    bos, eos, unk, pad = d.bos(), d.eos(), d.unk(), d.pad()
    assert canvas.tolist() == [
        [bos, unk, unk, unk, eos],
        [bos, eos, pad, pad, pad],
        [bos, pad, pad, pad, pad],
    ]
    legacy, _ = _build(_legacy_args())
    assert legacy.graph_canvas(torch.tensor([3, 1])).tolist() == [[unk, unk, unk], [unk, pad, pad]]


def _legacy_args():
    """Saved args of a checkpoint trained before the recipe options existed (arch filled, as on load)."""
    args = argparse.Namespace(max_source_positions=64)
    dat_tiny(args)
    args.decoder_learned_pos = False  # saved explicitly by every earlier training
    return args


def test_legacy_checkpoint_args_keep_the_old_behaviour():
    args = _legacy_args()
    assert not hasattr(args, "dag_graph_size") and not hasattr(args, "dag_canvas")
    model, _ = _build(args)
    assert (model.frame_target, model.graph_size_rule, model.canvas_style) == (False, "source", "unk")
    assert model.decoder.embed_positions.__class__.__name__ == "SinusoidalPositionalEmbedding"


def test_new_models_have_learned_positions_covering_the_graph_capacity():
    args = _parse_train_args(["--max-source-positions", "16"])
    model, _ = _build(args)
    emb = model.decoder.embed_positions
    assert emb.__class__.__name__ == "LearnedPositionalEmbedding"
    # dat_tiny: lambda 4, so 64 vertices; fairseq's learned table is offset by padding_idx + 1
    assert emb.max_positions == 64
