# shellcheck shell=bash disable=SC2034
# Per-model settings of the quickstart comparison (sourced by run.sh).
#
# Adding a model = adding one entry here:
#   MODEL_<name>_REQUIRES  a file that exists once the model has landed
#                          ("" for stock fairseq); models not landed are skipped
#   MODEL_<name>_TRAIN     fairseq-train flags: task, architecture, criterion
#                          (data, save dir, update budget and logging are added by run.sh)
#   MODEL_<name>_UPDATES   training updates on CPU (the budget; see "Budgets" below)
#   MODEL_<name>_GPU       fairseq-train flags that replace MODEL_<name>_TRAIN on a GPU
#   MODEL_<name>_UPDATES_GPU  training updates on a GPU
#   MODEL_<name>_GEN       fairseq-generate flags: task and decoding
#   MODEL_<name>_DESC      one line for the results table
# and, for a NAT model, its name to NAT_MODELS.
#
# Sizes are CPU-sized on purpose (REFERENCE §8): 2+2 layers, 128 wide, FFN 512,
# 4 heads, lr 2e-3 with a 200-update warm-up, because a 3+3x256 model scores
# BLEU 0 after the same few minutes on 2 cores.

NAT_MODELS=(cmlm sundae dat diffglat)

# Budgets are update counts, so a run gives the same models on any machine, busy or not (the wall
# clock is only a safety cap, MAX_MINUTES in run.sh).  They come from the long learning curves of
# benchmarks/learning_curves.md (2026-12-03, 2-core AMD EPYC, AR and CMLM side by side on one thread
# each, max-tokens 4096): valid BLEU (tok) AR 2.96 / 5.66 at 500 / 1000 updates, CMLM 0.00 / 1.75 /
# 3.27 at 500 / 1000 / 1500.  The default run trains AR and the flagship side by side (run.sh JOBS=2),
# at ~0.8 s (AR) and ~0.55 s (CMLM) per update on a quiet machine: AR 900 + CMLM 1300 updates take
# ~12 minutes, plus data preparation, averaging, decoding and the curve points: within 20 minutes.
# AR 450 / CMLM 550 (the former defaults) left the AR below 4 BLEU and CMLM at 0.
# SUNDAE (two passes per update), DAT and DiffGLAT (two passes over 4x the target length) cost ~1.7x,
# ~5.5x (benchmarks/training_speed.md) and ~6x a CMLM update; their budgets below keep each under
# ~10 minutes, far from where they learn on this corpus (see benchmarks/learning_curves.md).
#
# GPU mode (run.sh, DEVICE=auto finds CUDA): the papers' base sizes (6+6x512, the DAG models at their
# papers' lambda = 8), mixed precision, 8192 tokens per batch and lr 5e-4 with 1000 warm-up updates;
# 3000 updates each, a few minutes per model on a recent GPU.  Not yet timed on a GPU.
# The flagship is the NAT with the best BLEU at the default budget, by measurement: on 2026-12-02 at 7
# minutes each (benchmarks/quickstart.md of that date) CMLM was the only NAT with sacreBLEU near 1
# (SUNDAE 0.09, DAT 0.02, DiffGLAT 0.00), and CMLM is the NAT whose curve passes 1 BLEU at 1000 updates.
FLAGSHIP=cmlm    # the NAT model run by default next to the AR baseline

# Shared by every model, so the comparison varies only the model.
COMMON_TRAIN=(
  --optimizer adam --adam-betas "(0.9,0.98)" --clip-norm 0.0
  --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 200 --warmup-init-lr 1e-7
  --dropout 0.1 --weight-decay 0.0 --max-tokens 4096
  --max-source-positions 256 --max-target-positions 256
)
# --user-dir on every generation: it installs the weights-only allow-list that
# torch >= 2.6 needs to load argparse-trained checkpoints, AR ones included.
# --required-batch-size-multiple 1: with fairseq's default of 8, batch_by_size
# silently drops the last (N mod 8) sentences of the test split.
COMMON_GEN=(--user-dir nat_plugins --batch-size 128 --required-batch-size-multiple 1 --remove-bpe)

MODEL_ar_REQUIRES=""
MODEL_ar_DESC="AR Transformer 2+2x128, beam 4"
MODEL_ar_TRAIN=(
  --task translation --arch transformer
  --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 128 --decoder-embed-dim 128
  --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512
  --encoder-attention-heads 4 --decoder-attention-heads 4 --share-all-embeddings
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1
)
MODEL_ar_UPDATES=900
MODEL_ar_GPU=(--task translation --arch transformer --share-all-embeddings
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1)
# max-len bounds keep a barely trained model from decoding runaway outputs
MODEL_ar_GEN=(--task translation --beam 4 --max-len-a 1.2 --max-len-b 10)

MODEL_cmlm_REQUIRES="nat_plugins/models/cmlm.py"
MODEL_cmlm_DESC="CMLM 2+2x128, 10 iterations, 3 length candidates"
MODEL_cmlm_TRAIN=(--user-dir nat_plugins --task nat_translation --arch cmlm_small --criterion cmlm_loss)
MODEL_cmlm_GEN=(--task nat_translation --decode-iterations 10 --length-beam 3)
MODEL_cmlm_UPDATES=1300
MODEL_cmlm_GPU=(--user-dir nat_plugins --task nat_translation --arch cmlm_base --criterion cmlm_loss)

MODEL_sundae_REQUIRES="nat_plugins/models/sundae.py"
# 2 samples x 1 length: SUNDAE decodes every candidate T times, so n = 16 (the paper) is ~8x slower on CPU
MODEL_sundae_DESC="SUNDAE 2+2x128, L(1:2), 8 steps tau=0.5, 2 samples reranked by model score"
MODEL_sundae_TRAIN=(--user-dir nat_plugins --task nat_translation --arch sundae_small --criterion sundae_loss)
MODEL_sundae_GEN=(--task nat_translation --decode-iterations 8 --decode-temperature 0.5 --decode-samples 2 --decode-seed 1)
MODEL_sundae_UPDATES=350
MODEL_sundae_GPU=(--user-dir nat_plugins --task nat_translation --arch sundae_base --criterion sundae_loss)

# Not in NAT_MODELS (so not in MODELS=all): run by name, e.g. MODELS=sundae,sundae_l1.
# sundae_l1: the L(1)-only arm of SUNDAE's ablation (issue #16; the paper's Table 7), identical to
# `sundae` except that the loss has no unrolled second step.
MODEL_sundae_l1_REQUIRES="nat_plugins/models/sundae.py"
MODEL_sundae_l1_DESC="SUNDAE 2+2x128, L(1) only (no unrolled step), decoded as sundae"
MODEL_sundae_l1_TRAIN=("${MODEL_sundae_TRAIN[@]}" --unroll-steps 1)
MODEL_sundae_l1_GEN=("${MODEL_sundae_GEN[@]}")
MODEL_sundae_l1_UPDATES=$MODEL_sundae_UPDATES
MODEL_sundae_l1_GPU=("${MODEL_sundae_GPU[@]}" --unroll-steps 1)

# sunmask: ours, SUNMASK adapted to translation (nat_plugins/models/sunmask.py), compared with SUNDAE
# at equal updates (issue #21); annealed-mask typical sampling, 10 steps.
MODEL_sunmask_REQUIRES="nat_plugins/models/sunmask.py"
MODEL_sunmask_DESC="SUNMASK 2+2x128 (ours for MT), 2 unrolled steps with one mask, 10 steps tau=0.5"
MODEL_sunmask_TRAIN=(--user-dir nat_plugins --task nat_translation --arch sunmask_small --criterion sunmask_loss
  --unroll-steps 2)
MODEL_sunmask_GEN=(--task nat_translation --decode-iterations 10 --decode-temperature 0.5 --decode-seed 1)
MODEL_sunmask_UPDATES=$MODEL_sundae_UPDATES
MODEL_sunmask_GPU=(--user-dir nat_plugins --task nat_translation --arch sunmask_base --criterion sunmask_loss
  --unroll-steps 2)

MODEL_dat_REQUIRES="nat_plugins/models/dat.py"
MODEL_dat_DESC="DA-Transformer 2+2x128, lambda=4, glancing 0.5, lookahead"
# lambda = 4 instead of the paper's 8: every pass costs lambda x the target tokens on CPU
MODEL_dat_TRAIN=(--user-dir nat_plugins --task nat_translation --arch dat_small --criterion dag_loss
  --upsample-scale 4 --glance-p 0.5:0.1@200k)
MODEL_dat_GEN=(--task nat_translation --decoding-strategy dag_lookahead --decode-beta 1.0)
MODEL_dat_UPDATES=200
MODEL_dat_GPU=(--user-dir nat_plugins --task nat_translation --arch dat_base --criterion dag_loss
  --upsample-scale 8 --glance-p 0.5:0.1@200k)

MODEL_diffglat_REQUIRES="nat_plugins/models/diffglat.py"
MODEL_diffglat_DESC="DiffGLAT 2+2x128, lambda=4, 1 layer/transition, 3 iterations, modality diffusion, joint-Viterbi"
# 1 layer per transition (2 transitions per pass) is a CPU-size compromise (the paper: 3 of 6 layers).
# Warm-up (y_0-only targets, Appendix E: 100k of the paper's 300k updates).  It must outlast the phase in
# which the model gets almost nothing right: the gamma rule ("keep >= 90% of the already-correct tokens")
# is vacuous then, gamma = 1, and the intermediate targets become the model's own argmax.  Seen on the
# synthetic benchmark: with a 300-update warm-up, ended inside the 4.4-bit plateau every small DAG model
# sits on for its first ~400 updates, transitions 0-4 fell to ~0.01 bits on their own argmax and the
# process's validation loss rose from 8.7 to 17.8 bits.  1000 is a third of the synthetic benchmark's
# 3000 updates (the paper's proportion); a few-minute CPU quickstart never leaves it, and DiffGLAT then
# trains as DAT with layer-wise residual glancing.
MODEL_diffglat_TRAIN=(--user-dir nat_plugins --task nat_translation --arch diffglat_small --criterion diffglat_loss
  --upsample-scale 4 --diffusion-iterations 3 --glance-alpha 0.5:0.1@200k --diffusion-process modality
  --diffusion-warmup-updates 1000)
MODEL_diffglat_GEN=(--task nat_translation --decoding-strategy dag_joint_viterbi --decode-iterations 3
  --decode-viterbi-beta 1.0)
MODEL_diffglat_UPDATES=150
MODEL_diffglat_GPU=(--user-dir nat_plugins --task nat_translation --arch diffglat_base --criterion diffglat_loss
  --upsample-scale 8 --diffusion-iterations 3 --glance-alpha 0.5:0.1@200k --diffusion-process modality
  --diffusion-warmup-updates 1000)

# Shared GPU settings (replace the CPU-sized optimiser settings of COMMON_TRAIN).
COMMON_TRAIN_GPU=(
  --optimizer adam --adam-betas "(0.9,0.98)" --clip-norm 0.0
  --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 1000 --warmup-init-lr 1e-7
  --dropout 0.1 --weight-decay 0.0 --max-tokens 8192 --fp16
  --max-source-positions 256 --max-target-positions 256
)
UPDATES_GPU=3000
