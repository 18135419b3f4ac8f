"""End to end: ``scripts/evaluation/translate_fast.py`` prints what ``fairseq-generate`` prints.

Briefly trained tiny CMLM, DAT and DiffGLAT checkpoints; the whole tiny test split
decoded by ``fairseq-generate`` (batched, eager) and by the fast path (batch 1,
exported passes, from the raw source text); every hypothesis must be identical.
"""
import importlib.util
import os

import pytest

from nat_plugins.export import runtime
from nat_plugins.export.translator import FastTranslator, load_for_generation, main

# tests/conftest.py's helpers by path: ``import conftest`` finds tests/scripts/conftest.py
# instead once pytest has loaded it (e.g. `pytest tests/export tests/scripts`).
_spec = importlib.util.spec_from_file_location("_export_tests_root_conftest",
                                               os.path.join(os.path.dirname(__file__), os.pardir, "conftest.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

BACKEND = runtime.default_backend()  # onnxruntime when installed (make bench), else torchscript


@pytest.fixture(scope="module")
def tiny_dag_models(tiny_bin, tmp_path_factory):
    """{name: checkpoint} for a DAT and a DiffGLAT trained for 20 updates."""
    out = {}
    for name, arch, criterion, extra in (
        ("dat", "dat_tiny", "dag_loss", ("--upsample-scale", "3~4", "--glance-p", "0.5:0.1@1k")),
        ("diffglat", "diffglat_tiny", "diffglat_loss", ("--diffusion-warmup-updates", "5")),
    ):
        save = str(tmp_path_factory.mktemp(f"{name}_fast"))
        helpers.run_train(helpers.train_args(tiny_bin, save, arch=arch, criterion=criterion, max_update=20, extra=extra))
        out[name] = os.path.join(save, "checkpoint_last.pt")
    return out


def generate(data, path, capsys, flags):
    argv = [data, "--user-dir", os.path.join(helpers.ROOT, "nat_plugins"), "--task", "nat_translation", "--path", path,
            "--batch-size", "16", "--cpu", "--gen-subset", "test", *flags]
    hyps = helpers.hypotheses(helpers.run_generate(argv, capsys))
    return [hyps[i] for i in range(len(hyps))]


def translate_fast(data, path, tmp_path, flags):
    src = os.path.join(os.path.dirname(data), "raw", "test.en")
    out = tmp_path / "fast.out"
    assert main([data, "--path", path, "--input", src, "--output", str(out), "--backend", BACKEND, *flags]) == 0
    return out.read_text().splitlines()


@pytest.mark.parametrize("model, flags", [
    ("cmlm", ["--decode-iterations", "4", "--length-beam", "3"]),
    # After 20 updates dag_lookahead and joint-Viterbi choose empty DAT paths: greedy
    # gives real output (every DAG strategy is compared in-process in test_fast_model.py).
    ("dat", ["--decoding-strategy", "dag_greedy"]),
    ("diffglat", []),  # dag_joint_viterbi, the trained pass count
])
def test_same_output_as_fairseq_generate(model, flags, tiny_bin, tiny_cmlm, tiny_dag_models, capsys, tmp_path):
    path = tiny_cmlm if model == "cmlm" else tiny_dag_models[model]
    reference = generate(tiny_bin, path, capsys, flags)
    fast = translate_fast(tiny_bin, path, tmp_path, flags)
    assert len(reference) == 40 and any(h.strip() for h in reference)
    assert fast == reference


def test_api_batches_and_empty_lines(tiny_bin, tiny_cmlm):
    t = FastTranslator(tiny_bin, tiny_cmlm, ["--decode-iterations", "3"], backend=BACKEND)
    lines = ["w1 w2 w3", "", "w0 w5 w7 w9 w11"]
    alone = t.translate(lines)
    assert alone[1] == "" and all(alone[i] for i in (0, 2))
    assert t.translate(lines, batch_size=3) == alone


def test_bad_input_is_one_line_and_status_2(tiny_bin, tiny_cmlm, tmp_path, capsys):
    assert main([tiny_bin, "--path", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nat_plugins: error:") and "missing.pt" in err[0]
    assert main([tiny_bin, "--path", tiny_cmlm, "--input", str(tmp_path / "nope.txt")]) == 2
    assert "cannot read --input" in capsys.readouterr().err
    assert main([tiny_bin, "--path", tiny_cmlm, "--decode-ar-rerank"]) == 2
    assert capsys.readouterr().err.startswith("nat_plugins: error: --decode-ar-rerank")


def test_configurations_sharing_a_checkpoint_keep_their_own_decoding_options(tiny_bin, tiny_dag_models):
    """DiffGLAT's pass count lives on the model: two benchmark entries of one checkpoint
    (e.g. 3 passes and 1 pass) must not overwrite each other's."""
    cache, path = {}, tiny_dag_models["diffglat"]
    _, _, three, _ = load_for_generation(tiny_bin, path, ["--task", "nat_translation", "--decode-iterations", "3"],
                                         model_cache=cache)
    _, _, one, _ = load_for_generation(tiny_bin, path, ["--task", "nat_translation", "--decode-iterations", "1"],
                                       model_cache=cache)
    assert (three.decode_iterations, one.decode_iterations) == (3, 1) and len(cache) == 1
    assert three.links.query.weight.data_ptr() != one.links.query.weight.data_ptr()
