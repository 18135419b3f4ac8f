"""Runners of ``scripts/benchmarks/benchmark.py``: one per entry backend, each with the same protocol
``prepare(ids)`` (untimed) -> ``run(prepared)`` (timed) -> ``tokens(output)`` (untimed);
plus the inputs every entry shares (batches, subsets) and quality scoring.
"""
import os
import random

import benchmark_ctranslate2 as ct2
from benchmark_entries import log

__all__ = ["CT2EntryRunner", "FairseqRunner", "FastRunner", "choose_ids", "make_batches", "references", "score_outputs"]


class FairseqRunner:
    """A fairseq checkpoint decoded through its task's ``build_generator``:
    the plugin's NATGenerator for NAT models, fairseq's SequenceGenerator
    (incremental decoding) for AR Transformers."""

    backend = "fairseq"
    compute_type = "float32"

    def __init__(self, entry, data, split, model_cache, fp16=False):
        import torch

        from nat_plugins.export.translator import load_for_generation
        from nat_plugins.modules.nat_base import NATModelBase

        self.entry, self.name, self.fp16 = entry, entry.name, fp16
        self.cfg, self.task, self.model, self.generator = load_for_generation(
            data, entry.path, entry.args, split, model_cache, log=log)
        self.models = [self.model]
        self.dataset = self.task.dataset(split)
        self.src_dict, self.tgt_dict = self.task.source_dictionary, self.task.target_dictionary
        self.is_nat = isinstance(self.model, NATModelBase)
        self.kind = "NAT" if self.is_nat else "AR"
        self.beam = None if self.is_nat else int(self.cfg.generation.beam)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.weights_mib = sum(p.numel() * p.element_size() for p in self.model.parameters()) / 2**20
        self.strip = {self.tgt_dict.eos(), self.tgt_dict.bos(), self.tgt_dict.pad()}
        self._torch = torch
        self.device = "cpu"

    def supports(self, device):
        return True

    def activate(self, device, threads):
        self.device = device
        if device == "cuda":
            if self.fp16:
                self.model.half()
                self.compute_type = "float16"
            self.model.cuda()
        else:
            self.model.float().cpu()
            self.compute_type = "float32"

    def deactivate(self):
        pass

    def sync(self):
        return self._torch.cuda.synchronize if self.device == "cuda" else None

    def prepare(self, ids):
        from fairseq import utils

        sample = self.dataset.collater([self.dataset[i] for i in ids])
        if self.device == "cuda":
            sample = utils.move_to_cuda(sample)
        # the collater sorts by source length; remember where each id went
        pos = {sid: j for j, sid in enumerate(sample["id"].tolist())}
        return sample, [pos[i] for i in ids]

    def run(self, prepared):
        sample, order = prepared
        hypos = self.task.inference_step(self.generator, self.models, sample)
        return [hypos[j][0]["tokens"].tolist() for j in order]

    def tokens(self, output):
        return [self.tgt_dict[i] for i in output if i not in self.strip]

    def describe_decoding(self):
        gen = self.cfg.generation
        if self.is_nat:
            t = self.cfg.task
            return (f"{self.generator.strategy.name}, T={self.generator.options.iterations}, length beam {t.length_beam}, "
                    f"samples {t.decode_samples}")
        return f"beam {gen.beam}, max len {gen.max_len_a}*src+{gen.max_len_b}, incremental"


class CT2EntryRunner:
    """The CTranslate2 conversion of a fairseq AR entry (same inputs, beam, limits)."""

    backend = "ctranslate2"

    def __init__(self, entry, source_runner, model_dir):
        self.entry, self.name = entry, entry.name
        self.source = source_runner
        self.kind = "AR"
        self.is_nat = False
        self.compute_type = entry.compute_type
        self.device = self.device_for(entry.compute_type)
        options = ct2.decoding_options_from_fairseq(source_runner.cfg.generation)
        self.impl = ct2.CT2Runner(model_dir, entry.compute_type, options,
                                  max_positions=source_runner.model.max_decoder_positions())
        self.options = options
        self.beam = options["beam_size"]
        self.params = source_runner.params
        self.weights_mib = os.path.getsize(os.path.join(model_dir, "model.bin")) / 2**20  # float32 on disk
        self.dataset, self.src_dict = source_runner.dataset, source_runner.src_dict
        eos = self.src_dict.eos()
        self._source_tokens = {}

        def source_tokens(i):
            if i not in self._source_tokens:
                self._source_tokens[i] = [self.src_dict[t] for t in self.dataset[i]["source"].tolist() if t != eos]
            return self._source_tokens[i]

        self.source_tokens = source_tokens

    @staticmethod
    def device_for(compute_type):
        return "cuda" if "16" in compute_type else "cpu"

    def supports(self, device):
        return device == self.device

    def activate(self, device, threads):
        self.impl.activate(device, threads)

    def deactivate(self):
        self.impl.deactivate()

    def sync(self):
        return None  # translate_batch returns when the work is done

    def prepare(self, ids):
        return self.impl.prepare([self.source_tokens(i) for i in ids])

    def run(self, prepared):
        return self.impl.run(prepared)

    def tokens(self, output):
        return list(output)

    def describe_decoding(self):
        o = self.options
        return f"beam {o['beam_size']}, max len {o['max_len_a']}*src+{o['max_len_b']}, {self.compute_type}"


class FastRunner(FairseqRunner):
    """A fairseq NAT entry decoded on exported passes (:mod:`nat_plugins.export`): same task,
    flags, generator and strategy as its source entry; CPU only."""

    def __init__(self, entry, source_runner):
        from nat_plugins.export.fast_model import exported_model

        src = source_runner
        self.entry, self.name, self.fp16, self.source = entry, entry.name, False, src
        self.cfg, self.task, self.dataset = src.cfg, src.task, src.dataset
        self.src_dict, self.tgt_dict, self.strip = src.src_dict, src.tgt_dict, src.strip
        self.is_nat, self.kind, self.beam = True, "NAT", None
        self.params, self.weights_mib = src.params, src.weights_mib
        self._torch, self.device = src._torch, "cpu"
        self.backend, self.compute_type = entry.backend, entry.compute_type or "float32"
        model = src.model.float().cpu()
        # Build the generator again: it applies this entry's decoding options to the model
        # (another entry may share the checkpoint), and DiffGLAT's pass count is traced.
        self.generator = self.task.build_generator([model], self.cfg.generation)
        self.model = exported_model(model, entry.backend, quantize=None if self.compute_type == "float32" else "int8")
        self.models = [self.model]

    def supports(self, device):
        return device == "cpu"

    def activate(self, device, threads):
        self.model.exported.set_threads(threads)

    def describe_decoding(self):
        return f"{FairseqRunner.describe_decoding(self)}; encoder and decoder passes on {self.backend} {self.compute_type}"


def source_length(dataset, i):
    return int(dataset.src_sizes[i])


def make_batches(dataset, ids, max_tokens, max_sentences=None):
    """Pack ``ids`` (sorted by source length) into batches whose padded
    source (``<eos>`` included) holds at most ``max_tokens`` tokens.

    Source only: a NAT model's target canvas is not known before decoding.
    Every entry gets exactly these batches.
    """
    order = sorted(ids, key=lambda i: (source_length(dataset, i), i))
    batches, batch, width = [], [], 0
    for i in order:
        new_width = max(width, source_length(dataset, i))
        full = max_sentences is not None and len(batch) >= max_sentences
        if batch and (new_width * (len(batch) + 1) > max_tokens or full):
            batches.append(batch)
            batch, new_width = [], source_length(dataset, i)
        batch.append(i)
        width = new_width
    if batch:
        batches.append(batch)
    return batches


def choose_ids(total, count, seed):
    """A fixed subset: ``count`` ids drawn with ``seed`` (all when count<=0
    or >= total), in id order."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted(random.Random(seed).sample(range(total), count))


def references(runner, ids):
    import score

    tgt = runner.tgt_dict
    strip = {tgt.eos(), tgt.bos(), tgt.pad()}
    return [score.remove_bpe(" ".join(tgt[t] for t in runner.dataset[i]["target"].tolist() if t not in strip))
            for i in ids]


def score_outputs(runner, by_id, ids, refs, raw_refs, lang):
    import score

    hyps = [score.remove_bpe(" ".join(runner.tokens(by_id[i]))) for i in ids]
    result = score.score_corpus(hyps, refs, lang=lang, tokenized=True, bpe=False, detok_refs=raw_refs)
    return result, hyps
