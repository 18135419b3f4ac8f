"""Shared by the DAG-model end-to-end tests (DA-Transformer, DiffGLAT): the generation
command line and the checks every DAG decoding must pass through the CLIs."""
import json
import os
import sys

from conftest import ROOT, hypotheses, run_generate

sys.path.insert(0, os.path.join(ROOT, "scripts", "evaluation"))

import score  # noqa: E402


def gen_args(data, path, *extra):
    return [data, "--user-dir", os.path.join(ROOT, "nat_plugins"), "--task", "nat_translation", "--path", path,
            "--batch-size", "16", "--cpu", "--gen-subset", "test", *extra]


def generate_and_score(data, path, capsys, tmp_path, *flags):
    """Decode the 40 test sentences, check DAG output (repeats merged), score it; returns {id: hypothesis}."""
    out = run_generate(gen_args(data, path, *flags), capsys)
    hyps = hypotheses(out)
    assert len(hyps) == 40 and any(h.strip() for h in hyps.values())
    for h in hyps.values():  # consecutive repeats are merged
        words = h.split()
        assert all(a != b for a, b in zip(words, words[1:])), h
    gen = tmp_path / "gen.out"
    gen.write_text(out)
    assert score.main([str(gen), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sentences"] == 40 and 0.0 <= result["bleu_tok"] <= 100.0
    return hyps
