#!/usr/bin/env python
"""Write benchmarks/cmlm_parity.{md,json} from the logs of scripts/benchmarks/cmlm_parity.sh.

    python scripts/benchmarks/cmlm_parity_report.py runs/cmlm_parity UPDATES

Training speed is compared in sentences/s (bsz x ups), because the two
criterions count "words" differently: stock fairseq's ``ntokens`` includes
``<bos>``/``<eos>``, ours counts real target tokens only.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

SCORE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "evaluation", "score.py")


def inner_stats(log):
    """[(num_updates, loss, wps, ups, bsz)] from train_inner lines."""
    rows = []
    pat = re.compile(r"train_inner .*?loss=([0-9.]+).*?wps=([0-9.]+), ups=([0-9.]+), wpb=([0-9.]+), bsz=([0-9.]+), num_updates=(\d+)")
    for m in pat.finditer(open(log).read()):
        loss, wps, ups, wpb, bsz, n = m.groups()
        rows.append({"updates": int(n), "loss": float(loss), "wps": float(wps), "ups": float(ups),
                     "wpb": float(wpb), "bsz": float(bsz)})
    return rows


def score(out, name):
    path = os.path.join(out, f"gen_{name}.txt")
    res = subprocess.run([sys.executable, SCORE, path, "--json"],
                         capture_output=True, text=True, check=True)
    result = json.loads(res.stdout)
    text = open(path).read() + open(os.path.join(out, f"gen_{name}.err")).read()
    fb = re.search(r"BLEU4 = ([0-9.]+)", text)
    sp = re.search(r"\(([0-9.]+) sentences/s", text)
    result.update(fairseq_bleu=float(fb.group(1)) if fb else None,
                  decode_sentences_per_s=float(sp.group(1)) if sp else None,
                  n_hyps=len(re.findall(r"^H-", text, re.M)))
    return result


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("updates", type=int)
    ap.add_argument("--out", default="benchmarks/cmlm_parity")
    args = ap.parse_args()
    rows = {}
    for who in ("ours", "stock"):
        inner = inner_stats(os.path.join(args.run_dir, f"train_{who}.log"))
        sents = [r["bsz"] * r["ups"] for r in inner]
        rows[who] = {
            "inner": inner,
            "train_sentences_per_s_median": statistics.median(sents) if sents else None,
            "train_wps_median": statistics.median(r["wps"] for r in inner) if inner else None,
            "l1": score(args.run_dir, f"{who}_l1"),
            "l3": score(args.run_dir, f"{who}_l3"),
        }
    o, s = rows["ours"], rows["stock"]
    meta = {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch CPU fp32",
            "command": f"UPDATES={args.updates} bash scripts/benchmarks/cmlm_parity.sh", "updates": args.updates}
    with open(args.out + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    speed = o["train_sentences_per_s_median"] / s["train_sentences_per_s_median"]
    lines = [
        "# CMLM parity: nat_plugins `cmlm` vs stock fairseq `cmlm_transformer`", "",
        f"- Date: {meta['date']}; machine: {meta['machine']}; the two trainings ran at the same time with one thread each,"
        " so whatever else the (shared, loaded) machine did slowed both alike.",
        f"- Command: `{meta['command']}` on the quickstart corpus (`data-bin/quickstart`, 62k pairs, 8k joint BPE).",
        f"- Same for both: data, seed 1, 2+2 layers x 128 (FFN 512, 4 heads, shared embeddings, dropout 0.1), Adam (0.9, 0.98) lr 2e-3,"
        f" inverse-sqrt with 200 warm-up, 4096 tokens/batch, label smoothing 0.1, length loss 0.1, {args.updates} updates, last checkpoint.",
        "- Decoding: 10 decoder passes (ours `--decode-iterations 10`; stock `--iter-decode-max-iter 9 --iter-decode-force-max-iter`,"
        " also 10 passes); length beam 1 and 3 (ours: the top-3 predicted lengths; stock: argmax +- 1).",
        "- BLEU: fairseq-generate's tokenized BLEU on BPE-removed output; sacreBLEU and chrF (detokenized) from `scripts/evaluation/score.py`.",
        "- Speed: sentences/s (median over the log intervals) because stock counts `<bos>`/`<eos>` as words and we do not;"
        " wps is shown for completeness.", "",
        "| | ours | stock fairseq | ours / stock |", "|---|---|---|---|",
        f"| training sentences/s (median) | {fmt(o['train_sentences_per_s_median'],1)} | {fmt(s['train_sentences_per_s_median'],1)} | {speed:.2f}x |",
        f"| training words/s (median, each criterion's own count) | {fmt(o['train_wps_median'],0)} | {fmt(s['train_wps_median'],0)} | |",
    ]
    for key, label in (("l1", "length beam 1"), ("l3", "length beam 3")):
        a, b = o[key], s[key]
        lines += [
            f"| BLEU, {label} | {fmt(a['fairseq_bleu'])} | {fmt(b['fairseq_bleu'])} | diff {fmt(a['fairseq_bleu'] - b['fairseq_bleu'])} |",
            f"| sacreBLEU, {label} | {fmt(a.get('sacrebleu'))} | {fmt(b.get('sacrebleu'))} | |",
            f"| chrF, {label} | {fmt(a.get('chrf'))} | {fmt(b.get('chrf'))} | |",
            f"| test sentences decoded, {label} | {a['n_hyps']} | {b['n_hyps']} | |",
        ]
    lines += ["", "## Training loss at equal updates (base 2, label-smoothed, as logged)", "",
              "| updates | ours | stock |", "|---|---|---|"]
    stock_by_n = {r["updates"]: r["loss"] for r in s["inner"]}
    for r in o["inner"]:
        if r["updates"] in stock_by_n:
            lines.append(f"| {r['updates']} | {r['loss']:.3f} | {stock_by_n[r['updates']]:.3f} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
