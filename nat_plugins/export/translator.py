"""Translate with the exported fast path: a small API and the ``translate_fast`` CLI.

The model is set up exactly as ``fairseq-generate`` sets it up (same flag
parser, task, checkpoint loading, ``build_generator`` and strategy choice,
same hypothesis post-processing), then its passes are exported
(:func:`~nat_plugins.export.fast_model.exported_model`).  Sentences are
translated one at a time by default: batch 1 is what the path is for.

API::

    from nat_plugins.export.translator import FastTranslator
    t = FastTranslator("data-bin/quickstart", "runs/quickstart/dat/averaged.pt", ["--decode-beta", "1"])
    t.translate(["ein kleiner Test"])  # BPE'd source lines -> hypothesis strings

CLI (every flag it does not know goes to fairseq's generation parser)::

    python scripts/evaluation/translate_fast.py data-bin/quickstart --path runs/quickstart/cmlm/averaged.pt \\
        --decode-iterations 10 --length-beam 3 --remove-bpe < input.bpe.en > output.de
"""
import argparse
import copy
import os
import sys

import torch

from ..errors import NATUserError
from .fast_model import exported_model
from .runtime import BACKENDS, default_backend

__all__ = ["FastTranslator", "load_for_generation", "main"]


def load_for_generation(data, checkpoint, gen_args=(), split=None, model_cache=None, log=None):
    """``fairseq-generate``'s set-up in-process: ``(cfg, task, model, generator)``.

    Args:
        data: the fairseq-preprocess directory (dictionaries, splits).
        checkpoint: the ``.pt`` file.
        gen_args: fairseq generation flags (task, decoding).
        split: also load this split (``cfg.dataset.gen_subset``).
        model_cache: optional ``{realpath: model}`` so several configurations share one read of
            the checkpoint.  Each call still gets its own model object (a deep copy after the
            first): decoding options live on the model (DAT's graph scale, DiffGLAT's pass
            count), so two configurations of one checkpoint must not share one.
    """
    from fairseq import checkpoint_utils, options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import nat_plugins

    argv = [data, "--user-dir", os.path.dirname(nat_plugins.__file__), "--path", checkpoint, *gen_args]
    if split is not None:
        argv += ["--gen-subset", split]
    try:
        args = options.parse_args_and_arch(options.get_generation_parser(), argv)
    except SystemExit as exc:
        raise NATUserError(f"bad fairseq generation flags {list(gen_args)}") from exc
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    if not os.path.isfile(checkpoint):
        raise NATUserError(f"checkpoint {checkpoint} does not exist")
    task = tasks.setup_task(cfg.task)
    cache = {} if model_cache is None else model_cache
    key = os.path.realpath(checkpoint)
    if key in cache:
        model = copy.deepcopy(cache[key])
    else:
        if log is not None:
            log(f"loading {checkpoint}")
        models, _ = checkpoint_utils.load_model_ensemble([checkpoint], task=task)
        model = cache[key] = models[0]
    model.eval()
    model.prepare_for_inference_(cfg)
    if split is not None:
        task.load_dataset(split)
    generator = task.build_generator([model], cfg.generation)
    return cfg, task, model, generator


class FastTranslator:
    """A NAT checkpoint decoded on exported passes (CPU).

    Args:
        data: fairseq-preprocess directory of the checkpoint's dictionaries.
        checkpoint: CMLM, DAT or DiffGLAT checkpoint.
        gen_args: fairseq generation flags, as for ``fairseq-generate`` (``--task
            nat_translation`` is added when missing).
        backend: ``onnxruntime`` or ``torchscript`` (default: the first installed).
        threads: CPU threads.
        quantize: None, or ``"int8"`` (ours, ONNX Runtime; outputs may differ from fairseq-generate's).
    """

    def __init__(self, data, checkpoint, gen_args=(), backend=None, threads=1, split=None, model_cache=None,
                 quantize=None):
        gen_args = list(gen_args)
        if "--task" not in gen_args and not any(a.startswith("--task=") for a in gen_args):
            gen_args = ["--task", "nat_translation"] + gen_args
        self.cfg, self.task, model, self.generator = load_for_generation(data, checkpoint, gen_args, split,
                                                                         model_cache)
        if getattr(self.generator, "ar_rerank", False):
            raise NATUserError("--decode-ar-rerank is not supported by the exported fast path")
        self.model = exported_model(model.float().cpu(), backend or default_backend(), threads, quantize)
        self.backend = self.model.exported.backend
        self.src_dict, self.tgt_dict = self.task.source_dictionary, self.task.target_dictionary
        self.tokenizer = self.task.build_tokenizer(self.cfg.tokenizer)
        self.bpe = self.task.build_bpe(self.cfg.bpe)
        self.max_source = model.max_positions()[0] if isinstance(model.max_positions(), tuple) else None
        self.set_threads(threads)

    def set_threads(self, threads):
        torch.set_num_threads(int(threads))
        self.model.exported.set_threads(int(threads))

    def generate(self, sample):
        """fairseq's ``task.inference_step`` on the exported model: per sentence, its hypothesis dicts."""
        return self.task.inference_step(self.generator, [self.model], sample)

    def encode(self, line):
        """A source line -> ``[S]`` ids ending in ``</s>`` (as fairseq-interactive encodes it)."""
        if self.tokenizer is not None:
            line = self.tokenizer.encode(line)
        if self.bpe is not None:
            line = self.bpe.encode(line)
        ids = self.src_dict.encode_line(line, add_if_not_exist=False, append_eos=True).long()
        if self.max_source is not None and ids.numel() > self.max_source:
            raise NATUserError(f"a source line has {ids.numel()} tokens, more than the model's {self.max_source} "
                               f"positions: {line[:60]!r}...")
        return ids

    def translate_ids(self, sources, batch_size=1):
        """Best hypothesis token ids (ending in ``</s>``) for each ``[S]`` id tensor of ``sources``."""
        from fairseq.data import data_utils

        out = []
        for start in range(0, len(sources), batch_size):
            chunk = sources[start:start + batch_size]
            src = data_utils.collate_tokens(chunk, self.src_dict.pad(), self.src_dict.eos(),
                                            left_pad=self.cfg.task.left_pad_source)
            sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([s.numel() for s in chunk])}}
            out += [hypos[0]["tokens"] for hypos in self.generate(sample)]
        return out

    def to_text(self, tokens):
        """Hypothesis ids -> the string ``fairseq-generate`` prints on its ``H-`` line."""
        from fairseq import utils

        _, text, _ = utils.post_process_prediction(
            hypo_tokens=tokens.int().cpu(), src_str="", alignment=None, align_dict=None, tgt_dict=self.tgt_dict,
            remove_bpe=self.cfg.common_eval.post_process,
            extra_symbols_to_ignore=getattr(self.generator, "symbols_to_strip_from_output", None))
        if self.bpe is not None:
            text = self.bpe.decode(text)
        if self.tokenizer is not None:
            text = self.tokenizer.decode(text)
        return text

    def translate(self, lines, batch_size=1):
        """Source lines -> hypothesis strings, in order."""
        return [self.to_text(t) for t in self.translate_ids([self.encode(x) for x in lines], batch_size)]


def _user_error(error):
    """The NATUserError in ``error``'s cause chain (fairseq wraps some), or None."""
    while error is not None and not isinstance(error, NATUserError):
        error = error.__cause__ or error.__context__
    return error


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="translate_fast.py",
        description="Translate with a CMLM / DAT / DiffGLAT checkpoint on exported passes (batch 1, CPU). "
                    "Flags not listed here are fairseq generation flags (e.g. --decode-iterations, --remove-bpe).")
    parser.add_argument("data", help="fairseq-preprocess directory with the checkpoint's dictionaries")
    parser.add_argument("--path", required=True, help="checkpoint (.pt)")
    parser.add_argument("--input", default="-", help="source lines, one sentence each (default: stdin)")
    parser.add_argument("--output", default="-", help="where hypotheses go, one per line (default: stdout)")
    parser.add_argument("--backend", choices=BACKENDS, help="runtime of the passes (default: onnxruntime when installed)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1)")
    parser.add_argument("--batch-size", type=int, default=1, help="sentences per call (1)")
    parser.add_argument("--quantize", choices=("int8",),
                        help="ours, off by default: int8 weights (ONNX Runtime dynamic quantization); outputs may "
                             "then differ from fairseq-generate's")
    args, gen_args = parser.parse_known_args(argv)
    if args.threads < 1 or args.batch_size < 1:
        parser.error("--threads and --batch-size must be >= 1")
    if args.quantize and args.backend == "torchscript":
        parser.error("--quantize int8 needs --backend onnxruntime")
    try:
        translator = FastTranslator(args.data, args.path, gen_args, args.backend, args.threads,
                                    quantize=args.quantize)
        if args.input == "-":
            lines = sys.stdin.read().splitlines()
        else:
            try:
                with open(args.input, encoding="utf-8") as handle:
                    lines = handle.read().splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise NATUserError(f"cannot read --input {args.input}: {error}") from error
        hyps = translator.translate(lines, args.batch_size)
    except Exception as error:  # noqa: BLE001 - only user errors are caught, anywhere in the chain
        user_error = _user_error(error)
        if user_error is None:
            raise
        print(f"nat_plugins: error: {' '.join(str(user_error).split())}", file=sys.stderr)
        return 2
    text = "".join(h + "\n" for h in hyps)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, args.output)
    return 0
