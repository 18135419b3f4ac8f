"""Entries of ``scripts/benchmarks/benchmark.py``: what is measured, from ``--entry``, ``--spec``,
``--quickstart-runs``, and the rows added for every fairseq entry (its CTranslate2
conversions, its exported fast path).
"""
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys

import benchmark_ctranslate2 as ct2

__all__ = ["BenchmarkError", "Entry", "FAST_BACKENDS", "add_ctranslate2_entries", "add_fast_entries", "entry_from_dict",
           "load_spec", "log", "parse_entry", "quickstart_entries", "read_models_sh"]

#: entry backends of the exported fast path (:mod:`nat_plugins.export`)
FAST_BACKENDS = ("onnxruntime", "torchscript")


class BenchmarkError(Exception):
    """Bad input: printed as one line, exit status 2."""


def log(message):
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Entry:
    """One (checkpoint, decoding configuration) row of the benchmark.

    ``args``: fairseq-generate flags (task and decoding; data, path, batch
    sizes and output flags are the benchmark's).  ``backend``: ``fairseq``,
    ``ctranslate2``, ``onnxruntime`` or ``torchscript``.  A CTranslate2 entry
    converts the checkpoint of the fairseq AR entry named ``source`` and copies
    its beam and length limits; an ``onnxruntime``/``torchscript`` entry decodes
    the fairseq NAT entry ``source`` with its passes exported (same flags).
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
    if entry.backend not in ("fairseq", "ctranslate2") + FAST_BACKENDS:
        raise BenchmarkError(f"entry {entry.name}: backend must be one of fairseq, ctranslate2, "
                             f"{', '.join(FAST_BACKENDS)}, not {entry.backend!r}")
    if entry.backend == "fairseq" and not entry.path:
        raise BenchmarkError(f"entry {entry.name}: no path= (checkpoint)")
    if entry.backend == "ctranslate2" and not (entry.source and entry.compute_type):
        raise BenchmarkError(f"entry {entry.name}: a ctranslate2 entry needs source=<fairseq AR entry> and compute_type=")
    if entry.backend in FAST_BACKENDS and not entry.source:
        raise BenchmarkError(f"entry {entry.name}: a {entry.backend} entry needs source=<fairseq NAT entry>")
    if entry.backend in FAST_BACKENDS and entry.compute_type not in (None, "float32", "int8"):
        raise BenchmarkError(f"entry {entry.name}: compute_type must be float32 or int8, not {entry.compute_type!r}")
    if entry.backend == "torchscript" and entry.compute_type == "int8":
        raise BenchmarkError(f"entry {entry.name}: int8 needs backend=onnxruntime")
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


def add_fast_entries(entries, runners, mode, families):
    """Two exported fast-path entries (ONNX Runtime float32 and int8) per fairseq NAT entry of a
    family in ``families``: the float32 one must reproduce the entry's hypotheses; int8 (ours)
    is the counterpart of CTranslate2's int8 rows.

    ``mode``: ``off``; ``auto`` (when onnxruntime is installed); ``on`` (fail when it is not).
    """
    from nat_plugins.export import runtime

    if mode == "off":
        return []
    if "onnxruntime" not in runtime.available_backends():
        if mode == "on":
            raise BenchmarkError(runtime.INSTALL_HINT)
        log(f"no exported fast-path rows: {runtime.INSTALL_HINT}")
        return []
    explicit = {(e.source, e.compute_type or "float32") for e in entries if e.backend == "onnxruntime"}
    added = []
    for r in runners:
        if r.backend != "fairseq" or not r.is_nat or getattr(r.model, "decoding_family", None) not in families:
            continue
        for ctype, prefix in (("float32", "fast"), ("int8", "fast_int8")):
            if (r.name, ctype) not in explicit:
                added.append(Entry(f"{prefix}_{r.name}", backend="onnxruntime", compute_type=ctype, source=r.name,
                                   label=f"exported passes (ONNX Runtime {ctype}), {r.entry.describe()}"))
    return added
