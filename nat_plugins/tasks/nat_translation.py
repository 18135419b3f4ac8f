"""Task ``nat_translation``: translation for the plugin's NAT models.

Differences from fairseq's ``translation_lev``:

* the task adds no noise; each model's criterion corrupts targets its own
  way (CMLM masking, SUNDAE corruption, DAT glancing);
* ``--eval-bleu`` works (``translation_lev`` silently drops it) and can
  also log tokenized, compound-split BLEU as ``bleu_tok``;
* all decoding options live here and :meth:`build_generator` hands them to
  the shared :class:`~nat_plugins.decoding.generator.NATGenerator` with the
  strategy chosen for the loaded model's family;
* bad input (missing data, over-long sentences, unknown/misapplied
  decoding options) ends with one clear line.
"""
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..compat import patch_interactive
from ..decoding.generator import NATGenerator
from ..decoding.templates import INLINE_SEPARATOR, TemplateSource
from ..decoding.strategy import STRATEGIES, DecodingOptions
from ..errors import NATUserError
from ..modules.nat_base import NATModelBase
from ..modules.warm_start import warm_start_from_args
from . import run_checks

logger = logging.getLogger(__name__)

__all__ = ["NATTranslationConfig", "NATTranslationTask"]

# fairseq's own iterative-refinement flags and their defaults: we refuse
# non-default values instead of silently ignoring them.
_FAIRSEQ_ITER_FLAGS = {
    "iter_decode_max_iter": (10, "--decode-iterations"),
    "iter_decode_with_beam": (1, "--length-beam"),
    "iter_decode_eos_penalty": (0.0, None),
    "iter_decode_force_max_iter": (False, "--decode-early-stop (off by default)"),
    "iter_decode_with_external_reranker": (False, "--decode-ar-rerank"),
}


#: --decode-iterations when neither the user nor the model (``default_decode_iterations``) says otherwise
DEFAULT_DECODE_ITERATIONS = 10


@dataclass
class NATTranslationConfig(TranslationConfig):
    decoding_strategy: ChoiceEnum(["auto"] + sorted(STRATEGIES)) = field(
        default="auto", metadata={"help": "decoding algorithm; 'auto' picks the model family's default"}
    )
    decode_iterations: Optional[int] = field(
        default=None, metadata={"help": "number of decoder passes (Mask-Predict's T, SUNDAE's T, passes of DiffGLAT's "
                                        "decoder stack); default: the model's (10, or DiffGLAT's trained iterations)"}
    )
    length_beam: int = field(
        default=1, metadata={"help": "number of length candidates (top-k of the length predictor)"}
    )
    decode_samples: Optional[int] = field(
        default=None, metadata={"help": "samples decoded in parallel per length candidate, reranked by score; default: "
                                        "the model's (SUNDAE: 16 for sundae_base, 4 for sundae_small/sundae_tiny, "
                                        "1 for checkpoints of earlier versions; other models: 1)"}
    )
    decode_temperature: Optional[float] = field(
        default=None, metadata={"help": "sampling temperature for stochastic strategies; default: the model's "
                                        "(SUNDAE: 0.5, in the paper's 0.1-0.6, or 1.0 for checkpoints of earlier "
                                        "versions; other models: 1.0)"}
    )
    decode_early_stop: bool = field(
        default=False, metadata={"help": "stop refining a sentence once its prediction stops changing"}
    )
    decode_seed: Optional[int] = field(
        default=None, metadata={"help": "seed for stochastic decoding (reproducible outputs)"}
    )
    decode_ar_rerank: bool = field(
        default=False, metadata={"help": "rerank candidates with an AR model given as the second --path"}
    )
    eval_bleu_tok: bool = field(
        default=False, metadata={"help": "with --eval-bleu, also log tokenized compound-split BLEU as bleu_tok"}
    )
    sundae_update_proportion: float = field(
        default=1.0, metadata={"help": "SUNDAE: share of canvas positions updated per step (random subset, §2.2)"}
    )
    argmax_unrolled_rho: float = field(
        default=0.3, metadata={"help": "SUNDAE argmax-unrolled decoding: share rho of least certain positions unrolled"}
    )
    decode_upsample_scale: Optional[float] = field(
        default=None, metadata={"help": "DA-Transformer: graph size / source length at decoding; must match training "
                                        "(default: the trained scale, the upper end of a range)"}
    )
    decode_beta: float = field(
        default=1.0, metadata={"help": "DA-Transformer dag_lookahead: weight of the next vertex's token log-prob"}
    )
    decode_viterbi_beta: float = field(
        default=1.0, metadata={"help": "DA-Transformer dag_joint_viterbi / dag_sample_lennorm: length exponent beta "
                                       "of (sum of log-probs) / |path|^beta"}
    )
    decode_exit_layer: Optional[int] = field(
        default=None, metadata={"help": "decode from the output of the first K decoder layers (ours, for analysis: "
                                        "progressive modality learning's middle layer, DiffGLAT App. A)"}
    )
    decode_top_p: float = field(
        default=1.0, metadata={"help": "DA-Transformer dag_sample*: nucleus (top-p) of each sampled transition"}
    )
    sunmask_typical_mass: float = field(
        default=0.95, metadata={"help": "SUNMASK sampling: mass of the locally typical set (1: plain sampling)"}
    )
    decode_templates: Optional[str] = field(
        default=None, metadata={"help": "target templates for infilling: 'inline' (fairseq-interactive lines "
                                        "'SOURCE ||| TEMPLATE') or a file with one template per sentence id "
                                        "(fairseq-generate); <blank> = one free token, <gap> = a free span"}
    )
    sunmask_accept: str = field(
        default="1", metadata={"help": "SUNMASK sampling: acceptance probability P, or LO:HI for the triangular "
                                       "ramp LO -> HI -> LO over the steps"}
    )


@register_task("nat_translation", dataclass=NATTranslationConfig)
class NATTranslationTask(TranslationTask):
    cfg: NATTranslationConfig
    #: NATModelBase.build_model refuses tasks without this (fairseq's would decode NAT models as AR)
    decodes_nat_models = True

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self._sentence_counter = run_checks.TrainedSentenceCounter()
        self._inference_lines = 0  # input lines fairseq-interactive has handed over so far

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        patch_interactive()  # in-process runs may import fairseq_cli.interactive after the plugin
        data = cfg.data
        if not data:
            raise NATUserError("no data directory given (the first positional argument, e.g. data-bin/quickstart)")
        for path in data.split(os.pathsep):
            if not os.path.isdir(path):
                raise NATUserError(f"data directory {path!r} does not exist (run fairseq-preprocess first)")
        first = data.split(os.pathsep)[0]
        if cfg.source_lang and cfg.target_lang:
            for lang in (cfg.source_lang, cfg.target_lang):
                dict_path = os.path.join(first, f"dict.{lang}.txt")
                if not os.path.isfile(dict_path):
                    raise NATUserError(f"dictionary {dict_path!r} is missing: is {first!r} a fairseq-preprocess output for {cfg.source_lang}-{cfg.target_lang}?")
        try:
            return super().setup_task(cfg, **kwargs)
        except Exception as exc:  # fairseq raises bare Exceptions here
            if "Could not infer language pair" in str(exc):
                raise NATUserError(f"{exc}; pass --source-lang and --target-lang") from exc
            raise

    def build_model(self, cfg, from_checkpoint=False):
        """fairseq's model, plus ``--init-from-ar`` when a training run starts from scratch.

        ``from_checkpoint`` is True when fairseq builds the model of a saved checkpoint (generation,
        interactive use): its weights, warm-started or not, then come from that checkpoint.
        """
        model = super().build_model(cfg, from_checkpoint)
        if not from_checkpoint and isinstance(model, NATModelBase):
            warm_start_from_args(model, cfg, source_lang=self.cfg.source_lang)
        return model

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        try:
            return super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        except FileNotFoundError as exc:
            raise NATUserError(f"{exc} (split {split!r} is missing from {self.cfg.data!r})") from exc

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None):
        source = self.template_source()
        if source is not None and source.inline:
            if constraints is not None:
                raise NATUserError("--decode-templates and --constraints cannot be combined")
            constraints = source.tag(len(src_lengths))  # line keys ride in the constraints field
        dataset = super().build_dataset_for_inference(src_tokens, src_lengths, constraints=constraints)
        # fairseq-interactive builds one dataset per chunk of input lines; numbering
        # them lets errors name the input line, not the index within the chunk.
        dataset.nat_first_line = self._inference_lines + 1
        self._inference_lines += len(src_lengths)
        return dataset

    def get_batch_iterator(self, dataset, *args, **kwargs):
        import inspect

        kwargs.update(zip(list(inspect.signature(super().get_batch_iterator).parameters)[1:], args))
        max_tokens = kwargs.get("max_tokens")
        if max_tokens and kwargs.get("ignore_invalid_inputs"):
            # fairseq skips only sentences beyond --max-positions and asserts on one beyond --max-tokens
            from fairseq.utils import resolve_max_positions

            kwargs["max_positions"] = resolve_max_positions(kwargs.get("max_positions"), (max_tokens, max_tokens))
        try:
            return super().get_batch_iterator(dataset, **kwargs)
        except AssertionError as exc:
            error = run_checks.max_tokens_error(exc, dataset, max_tokens)
            if error is None:
                raise
            raise error from None

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        try:
            return super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)
        except Exception as exc:
            text = str(exc)
            match = re.search(r"sample #(\d+) is invalid \(=(.*)\) since max_positions=(.*?), skip", text)
            if match is None:
                raise
            sizes = re.findall(r"\d+", re.sub(r"int\d+", "", match.group(2)))
            limits = re.findall(r"\d+", match.group(3))
            raise NATUserError(
                f"{run_checks.line_label(dataset, match.group(1))} is too long: (source, target) lengths ({', '.join(sizes)}) exceed "
                f"the model's maximum positions ({', '.join(limits)}); shorten it, or pass "
                "--skip-invalid-size-inputs-valid-test to skip such lines"
            ) from exc

    # ---- decoding -----------------------------------------------------------
    def decoding_options(self, overrides=None):
        """Merge the task's decoding flags with ``overrides`` (e.g. ``--eval-bleu-args``)."""
        cfg = self.cfg

        def pick(name, default):
            value = getattr(overrides, name, None) if overrides is not None else None
            return default if value is None else value

        return DecodingOptions(
            iterations=pick("decode_iterations", cfg.decode_iterations),
            length_beam=pick("length_beam", cfg.length_beam),
            samples=pick("decode_samples", cfg.decode_samples),
            temperature=pick("decode_temperature", cfg.decode_temperature),
            early_stop=pick("decode_early_stop", cfg.decode_early_stop),
            seed=pick("decode_seed", cfg.decode_seed),
            extra={
                "sundae_update_proportion": pick("sundae_update_proportion", cfg.sundae_update_proportion),
                "argmax_unrolled_rho": pick("argmax_unrolled_rho", cfg.argmax_unrolled_rho),
                "decode_upsample_scale": pick("decode_upsample_scale", cfg.decode_upsample_scale),
                "decode_beta": pick("decode_beta", cfg.decode_beta),
                "decode_viterbi_beta": pick("decode_viterbi_beta", cfg.decode_viterbi_beta),
                "decode_top_p": pick("decode_top_p", cfg.decode_top_p),
                "sunmask_typical_mass": pick("sunmask_typical_mass", cfg.sunmask_typical_mass),
                "sunmask_accept": pick("sunmask_accept", cfg.sunmask_accept),
                "decode_exit_layer": pick("decode_exit_layer", cfg.decode_exit_layer),
            },
        )

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        model = models[0]
        is_nat = lambda m: isinstance(m, NATModelBase)  # noqa: E731
        run_checks.check_ensemble(models, is_nat, pick_bool(args, "decode_ar_rerank", self.cfg.decode_ar_rerank))
        if not is_nat(model):
            run_checks.check_nat_flags_unused(self.cfg, NATTranslationConfig, TranslationConfig, model)
            return super().build_generator(models, args, seq_gen_cls=seq_gen_cls, extra_gen_cls_kwargs=extra_gen_cls_kwargs, **kwargs)
        for name, (default, ours) in _FAIRSEQ_ITER_FLAGS.items():
            value = getattr(args, name, default)
            if value != default:
                hint = f"use {ours}" if ours else "it has no effect on nat_translation"
                raise NATUserError(f"--{name.replace('_', '-')} belongs to fairseq's translation_lev generator; {hint}")
        options = self.decoding_options(args)
        # Unset options take the model family's defaults (e.g. SUNDAE's tau and n, §3.1).
        for name, fallback in (("iterations", DEFAULT_DECODE_ITERATIONS), ("samples", 1), ("temperature", 1.0)):
            if getattr(options, name) is None:
                setattr(options, name, getattr(model, f"default_decode_{name}", fallback))
        if options.iterations < 1 or options.length_beam < 1 or options.samples < 1:
            raise NATUserError("--decode-iterations, --length-beam and --decode-samples must be >= 1")
        run_checks.check_decoding_values(options, model)
        name = getattr(args, "decoding_strategy", None) or self.cfg.decoding_strategy
        name = str(name)
        family = model.decoding_family
        constraints = getattr(args, "constraints", None)
        if constraints:  # fairseq's --constraints: decoding/dag_constraints.py (ours)
            if str(constraints) != "ordered":
                raise NATUserError("NAT constrained decoding keeps the phrases in the given order: "
                                   "use --constraints ordered (unordered is not supported)")
            if name == "auto" and family == "dat":
                name = "dag_joint_viterbi"
        if name == "auto":
            defaults = [s for s, c in STRATEGIES.items() if family in c.families and getattr(c, "default", True)]
            if not defaults:
                raise NATUserError(f"no decoding strategy is registered for {family} models")
            name = getattr(model, "default_strategy", None) or defaults[0]
        strategy_cls = STRATEGIES.get(name)
        if strategy_cls is None:
            raise NATUserError(f"unknown decoding strategy {name!r} (choose from {', '.join(sorted(STRATEGIES))})")
        if family not in strategy_cls.families:
            usable = sorted(s for s, c in STRATEGIES.items() if family in c.families)
            raise NATUserError(f"decoding strategy {name!r} does not apply to {family} models (use one of: {', '.join(usable)})")
        if constraints and not getattr(strategy_cls, "accepts_constraints", False):
            raise NATUserError(f"--constraints needs a DA-Transformer or DiffGLAT model decoded with dag_joint_viterbi "
                               f"(got {family} model, strategy {name})")
        model.set_exit_layer(options.extra.get("decode_exit_layer"))
        if hasattr(model, "prepare_for_decoding"):
            # Model-specific checks of the decoding options (e.g. DAT's --decode-upsample-scale).
            model.prepare_for_decoding(options)
        return NATGenerator(
            self.target_dictionary,
            strategy_cls(options),
            retain_history=getattr(args, "retain_iter_history", False),
            ar_rerank=pick_bool(args, "decode_ar_rerank", self.cfg.decode_ar_rerank),
        )

    # ---- training that trains nothing ----------------------------------------
    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        out = super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad=ignore_grad)
        if not ignore_grad:
            self._sentence_counter.add("train", out[2])
        return out

    def begin_valid_epoch(self, epoch, model):
        super().begin_valid_epoch(epoch, model)
        self._sentence_counter.reset_valid()

    def get_checkpoint_dict(self):
        # fairseq calls this just before it writes any checkpoint: the last
        # moment to refuse saving a model that never saw a usable target.
        self._sentence_counter.check("the graph is too small: raise --upsample-scale (graph size = scale x source "
                                     "length), or drop pairs whose target is much longer than the source")
        return {}

    # ---- validation BLEU ----------------------------------------------------
    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        self._sentence_counter.add("valid", logging_output)
        if self.cfg.eval_bleu and self.cfg.eval_bleu_tok:
            bleu = self._last_tok_bleu
            logging_output["_tokbleu_sys_len"] = bleu.sys_len
            logging_output["_tokbleu_ref_len"] = bleu.ref_len
            for i in range(4):
                logging_output[f"_tokbleu_counts_{i}"] = bleu.counts[i]
                logging_output[f"_tokbleu_totals_{i}"] = bleu.totals[i]
        return loss, sample_size, logging_output

    def _inference_with_bleu(self, generator, sample, model):
        # Keep fairseq's detokenized BLEU and, on request, score the same
        # hypotheses again with the NAT papers' tokenized convention.
        import sacrebleu

        from ..scoring import compound_split

        bleu = super()._inference_with_bleu(generator, sample, model)
        if self.cfg.eval_bleu_tok:
            hyps, refs = self._last_pairs
            self._last_tok_bleu = sacrebleu.corpus_bleu(
                [compound_split(h) for h in hyps], [[compound_split(r) for r in refs]], tokenize="none"
            )
        return bleu

    def template_source(self):
        """The :class:`~nat_plugins.decoding.templates.TemplateSource` of ``--decode-templates`` (or None)."""
        if not self.cfg.decode_templates:
            return None
        if getattr(self, "_template_source", None) is None:
            self._template_source = TemplateSource(self.cfg.decode_templates, self.target_dictionary)
        return self._template_source

    def get_interactive_tokens_and_lengths(self, lines, encode_fn):
        source = self.template_source()
        if source is not None and source.inline:
            lines = source.split_lines(lines, encode_fn)
        elif any(INLINE_SEPARATOR in line for line in lines) and not getattr(self, "_warned_separator", False):
            self._warned_separator = True
            logger.warning(f"nat_plugins: an input line holds '{INLINE_SEPARATOR}' but --decode-templates inline is "
                           "not set: the whole line is translated as the source")
        return super().get_interactive_tokens_and_lengths(lines, encode_fn)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        source = self.template_source()
        if source is not None and isinstance(generator, NATGenerator):
            keys, constraints = (constraints, None) if source.inline else (None, constraints)
            sample = dict(sample, templates=source.for_sample(sample, keys))
        out = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens, constraints=constraints)
        if self.cfg.eval_bleu_tok and models and models[0].training is False:
            from fairseq import utils

            def text(toks):
                return self.tgt_dict.string(toks.int().cpu(), self.cfg.eval_bleu_remove_bpe)

            self._last_pairs = (
                [text(o[0]["tokens"]) for o in out],
                [text(utils.strip_pad(t, self.tgt_dict.pad())) for t in sample["target"]],
            )
        return out

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if not (self.cfg.eval_bleu and self.cfg.eval_bleu_tok):
            return
        import numpy as np
        from fairseq import metrics
        from sacrebleu.metrics import BLEU

        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        totals = [total(f"_tokbleu_totals_{i}") for i in range(4)]
        if max(totals) <= 0:
            return
        metrics.log_scalar("_tokbleu_counts", np.array([total(f"_tokbleu_counts_{i}") for i in range(4)]))
        metrics.log_scalar("_tokbleu_totals", np.array(totals))
        metrics.log_scalar("_tokbleu_sys_len", total("_tokbleu_sys_len"))
        metrics.log_scalar("_tokbleu_ref_len", total("_tokbleu_ref_len"))

        def compute(meters):
            return round(BLEU.compute_bleu(
                correct=meters["_tokbleu_counts"].sum, total=meters["_tokbleu_totals"].sum,
                sys_len=int(meters["_tokbleu_sys_len"].sum), ref_len=int(meters["_tokbleu_ref_len"].sum),
                smooth_method="exp",
            ).score, 2)

        metrics.log_derived("bleu_tok", compute)


def pick_bool(args, name, default):
    value = getattr(args, name, None)
    return default if value is None else bool(value)
