"""Infilling through fairseq-interactive for CMLM (Mask-Predict) and SUNDAE: 'SOURCE ||| TEMPLATE' lines."""
import os

import pytest

from conftest import hypotheses, run_train, train_args
from interactive_cli import interactive_args, run_interactive

LINES = ["w1 w2 w3 ||| W1 <blank> W3", "w4 w5 w6 w7 ||| <gap> W6 <gap>", "w8 w9", "w1 w2 w3 ||| <blank> W9"]


@pytest.fixture(scope="module")
def tiny_sundae_briefly(tiny_bin, tmp_path_factory):
    # The test checks templates, not quality: a few updates are enough.
    save = str(tmp_path_factory.mktemp("sundae_infill_ckpt"))
    run_train(train_args(tiny_bin, save, arch="sundae_tiny", criterion="sundae_loss", max_update=10))
    return os.path.join(save, "checkpoint_last.pt")


@pytest.mark.parametrize("family", ["cmlm", "sundae"])
def test_fixed_tokens_and_widths_through_interactive(family, tiny_bin, tiny_cmlm, tiny_sundae_briefly, tmp_path,
                                                      capsys):
    path = tiny_cmlm if family == "cmlm" else tiny_sundae_briefly
    argv = interactive_args(tiny_bin, path, "--decode-templates", "inline", "--length-beam", "2",
                            "--decode-iterations", "4", "--decode-seed", "1", "--tokenizer", "moses")
    hyps = {i: h.split() for i, h in hypotheses(run_interactive(argv, LINES, tmp_path, capsys)).items()}
    assert sorted(hyps) == [0, 1, 2, 3]
    assert len(hyps[0]) == 3 and hyps[0][0] == "W1" and hyps[0][2] == "W3"
    assert "W6" in hyps[1][1:-1]
    assert len(hyps[3]) == 2 and hyps[3][1] == "W9"
