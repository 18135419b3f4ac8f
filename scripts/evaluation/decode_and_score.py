#!/usr/bin/env python3
"""Average checkpoints, run several ``fairseq-generate`` commands and score each output, in one process.

An evaluation averages the checkpoints of several models and decodes the
same test set with many settings (models, strategies, iterations).  Every
command-line start-up imports fairseq and its plugins, seconds each; here
that cost is paid once, and each step is still exactly the command-line
tool: ``--average MODE N DIR OUTPUT`` is
``scripts/evaluation/average_checkpoints.py --MODE N --dir DIR --output OUTPUT``
(skipped when OUTPUT is newer than every checkpoint in DIR), and a job's
arguments are parsed by fairseq's own generation parser and run by
``fairseq_cli.generate.main``, so a job behaves as
``fairseq-generate ARGS > PREFIX.out`` would.  Averaging runs first.

Per job (``--job MODEL SETTING PREFIX ARGS``, repeatable; ARGS shell-quoted):

* ``PREFIX.out``: the generate output (``S-/T-/H-/D-`` lines), written to a
  temporary file and renamed when complete; skipped when it is newer than
  every checkpoint named in ``--path``;
* ``PREFIX.json``: ``scripts/evaluation/score.py --json`` of it (tokenized
  compound-split BLEU, sacreBLEU with signature, chrF, against ``--raw-ref``
  for the detokenized metrics), plus the decoding speed fairseq logged;
  redone when older than ``PREFIX.out``.

``--expect-sentences N`` fails a job whose output does not cover N
sentences (e.g. fairseq dropping a batch).  ``--report FILE`` writes one
markdown table of every job.
"""
import argparse
import contextlib
import glob
import io
import json
import logging
import os
import re
import shlex
import sys

import average_checkpoints  # beside this script (its folder is on sys.path whether run or imported)
import score

_SPEED = re.compile(r"Translated ([\d,]+) sentences .*\(([\d.]+) sentences/s")


class JobError(RuntimeError):
    """A job that cannot run or produced unusable output."""


def checkpoints_of(argv):
    """The checkpoint files named by ``--path`` in a fairseq-generate argv."""
    for i, arg in enumerate(argv):
        if arg == "--path" and i + 1 < len(argv):
            return argv[i + 1].split(os.pathsep)
        if arg.startswith("--path="):
            return arg.split("=", 1)[1].split(os.pathsep)
    raise JobError("no --path in the fairseq-generate arguments")


def is_newer(path, inputs):
    """True when ``path`` exists and is at least as new as every existing input."""
    if not os.path.exists(path):
        return False
    stamps = [os.path.getmtime(p) for p in inputs if os.path.exists(p)]
    return not stamps or os.path.getmtime(path) >= max(stamps)


class _SpeedRecorder(logging.Handler):
    """Keeps the last "Translated N sentences ... (X sentences/s)" message of fairseq-generate."""

    def __init__(self):
        super().__init__()
        self.speed = None

    def emit(self, record):
        match = _SPEED.search(record.getMessage())
        if match:
            self.speed = float(match.group(2))


def run_generate(argv, out_path):
    """``fairseq-generate argv > out_path`` in this process; returns sentences/s or ``None``."""
    from fairseq import options
    from fairseq_cli import generate

    parser = options.get_generation_parser()
    try:
        args = options.parse_args_and_arch(parser, argv)
    except SystemExit as exit_:  # argparse has printed why
        raise JobError(f"fairseq-generate rejected the arguments (exit status {exit_.code})") from None
    recorder = _SpeedRecorder()
    logger = logging.getLogger("fairseq_cli.generate")
    logger.addHandler(recorder)
    tmp = f"{out_path}.part"
    try:
        with open(tmp, "w", encoding="utf-8") as handle, contextlib.redirect_stdout(handle):
            generate.main(args)
        os.replace(tmp, out_path)
    except Exception as error:  # fairseq and the plugin raise many kinds; one line each
        raise JobError(f"fairseq-generate failed: {type(error).__name__}: {error}") from error
    finally:
        logger.removeHandler(recorder)
        if os.path.exists(tmp):  # a failed or interrupted job leaves no partial output behind
            os.remove(tmp)
    return recorder.speed


def score_output(out_path, raw_ref, lang):
    """``score.py OUT --raw-ref RAW_REF --lang LANG --json`` as a dict."""
    buffer = io.StringIO()
    argv = [out_path, "--lang", lang, "--json"] + (["--raw-ref", raw_ref] if raw_ref else [])
    with contextlib.redirect_stdout(buffer):
        status = score.main(argv)
    if status != 0:
        raise JobError(f"scoring {out_path} failed (see the score.py error above)")
    return json.loads(buffer.getvalue())


def average(mode, count, folder, output, log=print):
    """``average_checkpoints.py --MODE COUNT --dir FOLDER --output OUTPUT`` unless OUTPUT is up to date."""
    if mode not in ("last", "best"):
        raise JobError(f"--average: MODE must be 'last' or 'best', got {mode!r}")
    if is_newer(output, glob.glob(os.path.join(folder, "checkpoint*.pt"))):
        log(f"{output} is newer than every checkpoint in {folder}: kept")
        return
    if average_checkpoints.main([f"--{mode}", str(count), "--dir", folder, "--output", output]) != 0:
        raise JobError(f"averaging the checkpoints in {folder} failed (see the error above)")


def run_job(model, setting, prefix, arg_string, raw_ref=None, lang="de", expect=None, log=print):
    """Decode (unless up to date) and score one job; returns its result dict."""
    argv = shlex.split(arg_string)
    out_path, json_path = f"{prefix}.out", f"{prefix}.json"
    speed = None
    if is_newer(out_path, checkpoints_of(argv)):
        log(f"{model} {setting}: {out_path} is up to date")
    else:
        log(f"{model} {setting}: fairseq-generate {arg_string}")
        speed = run_generate(argv, out_path)
    if is_newer(json_path, [out_path]):
        with open(json_path, encoding="utf-8") as handle:
            result = json.load(handle)
    else:
        result = score_output(out_path, raw_ref, lang)
        result["sentences_per_second"] = speed
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, ensure_ascii=False)
    if expect is not None and result["sentences"] != expect:
        raise JobError(f"{out_path} covers {result['sentences']} sentences, expected {expect}")
    return dict(result, model=model, setting=setting)


def markdown_report(results, title):
    """One table row per job, the sacreBLEU signature(s) below."""
    lines = [
        f"# {title}",
        "",
        "| model | decoding | BLEU (tokenized, compound split) | sacreBLEU | chrF | sentences/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        speed = r.get("sentences_per_second")
        lines.append(
            f"| {r['model']} | {r['setting']} | {r['bleu_tok']:.2f} | {r['sacrebleu']:.2f} | {r['chrf']:.2f} "
            f"| {'-' if speed is None else f'{speed:.1f}'} |"
        )
    signatures = sorted({r["sacrebleu_signature"] for r in results})
    lines += ["", "sacreBLEU signature: " + "; ".join(signatures)]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Average checkpoints, run several fairseq-generate commands and score each output, in one process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--average", nargs=4, action="append", default=[], metavar=("MODE", "N", "DIR", "OUTPUT"),
        help="first average the N last|best checkpoints in DIR into OUTPUT (scripts/evaluation/average_checkpoints.py)",
    )
    parser.add_argument(
        "--job", nargs=4, action="append", required=True, metavar=("MODEL", "SETTING", "PREFIX", "ARGS"),
        help="names for the report, the output prefix, and the fairseq-generate arguments (one shell-quoted string)",
    )
    parser.add_argument("--raw-ref", help="untokenized reference for sacreBLEU and chrF (score.py --raw-ref)")
    parser.add_argument("--lang", default="de", help="target language (Moses detokenization)")
    parser.add_argument("--expect-sentences", type=int, help="fail unless every output covers this many sentences")
    parser.add_argument("--report", help="write a markdown table of all jobs to this file")
    parser.add_argument("--title", default="Results", help="title of the report")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def log(message):
        print(f"[decode_and_score] {message}", file=sys.stderr, flush=True)

    results = []
    try:
        for mode, count, folder, output in args.average:
            average(mode, count, folder, output, log)
        for model, setting, prefix, arg_string in args.job:
            results.append(
                run_job(model, setting, prefix, arg_string, args.raw_ref, args.lang, args.expect_sentences, log)
            )
    except (JobError, score.ScoreError) as error:
        print(f"decode_and_score.py: error: {error}", file=sys.stderr)
        return 2
    report = markdown_report(results, args.title)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            handle.write(report)
    print(report, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
