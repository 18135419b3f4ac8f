"""fairseq-hydra-train works with the task's dataclass config, for our CMLM
and (through the compat shim) for stock fairseq NAT models."""
import os
import subprocess
import sys

from conftest import ROOT

BIN = os.path.dirname(sys.executable)


#: libstdc++'s message when a native thread is torn down un-joined. The stock-CMLM run aborted with it once
#: in a clean-clone CI run on 2026-12-02 (no Python traceback; its last stderr line was the data loader's
#: warning), and 3 of 3 reruns passed. The cause is not known.
NATIVE_ABORT = "terminate called without an active exception"


def hydra_train(tmp_path, name, body):
    (tmp_path / f"{name}.yaml").write_text("# @package _group_\n" + body)
    command = [os.path.join(BIN, "fairseq-hydra-train"), "--config-dir", str(tmp_path), "--config-name", name,
               f"common.user_dir={os.path.join(ROOT, 'nat_plugins')}"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path))
    if proc.returncode != 0 and NATIVE_ABORT in proc.stderr:
        # One retry for that native abort only; any other failure, or the same abort twice, still fails.
        proc = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path))
    return proc


COMMON = """common: {{cpu: true, log_interval: 5, seed: 1}}
dataset: {{max_tokens: 1024, num_workers: 0}}
optimization: {{max_update: 6, lr: [0.005]}}
checkpoint: {{save_dir: {save}, no_epoch_checkpoints: true}}
optimizer: {{_name: adam}}
lr_scheduler: {{_name: inverse_sqrt, warmup_updates: 5}}
"""


def test_hydra_train_cmlm(tiny_bin, tmp_path):
    save = tmp_path / "ck"
    proc = hydra_train(tmp_path, "ours", COMMON.format(save=save) + f"""task: {{_name: nat_translation, data: {tiny_bin}, decode_iterations: 3}}
model: {{_name: cmlm_tiny}}
criterion: {{_name: cmlm_loss, label_smoothing: 0.1}}
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (save / "checkpoint_last.pt").exists()


def test_hydra_train_stock_cmlm_transformer_with_plugin_loaded(tiny_bin, tmp_path):
    save = tmp_path / "ck"
    proc = hydra_train(tmp_path, "stock", COMMON.format(save=save) + f"""task: {{_name: translation_lev, data: {tiny_bin}, noise: random_mask}}
model: {{_name: cmlm_transformer, encoder_layers: 1, decoder_layers: 1, encoder_embed_dim: 32, decoder_embed_dim: 32, encoder_ffn_embed_dim: 64, decoder_ffn_embed_dim: 64, share_all_embeddings: true}}
criterion: {{_name: nat_loss, label_smoothing: 0.1}}
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (save / "checkpoint_last.pt").exists()
