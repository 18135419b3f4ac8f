"""CTranslate2 baseline of ``scripts/benchmarks/benchmark.py``: convert a fairseq AR
Transformer checkpoint and translate with it.

CTranslate2 is the fast AR system a user would deploy instead of a NAT
model (issue 8), so the benchmark converts the *same* AR checkpoint and
decodes the *same* binarized inputs with the *same* beam and length limits.

Loading: CTranslate2's ``FairseqConverter`` reads the checkpoint with
``torch.load(weights_only=True)`` (torch >= 2.6 default), which rejects the
``argparse.Namespace`` that fairseq pickles.  We call the converter's Python
API in-process after ``import nat_plugins`` (which allow-lists exactly those
classes, ``nat_plugins/compat.py``) and pass ``user_dir`` so checkpoints of
the ``nat_translation`` task resolve; the unsafe loader is never used.

``ctranslate2`` is optional: it is not installed by ``make setup``;
``make bench`` installs it (its wheel depends only on numpy and pyyaml,
never on torch).
"""
import hashlib
import json
import os

__all__ = ["INSTALL_HINT", "version", "convert", "CT2Runner", "decoding_options_from_fairseq"]

INSTALL_HINT = (
    "ctranslate2 is not installed: `.venv/bin/pip install 'ctranslate2>=4.5,<5'` "
    "(it needs only numpy and pyyaml; `make bench` installs it for you)"
)

#: compute types measured per device when the CTranslate2 rows are added
#: automatically (issue 8: int8 and float32 on CPU, float16 on GPU).
DEFAULT_COMPUTE_TYPES = {"cpu": ("int8", "float32"), "cuda": ("float16",)}


def version():
    """The installed ctranslate2 version, or None."""
    try:
        import ctranslate2
    except ImportError:
        return None
    return ctranslate2.__version__


def _fingerprint(path):
    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{version()}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def convert(checkpoint, data_dir, cache_dir, user_dir=None, log=print):
    """Convert ``checkpoint`` (float32 weights; the compute type is chosen
    when loading) into ``cache_dir/<fingerprint>``; reuses an earlier
    conversion of the same file (path, size, mtime, ctranslate2 version)."""
    import nat_plugins  # noqa: F401  (safe-load allow-list, task registration)
    from ctranslate2.converters import FairseqConverter

    out = os.path.join(cache_dir, _fingerprint(checkpoint))
    stamp = os.path.join(out, "converted_from.json")
    if os.path.isfile(stamp) and os.path.isfile(os.path.join(out, "model.bin")):
        log(f"ctranslate2: reusing conversion {out}")
        return out
    os.makedirs(cache_dir, exist_ok=True)
    log(f"ctranslate2: converting {checkpoint} -> {out}")
    converter = FairseqConverter(checkpoint, data_dir, user_dir=user_dir)
    converter.convert(out, force=True)
    with open(stamp, "w") as handle:
        json.dump({"checkpoint": os.path.abspath(checkpoint), "data": os.path.abspath(data_dir),
                   "ctranslate2": version()}, handle)
    return out


def decoding_options_from_fairseq(gen_cfg):
    """fairseq ``cfg.generation`` -> the matching ``translate_batch`` options.

    ``max_len_a``/``max_len_b`` are applied per batch like fairseq's
    SequenceGenerator does (from the padded source length, ``<eos>``
    included), see :meth:`CT2Runner.run`.
    """
    unsupported = []
    if getattr(gen_cfg, "sampling", False):
        unsupported.append("--sampling")
    if getattr(gen_cfg, "prefix_size", 0):
        unsupported.append("--prefix-size")
    if unsupported:
        raise ValueError(f"the CTranslate2 baseline does not mirror {', '.join(unsupported)}")
    return {
        "beam_size": int(gen_cfg.beam),
        "length_penalty": float(gen_cfg.lenpen),
        "min_decoding_length": int(gen_cfg.min_len),
        "no_repeat_ngram_size": int(getattr(gen_cfg, "no_repeat_ngram_size", 0) or 0),
        "max_len_a": float(gen_cfg.max_len_a),
        "max_len_b": int(gen_cfg.max_len_b),
    }


class CT2Runner:
    """A CTranslate2 translator behind the benchmark's runner interface.

    ``prepare(token_lists)`` takes source BPE token strings (no ``</s>``:
    the converted model appends it, as fairseq's binarized data does) and
    ``run`` returns the target token strings, ``</s>`` excluded.

    ``max_positions``: fairseq's decoder limit, so the max length clamp is
    the SequenceGenerator's ``min(a * src_len + b, max_positions - 1)``.
    """

    backend = "ctranslate2"

    def __init__(self, model_dir, compute_type, options, max_positions=1024):
        self.model_dir = model_dir
        self.compute_type = compute_type
        self.options = dict(options)
        self.max_positions = max_positions
        self.translator = None

    def activate(self, device, threads):
        import ctranslate2

        # intra_threads: the same fixed thread count as torch.set_num_threads
        # for the fairseq rows; inter_threads=1: one batch at a time.
        self.translator = ctranslate2.Translator(
            self.model_dir, device=device, compute_type=self.compute_type,
            inter_threads=1, intra_threads=threads or 0,
        )

    def deactivate(self):
        self.translator = None

    def prepare(self, token_lists):
        # fairseq's src_tokens width: longest source + <eos>
        src_len = max(len(t) for t in token_lists) + 1
        max_len = min(int(self.options["max_len_a"] * src_len + self.options["max_len_b"]),
                      self.max_positions - 1)
        return token_lists, max_len

    def run(self, prepared):
        tokens, max_len = prepared
        results = self.translator.translate_batch(
            tokens,
            beam_size=self.options["beam_size"],
            length_penalty=self.options["length_penalty"],
            min_decoding_length=self.options["min_decoding_length"],
            no_repeat_ngram_size=self.options["no_repeat_ngram_size"],
            max_decoding_length=max_len,
            max_batch_size=0,  # exactly the batch we were given
        )
        return [r.hypotheses[0] for r in results]
