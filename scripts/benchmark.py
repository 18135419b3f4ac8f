#!/usr/bin/env python3
"""Speed and quality of NAT decoders against fairseq AR and CTranslate2 (issue 8).

One run loads every entry's model once, in-process, then measures every
entry on the same binarized test sentences, round-robin over entries for
several repetitions (so slow drifts of machine load hit every entry alike):

* BLEU (tokenized compound-split and sacreBLEU) and chrF, through the
  functions of ``scripts/score.py``, with the same BPE removal and
  detokenization for every entry, done after the clock stops;
* **batch-1 latency**: each sentence of a fixed subset (``--latency-sentences``,
  identical for all entries) translated alone; a sentence's time is its
  median over repetitions, and the median and p90 over sentences are
  reported, after ``--warmup`` untimed translations;
* **large-batch throughput**: sentences/s and target tokens/s over batches
  of at most ``--max-tokens`` source tokens (the same batches for every
  entry); the median pass time over repetitions;
* **peak memory** added while decoding the throughput pass (RSS high-water
  mark on CPU, ``torch.cuda.max_memory_allocated`` on GPU).

CPU runs use fixed thread counts (``--threads 1,2``: ``torch.set_num_threads``
for fairseq, ``intra_threads`` for CTranslate2); ``--device auto`` adds the
GPU when one is present.

Entries are (checkpoint, decoding configuration) pairs: ``--entry``,
``--spec FILE`` (JSON/YAML list) or ``--quickstart-runs DIR`` (the models of
``examples/quickstart/models.sh`` whose ``DIR/<name>/averaged.pt`` exists,
each with its ``MODEL_<name>_GEN`` flags; the AR model twice, as listed
beam and greedy).  For every fairseq AR entry the same checkpoint is
converted to CTranslate2 and decoded with the same beam and length limits
(int8 and float32 on CPU, float16 on GPU); the float32 conversion must
reproduce fairseq's BLEU within ``--parity-tolerance`` (0.3) or the row is
marked FAILED and the exit status is 3.

Outputs in ``--out`` (default ``benchmarks/``): ``RESULTS.md`` (tables, the
parity check, and "where NAT loses, and by how much" computed from the
numbers), ``results.json`` and ``results_bleu_speed.png``.

Example::

    python scripts/benchmark.py data-bin/quickstart --raw-ref data/quickstart/raw/test.de \\
        --entry 'name=cmlm_it4,path=runs/quickstart/cmlm/averaged.pt,args="--task nat_translation --decode-iterations 4 --length-beam 3"' \\
        --entry 'name=ar_beam4,path=runs/quickstart/ar/averaged.pt,args="--task translation --beam 4 --max-len-a 1.2 --max-len-b 10"'
"""
import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import subprocess
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
for _path in (SCRIPTS, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import benchmark_ctranslate2 as ct2  # noqa: E402
import benchmark_report as report  # noqa: E402
import benchmark_timing as timing  # noqa: E402

PARITY_FAILED_EXIT = 3


class BenchmarkError(Exception):
    """Bad input: printed as one line, exit status 2."""


def log(message):
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Entry:
    """One (checkpoint, decoding configuration) row of the benchmark.

    ``args``: fairseq-generate flags (task and decoding; data, path, batch
    sizes and output flags are the benchmark's).  ``backend``: ``fairseq``
    or ``ctranslate2``; a CTranslate2 entry converts the checkpoint of the
    fairseq entry named ``source`` and copies its beam and length limits.
    """

    name: str
    path: str = None
    args: list = dataclasses.field(default_factory=list)
    backend: str = "fairseq"
    compute_type: str = None
    source: str = None
    label: str = None

    def describe(self):
        return self.label or self.name


_ENTRY_ITEM = re.compile(r"\s*(\w+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^,]*)\s*(?:,|$)")
_ENTRY_KEYS = {f.name for f in dataclasses.fields(Entry)}


def entry_from_dict(data):
    unknown = set(data) - _ENTRY_KEYS
    if unknown:
        raise BenchmarkError(f"unknown entry key(s) {sorted(unknown)} (known: {sorted(_ENTRY_KEYS)})")
    data = dict(data)
    if not data.get("name"):
        raise BenchmarkError(f"entry {data} has no name")
    if isinstance(data.get("args"), str):
        data["args"] = shlex.split(data["args"])
    entry = Entry(**data)
    if entry.backend not in ("fairseq", "ctranslate2"):
        raise BenchmarkError(f"entry {entry.name}: backend must be fairseq or ctranslate2, not {entry.backend!r}")
    if entry.backend == "fairseq" and not entry.path:
        raise BenchmarkError(f"entry {entry.name}: no path= (checkpoint)")
    if entry.backend == "ctranslate2" and not (entry.source and entry.compute_type):
        raise BenchmarkError(f"entry {entry.name}: a ctranslate2 entry needs source=<fairseq AR entry> and compute_type=")
    return entry


def parse_entry(text):
    """``name=x,path=ckpt.pt,args="--task nat_translation --decode-iterations 10"``."""
    data, pos = {}, 0
    text = text.strip()
    while pos < len(text):
        match = _ENTRY_ITEM.match(text, pos)
        if not match or match.end() == pos:
            raise BenchmarkError(f"cannot parse --entry {text!r} at {text[pos:]!r} (expected key=value,...)")
        value = match.group(2).strip()
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        data[match.group(1)] = value
        pos = match.end()
    return entry_from_dict(data)


def load_spec(path):
    """Entries from a JSON or YAML file: a list of entry dicts, or ``{"entries": [...]}``."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise BenchmarkError(f"cannot read spec {path}: {error.strerror or error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        data = yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("entries")
    if not isinstance(data, list):
        raise BenchmarkError(f"{path}: expected a list of entries (or {{'entries': [...]}})")
    return [entry_from_dict(item) for item in data]


def read_models_sh(models_sh):
    """``(ar_and_nat_names, {name: (desc, gen_flags)})`` from the quickstart
    models table, by letting bash source it (it is a bash file)."""
    script = r"""
source "$1"
for n in ar "${NAT_MODELS[@]}"; do
  g="MODEL_${n}_GEN[@]"; d="MODEL_${n}_DESC"
  printf '%s\x1f' "$n" "${!d}" "${!g}"; printf '\x1e'
done
"""
    try:
        out = subprocess.run(["bash", "-c", script, "bash", models_sh], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise BenchmarkError(f"cannot read the models table {models_sh}: {getattr(error, 'stderr', '') or error}") from error
    names, models = [], {}
    for record in out.split("\x1e"):
        fields = record.split("\x1f")[:-1]
        if len(fields) < 2:
            continue
        names.append(fields[0])
        models[fields[0]] = (fields[1], fields[2:])
    return names, models


def _flag_value(args, flag, default):
    value = default
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def quickstart_entries(run_dir, models_sh):
    """One entry per quickstart model with a checkpoint ``run_dir/<name>/averaged.pt``
    (NAT models added to ``NAT_MODELS`` appear here by themselves); the AR
    model as listed (beam 4) and greedy."""
    names, models = read_models_sh(models_sh)
    entries = []
    for name in names:
        path = os.path.join(run_dir, name, "averaged.pt")
        if not os.path.isfile(path):
            log(f"quickstart: no checkpoint for '{name}' ({path}), skipped")
            continue
        desc, gen = models[name]
        if name == "ar":
            beam = _flag_value(gen, "--beam", "5")
            entries.append(Entry(f"ar_beam{beam}", path, list(gen), label=f"fairseq AR, beam {beam}"))
            if beam != "1":
                entries.append(Entry("ar_greedy", path, list(gen) + ["--beam", "1"], label="fairseq AR, greedy"))
        else:
            entries.append(Entry(name, path, list(gen), label=desc))
    if not entries:
        raise BenchmarkError(f"no quickstart checkpoints under {run_dir}: run `make quickstart` (MODELS=all for every NAT model) first")
    return entries


# --------------------------------------------------------------------------
# Runners: prepare (untimed) -> run (timed) -> tokens (untimed)
# --------------------------------------------------------------------------


class FairseqRunner:
    """A fairseq checkpoint decoded through its task's ``build_generator``:
    the plugin's NATGenerator for NAT models, fairseq's SequenceGenerator
    (incremental decoding) for AR Transformers."""

    backend = "fairseq"
    compute_type = "float32"

    def __init__(self, entry, data, split, model_cache, fp16=False):
        import torch
        from fairseq import checkpoint_utils, options, tasks, utils
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        import nat_plugins
        from nat_plugins.modules.nat_base import NATModelBase

        self.entry, self.name, self.fp16 = entry, entry.name, fp16
        user_dir = os.path.dirname(nat_plugins.__file__)
        argv = [data, "--user-dir", user_dir, "--path", entry.path, "--gen-subset", split, *entry.args]
        parser = options.get_generation_parser()
        try:
            args = options.parse_args_and_arch(parser, argv)
        except SystemExit as exc:
            raise BenchmarkError(f"entry {entry.name}: bad fairseq flags {entry.args}") from exc
        cfg = convert_namespace_to_omegaconf(args)
        utils.import_user_module(cfg.common)
        self.cfg = cfg
        self.task = tasks.setup_task(cfg.task)
        key = os.path.realpath(entry.path)
        if key not in model_cache:
            log(f"loading {entry.path}")
            models, _ = checkpoint_utils.load_model_ensemble([entry.path], task=self.task)
            model_cache[key] = models[0]
        self.model = model_cache[key]
        self.model.eval()
        self.model.prepare_for_inference_(cfg)
        self.models = [self.model]
        self.task.load_dataset(split)
        self.dataset = self.task.dataset(split)
        self.src_dict, self.tgt_dict = self.task.source_dictionary, self.task.target_dictionary
        self.is_nat = isinstance(self.model, NATModelBase)
        self.kind = "NAT" if self.is_nat else "AR"
        self.generator = self.task.build_generator(self.models, cfg.generation)
        self.beam = None if self.is_nat else int(cfg.generation.beam)
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


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


def configurations(device, threads):
    import torch

    configs = []
    if device in ("cpu", "auto"):
        configs += [("cpu", t) for t in threads]
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda but torch sees no GPU")
        configs.append(("cuda", None))
    return configs


def config_key(device, threads):
    return f"{device}" if threads is None else f"{device}-{threads}t"


def measure(runners, configs, latency_ids, batches, reps, warmup):
    """Round-robin measurement.  Returns ``(rows, outputs)``: one row per
    (runner, configuration), and per runner the outputs of its first
    throughput pass (id -> output), for scoring."""
    import torch

    rows, first_outputs, signatures = [], {}, {}
    for device, threads in configs:
        key = config_key(device, threads)
        if device == "cpu":
            torch.set_num_threads(threads)
        active = [r for r in runners if r.supports(device)]
        if not active:
            continue
        log(f"[{key}] preparing {len(active)} entries")
        prepared = {}
        for r in active:
            r.activate(device, threads)
            prepared[r.name] = ([r.prepare([i]) for i in latency_ids], [r.prepare(b) for b in batches])
        # Warm-up (untimed): first calls allocate buffers and pick kernels.
        for r in active:
            singles, full = prepared[r.name]
            for p in singles[:warmup]:
                r.run(p)
            if full:
                r.run(full[0])
        lat = {r.name: [[] for _ in latency_ids] for r in active}
        passes = {r.name: [] for r in active}
        mem = {r.name: [] for r in active}
        tokens = {}
        for rep in range(reps):
            # rotate the order so no entry always runs first after another's pass
            order = active[rep % len(active):] + active[: rep % len(active)]
            for r in order:
                singles, full = prepared[r.name]
                secs, _ = timing.measure_latency(r, singles, r.sync())
                for j, s in enumerate(secs):
                    lat[r.name][j].append(s)
                with timing.PeakMemory(device, torch_visible=r.backend == "fairseq") as peak:
                    total, outs = timing.measure_throughput(r, full, r.sync())
                passes[r.name].append(total)
                mem[r.name].append((peak.mib, peak.exact))
                if rep == 0:
                    by_id = {i: out for b, o in zip(batches, outs) for i, out in zip(b, o)}
                    tokens[r.name] = sum(len(r.tokens(o)) for o in by_id.values())
                    first_outputs.setdefault(r.name, by_id)
                    digest = hashlib.sha1(repr(sorted(by_id.items())).encode()).hexdigest()
                    signatures.setdefault(r.name, {})[key] = digest
            log(f"[{key}] repetition {rep + 1}/{reps} done")
        for r in active:
            seconds = timing.median(passes[r.name])
            n = sum(len(b) for b in batches)
            peaks = [m for m, _ in mem[r.name] if m is not None]
            rows.append({
                "entry": r.name,
                "config": key,
                "device": device,
                "threads": threads,
                "compute_type": r.compute_type,
                "latency": timing.summarize_latency(lat[r.name]),
                "throughput": {
                    "sentences": n,
                    "target_tokens": tokens[r.name],
                    "seconds_per_pass": [round(s, 4) for s in passes[r.name]],
                    "sentences_per_s": n / seconds if seconds else None,
                    "target_tokens_per_s": tokens[r.name] / seconds if seconds else None,
                },
                "peak_memory_mib": max(peaks) if peaks else None,
                "peak_memory_exact": all(e for _, e in mem[r.name]),
            })
            r.deactivate()
    return rows, first_outputs, signatures


# --------------------------------------------------------------------------
# Quality and parity (outside every timed region)
# --------------------------------------------------------------------------


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


def parity_checks(entries_info, hyps, tolerance):
    """CTranslate2 rows against the fairseq entry they were converted from.

    The float32 conversion is the conversion check (enforced): both BLEUs
    within ``tolerance``.  Quantized/half rows report their delta only.
    """
    checks = []
    for info in entries_info.values():
        if info["backend"] != "ctranslate2":
            continue
        src = entries_info[info["source"]]
        same = sum(a == b for a, b in zip(hyps[info["name"]], hyps[src["name"]]))
        d_tok = info["quality"]["bleu_tok"] - src["quality"]["bleu_tok"]
        d_sacre = info["quality"]["sacrebleu"] - src["quality"]["sacrebleu"]
        enforced = info["compute_type"] == "float32"
        ok = abs(d_tok) <= tolerance + 1e-9 and abs(d_sacre) <= tolerance + 1e-9
        check = {
            "entry": info["name"], "against": src["name"], "compute_type": info["compute_type"],
            "bleu_tok_delta": round(d_tok, 2), "sacrebleu_delta": round(d_sacre, 2),
            "identical_hypotheses": same, "sentences": len(hyps[src["name"]]),
            "tolerance": tolerance, "enforced": enforced, "ok": ok,
        }
        info["parity"] = check
        checks.append(check)
    return checks


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def machine_info():
    import torch

    cpu = re.search(r"^model name\s*:\s*(.*)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", _read("/proc/meminfo"), re.M)
    info = {
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "os": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions():
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "ctranslate2": ct2.version()}
    for name, dist in (("fairseq", "fairseq-fixed"), ("nat_plugins", "nat_plugins"), ("sacrebleu", "sacrebleu"),
                       ("numpy", "numpy")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out["fairseq"] is None:
        import fairseq

        out["fairseq"] = getattr(fairseq, "__version__", None)
    return out


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="benchmark.py",
        description=__doc__.split("\n\n")[0] + ": batch-1 latency, large-batch throughput, memory, BLEU/chrF.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", help="binarized data directory (fairseq-preprocess output)")
    parser.add_argument("--split", default="test", help="split to translate (default: test)")
    parser.add_argument("--entry", action="append", default=[], metavar="SPEC",
                        help='name=NAME,path=CKPT,args="FAIRSEQ GENERATION FLAGS"[,label=TEXT] '
                             "(or backend=ctranslate2,source=ENTRY,compute_type=int8); repeatable")
    parser.add_argument("--spec", help="JSON/YAML file with a list of entries (same keys as --entry)")
    parser.add_argument("--quickstart-runs", metavar="DIR",
                        help="add the quickstart models that have DIR/<name>/averaged.pt (e.g. runs/quickstart)")
    parser.add_argument("--models-sh", default=os.path.join(ROOT, "examples", "quickstart", "models.sh"),
                        help="the quickstart models table (GEN flags per model)")
    parser.add_argument("--raw-ref", help="untokenized reference of the split, for sacreBLEU and chrF")
    parser.add_argument("--lang", help="target language for Moses detokenization (default: the task's target)")
    parser.add_argument("--latency-sentences", type=int, default=200,
                        help="sentences in the batch-1 latency subset (default 200; 0 = all)")
    parser.add_argument("--throughput-sentences", type=int, default=0,
                        help="sentences in the throughput/quality set (default 0 = the whole split)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="source tokens per throughput batch (4096)")
    parser.add_argument("--max-sentences", type=int, help="optional cap on sentences per throughput batch")
    parser.add_argument("--reps", type=int, default=3, help="round-robin repetitions, medians reported (3)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batch-1 translations per entry first (10)")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts, comma-separated (1,2)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="cpu, cuda, or auto = cpu plus the GPU when present (auto)")
    parser.add_argument("--fp16", action="store_true", help="run fairseq models in float16 on GPU")
    parser.add_argument("--ctranslate2", choices=("auto", "on", "off"), default="auto",
                        help="CTranslate2 rows for every fairseq AR entry: auto = when installed; "
                             "on = fail if not installed (auto)")
    parser.add_argument("--ct2-cache", default=os.path.join(ROOT, "runs", "benchmark", "ctranslate2"),
                        help="where converted CTranslate2 models are kept")
    parser.add_argument("--parity-tolerance", type=float, default=0.3,
                        help="max BLEU difference of the float32 CTranslate2 conversion vs fairseq (0.3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the latency/throughput subsets (1)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks"),
                        help="output folder for RESULTS.md, results.json, results_bleu_speed.png")
    parser.add_argument("--note", help="a remark recorded in the report (e.g. 'machine shared with training jobs')")
    args = parser.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads needs at least one count >= 1")
    if args.reps < 1 or args.warmup < 0 or args.max_tokens < 1:
        parser.error("--reps and --max-tokens must be >= 1, --warmup >= 0")
    return args


def collect_entries(args):
    entries = []
    if args.quickstart_runs:
        entries += quickstart_entries(args.quickstart_runs, args.models_sh)
    if args.spec:
        entries += load_spec(args.spec)
    entries += [parse_entry(text) for text in args.entry]
    if not entries:
        raise BenchmarkError("no entries: give --entry, --spec or --quickstart-runs")
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BenchmarkError(f"duplicate entry names {dupes}")
    for e in entries:
        if e.backend == "fairseq" and not os.path.isfile(e.path):
            raise BenchmarkError(f"entry {e.name}: checkpoint {e.path} does not exist")
    return entries


def add_ctranslate2_entries(entries, runners, mode, configs):
    """One CTranslate2 entry per (fairseq AR entry, compute type of each device measured)."""
    if mode == "off":
        return []
    if ct2.version() is None:
        if mode == "on":
            raise BenchmarkError(ct2.INSTALL_HINT)
        log(f"no CTranslate2 rows: {ct2.INSTALL_HINT}")
        return []
    devices = {d for d, _ in configs}
    explicit = {(e.source, e.compute_type) for e in entries if e.backend == "ctranslate2"}
    added = []
    for r in runners:
        if r.backend != "fairseq" or r.is_nat:
            continue
        for device in sorted(devices):
            for compute_type in ct2.DEFAULT_COMPUTE_TYPES.get(device, ()):
                if (r.name, compute_type) in explicit:
                    continue
                added.append(Entry(f"ct2_{compute_type}_{r.name}", backend="ctranslate2", compute_type=compute_type,
                                   source=r.name, label=f"CTranslate2 {compute_type}, {r.entry.describe()}"))
    return added


def run(args, argv_for_record):
    import nat_plugins  # noqa: F401  (compat shims + registration before any checkpoint is read)

    entries = collect_entries(args)
    configs = configurations(args.device, args.threads)
    model_cache, runners = {}, []
    for e in entries:
        if e.backend == "fairseq":
            runners.append(FairseqRunner(e, args.data, args.split, model_cache, fp16=args.fp16))
    by_name = {r.name: r for r in runners}
    ct2_entries = [e for e in entries if e.backend == "ctranslate2"]
    ct2_entries += add_ctranslate2_entries(entries, runners, args.ctranslate2, configs)
    if ct2_entries and ct2.version() is None:
        raise BenchmarkError(ct2.INSTALL_HINT)
    user_dir = os.path.dirname(nat_plugins.__file__)
    for e in ct2_entries:
        src = by_name.get(e.source)
        if src is None or src.is_nat:
            raise BenchmarkError(f"entry {e.name}: source {e.source!r} is not a fairseq AR entry")
        model_dir = ct2.convert(src.entry.path, args.data, args.ct2_cache, user_dir=user_dir, log=log)
        runners.append(CT2EntryRunner(e, src, model_dir))

    sizes = {len(r.dataset) for r in runners}
    if len(sizes) != 1:
        raise BenchmarkError(f"entries see different {args.split} splits (sizes {sorted(sizes)})")
    total = sizes.pop()
    first = runners[0]
    latency_ids = choose_ids(total, args.latency_sentences, args.seed)
    quality_ids = choose_ids(total, args.throughput_sentences, args.seed)
    batches = make_batches(first.dataset, quality_ids, args.max_tokens, args.max_sentences)
    raw_refs = None
    if args.raw_ref:
        import score

        lines = score.read_lines(args.raw_ref)
        if len(lines) != total:
            raise BenchmarkError(f"--raw-ref has {len(lines)} lines but split {args.split} has {total} sentences")
        raw_refs = [lines[i] for i in quality_ids]
    lang = args.lang or getattr(first.task.cfg, "target_lang", None) or "de"
    refs = references(first, quality_ids)

    log(f"{len(runners)} entries x {len(configs)} configurations x {args.reps} repetitions; "
        f"latency on {len(latency_ids)} sentences, throughput on {len(quality_ids)} in {len(batches)} batches")
    machine = machine_info()
    rows, outputs, signatures = measure(runners, configs, latency_ids, batches, args.reps, args.warmup)
    try:
        machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass

    entries_info, hyps = {}, {}
    for r in list(runners):
        if r.name not in outputs:
            log(f"entry {r.name}: no measured configuration runs it (it needs device {r.device}); left out")
            runners.remove(r)
            continue
        quality, hyps[r.name] = score_outputs(r, outputs[r.name], quality_ids, refs, raw_refs, lang)
        sig = signatures.get(r.name, {})
        entries_info[r.name] = {
            "name": r.name, "label": r.entry.describe(), "kind": r.kind, "backend": r.backend,
            "compute_type": r.compute_type if r.backend == "ctranslate2" else None,
            "source": r.entry.source, "path": r.entry.path or r.source.entry.path,
            "args": shlex.join(r.entry.args) if r.entry.args else None,
            "decoding": r.describe_decoding(), "beam": r.beam, "params": r.params, "weights_mib": round(r.weights_mib, 2),
            "quality": dict({k: quality[k] for k in ("bleu_tok", "sacrebleu", "chrf", "sentences")},
                            length_ratio=round(quality["bleu_tok_detail"]["hyp_len"]
                                               / max(1, quality["bleu_tok_detail"]["ref_len"]), 3)),
            "outputs_identical_across_configs": len(set(sig.values())) <= 1,
        }
    checks = parity_checks(entries_info, hyps, args.parity_tolerance)
    for c in checks:
        status = "ok" if c["ok"] else ("FAILED" if c["enforced"] else "outside tolerance (quantization, not enforced)")
        line = (f"parity {c['entry']} vs {c['against']}: BLEU(tok) {c['bleu_tok_delta']:+.2f}, "
                f"sacreBLEU {c['sacrebleu_delta']:+.2f}, identical hypotheses {c['identical_hypotheses']}/"
                f"{c['sentences']} -> {status}")
        log(line if c["ok"] or not c["enforced"] else "!" * 8 + " " + line + " " + "!" * 8)

    results = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": argv_for_record,
            "machine": machine,
            "versions": versions(),
            "note": args.note,
            "data": args.data, "split": args.split, "lang": lang,
            "settings": {
                "reps": args.reps, "warmup": args.warmup, "latency_sentences": len(latency_ids),
                "throughput_sentences": len(quality_ids), "batches": len(batches), "max_tokens": args.max_tokens,
                "max_sentences": args.max_sentences, "threads": args.threads, "device": args.device,
                "fp16": args.fp16, "seed": args.seed, "parity_tolerance": args.parity_tolerance,
            },
        },
        "entries": list(entries_info.values()),
        "rows": rows,
        "parity": checks,
    }
    results["comparisons"] = report.comparisons(results)
    paths = report.write_all(results, args.out)
    for p in paths:
        log(f"wrote {p}")
    print(report.markdown_table(results))
    failed = [c for c in checks if c["enforced"] and not c["ok"]]
    if failed:
        log(f"CTranslate2 conversion parity FAILED for {', '.join(c['entry'] for c in failed)} "
            f"(|BLEU delta| > {args.parity_tolerance}); rows are marked FAILED in the report")
        return PARITY_FAILED_EXIT
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    record = "python scripts/benchmark.py " + shlex.join(argv)
    try:
        from nat_plugins.errors import NATUserError
    except ImportError:  # pragma: no cover - fairseq missing: run() fails clearly anyway
        NATUserError = BenchmarkError
    try:
        return run(args, record)
    except (BenchmarkError, NATUserError) as error:
        print(f"benchmark.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
