"""The analysis and the report of scripts/experiments/learning_curves.py: Markdown, JSON and PNG.

Pure functions on the collected results (no decoding here), so the rules are unit-tested on hand data:

* :func:`first_update_reaching`: the first curve point whose valid BLEU is at least a level;
* :func:`bleu_at`: a model's valid BLEU at an update (interpolated between two points, and said so);
* :func:`trend`: is a model still improving (its last two points);
* :func:`estimates`: for a NAT that did not reach a level, the CPU time it would need **if** it needed as
  many updates as the NAT that reached it (an estimate, labelled with that assumption).
"""
import datetime
import json
import os

from quickstart_report import _fmt  # beside this module (scripts/experiments is on sys.path)

#: BLEU changes smaller than this between the last two points count as flat (decoding noise)
FLAT_BLEU = 0.2
#: a validation loss that fell by at least this share between the last two validations is still falling
FALLING_LOSS = 0.01


def first_update_reaching(points, level):
    """First ``updates`` of ``points`` ``[(updates, bleu)]`` with ``bleu >= level``; None when never reached."""
    for updates, bleu in sorted(points):
        if bleu >= level:
            return updates
    return None


def bleu_at(points, updates):
    """``(bleu, exact)`` of a curve at ``updates``: exact at a point, linear between two, None outside."""
    points = sorted(points)
    for u, bleu in points:
        if u == updates:
            return bleu, True
    for (u0, b0), (u1, b1) in zip(points, points[1:]):
        if u0 < updates < u1:
            return round(b0 + (b1 - b0) * (updates - u0) / (u1 - u0), 2), False
    return None, False


def trend(bleu_points, loss_points):
    """``(verdict, text)``: "yes" / "no" / "-" and one sentence from the last two BLEU points and losses.

    Still improving = the last valid BLEU gained more than ``FLAT_BLEU``, or it is flat while the
    validation loss still fell by ``FALLING_LOSS`` or more between the last two validations.
    """
    if len(bleu_points) < 2:
        return "-", "one curve point only: no trend yet"
    (u0, b0), (u1, b1) = sorted(bleu_points)[-2:]
    text = f"valid BLEU {b0:.2f} -> {b1:.2f} from {u0} to {u1} updates ({b1 - b0:+.2f})"
    loss_falling = None
    if len(loss_points) >= 2:
        (l0_u, l0), (l1_u, l1) = sorted(loss_points)[-2:]
        loss_falling = l1 <= l0 * (1 - FALLING_LOSS)
        text += f"; valid loss {l0:.3f} -> {l1:.3f} from {l0_u} to {l1_u} updates"
    if b1 - b0 > FLAT_BLEU:
        return "yes", text
    if b1 - b0 < -FLAT_BLEU:
        return "no", text + " (BLEU falling)"
    if loss_falling:
        return "yes", text + " (BLEU flat, loss still falling)"
    return "no", text + " (flat)"


def levels_table(models, levels):
    """``{nat: {level: {"updates", "ar_bleu", "ar_exact"}}}``; AR BLEU from the ``ar`` model when present."""
    ar = models.get("ar")
    ar_points = [(p["updates"], p["bleu_tok"]) for p in ar["valid"]] if ar else []
    table = {}
    for name, model in models.items():
        points = [(p["updates"], p["bleu_tok"]) for p in model["valid"]]
        rows = {}
        for level in levels:
            updates = first_update_reaching(points, level)
            ar_bleu, exact = bleu_at(ar_points, updates) if (updates is not None and ar) else (None, False)
            rows[_level_key(level)] = {"updates": updates, "ar_bleu": ar_bleu, "ar_exact": exact}
        table[name] = rows
    return table


def estimates(models, table, levels, preferred="cmlm"):
    """For each NAT and each level it did not reach: the CPU time it would need, as an estimate.

    Assumption: the model needs as many updates as the reference NAT needed for that level (``preferred``
    when it reached the level, else the NAT that reached it in the fewest updates), at the seconds per update
    measured in its own run.  No estimate when no NAT reached the level, when the model already trained
    longer than that (the assumption has failed), or when its speed is unknown.
    """
    out = []
    for name, model in models.items():
        if model["kind"] != "nat":
            continue
        for level in levels:
            key = _level_key(level)
            if table[name][key]["updates"] is not None:
                continue
            reached = {m: table[m][key]["updates"] for m in table
                       if models[m]["kind"] == "nat" and table[m][key]["updates"] is not None}
            entry = {"model": name, "level": level, "trained_updates": model["updates"]}
            if not reached:
                entry["note"] = f"no NAT model reached {key} BLEU here: nothing to extrapolate from"
            else:
                ref = preferred if preferred in reached else min(reached, key=reached.get)
                need, spu = reached[ref], model["seconds_per_update"]
                entry.update(reference_model=ref, reference_updates=need, seconds_per_update=spu)
                if spu is None:
                    entry["note"] = "its seconds per update were not measured (no train_inner lines)"
                elif model["updates"] is not None and model["updates"] >= need:
                    entry["note"] = (f"it already trained {model['updates']} updates, more than the {need} "
                                     f"{ref} needed, so the assumption fails: no estimate")
                else:
                    entry["hours_total"] = round(spu * need / 3600, 2)
                    entry["hours_more"] = round(spu * (need - (model["updates"] or 0)) / 3600, 2)
            out.append(entry)
    return out


def _level_key(level):
    return f"{level:g}"


def build(results, args, command, torch_version):
    """The JSON-ready record of the whole report."""
    import quickstart_report

    for model in results.values():
        model["still_improving"], model["trend"] = trend(
            [(p["updates"], p["bleu_tok"]) for p in model["valid"]], model["valid_loss"])
    table = levels_table(results, args.level_list)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": quickstart_report.machine_description(),
        "torch": torch_version,
        "decode_threads": args.threads,
        "decode_device": "cuda" if args.cuda else "cpu",
        "command": command,
        "note": args.note,
        "run_dir": args.run_dir,
        "every": args.every,
        "levels": args.level_list,
        "models": results,
        "first_pass": table,
        "estimates": estimates(results, table, args.level_list),
    }


def _training_setup(models):
    seen = {(m["train_jobs"], m["train_threads"]) for m in models.values()}
    if seen == {(None, None)}:
        return "threads and concurrency not recorded (train.env absent: trained by an older run.sh)"
    def setup(jobs, threads):
        return f"run.sh JOBS={jobs or '?'} (trainings at a time), {threads or '?'} torch thread(s) per training"

    if len(seen) == 1:
        return setup(*seen.pop())
    return "; ".join(f"{name}: {setup(m['train_jobs'], m['train_threads'])}" for name, m in models.items())


def markdown(data, png_name):
    """The report as a list of Markdown lines."""
    models, every = data["models"], data["every"]
    names = list(models)
    lines = ["# Learning curves on the quickstart corpus", "",
             "Long trainings of the quickstart's models (examples/quickstart/models.sh) on its En->De corpus, "
             f"with the validation split decoded every {every} updates (and at the last checkpoint).", "",
             f"- Date: {data['date']}", f"- Machine: {data['machine']}",
             f"- Training: {_training_setup(models)}",
             f"- Curve decoding: {data['decode_device']}, {data['decode_threads']} torch thread(s); each model's "
             "generation flags of models.sh; BLEU (tok) = Moses-tokenized, compound-split 4-gram BLEU "
             "(scripts/evaluation/score.py)",
             f"- Report command: `{data['command']}` (training commands at the end)"]
    if data["note"]:
        lines.append(f"- Note: {data['note']}")
    lines += ["", "## Summary", "",
              "| Model | Updates | s/update | Train (h) | Valid BLEU (last point) | Test BLEU (tok) | sacreBLEU | chrF "
              "| Still improving? |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in models.items():
        last = m["valid"][-1]["bleu_tok"] if m["valid"] else None
        test = m["test"] or {}
        hours = None if m["train_seconds"] is None else m["train_seconds"] / 3600
        done = "" if m["train_finished"] else " (training not finished)"
        lines.append(f"| {name}: {m['description']} | {m['updates'] if m['updates'] is not None else '-'}{done} | "
                     f"{_fmt(m['seconds_per_update'], 2)} | {_fmt(hours, 2)} | {_fmt(last)} | "
                     f"{_fmt(test.get('bleu_tok'))} | {_fmt(test.get('sacrebleu'))} | {_fmt(test.get('chrf'))} | "
                     f"{m['still_improving']} |")
    sources = {}
    for n, m in models.items():
        if m["test"]:
            sources.setdefault((m["test"]["source"], m["test"]["sentences"]), []).append(n)
    lines += [""] + [f"- Test scores of {', '.join(names_)}: {source}, {count} sentences."
                     for (source, count), names_ in sources.items()]
    lines += ["- s/update: wall-clock seconds per update in train.log (validation and checkpointing included)."]
    lines += ["", f"## Validation BLEU (tok) every {every} updates", "", "| Updates | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    by_model = {n: {p["updates"]: p["bleu_tok"] for p in m["valid"]} for n, m in models.items()}
    for u in sorted({u for curve in by_model.values() for u in curve}):
        lines.append(f"| {u} | " + " | ".join(_fmt(by_model[n].get(u)) for n in names) + " |")
    lines += ["", f"![learning curves]({png_name})", ""] + _levels_section(data) + _estimate_section(data)
    lines += ["## Still improving?", ""] + [f"- {n}: **{m['still_improving']}**: {m['trend']}."
                                            for n, m in models.items()]
    lines += ["", "## Validation loss (each criterion's own loss, not comparable across models)", "",
              "| Updates | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    losses = {n: dict(m["valid_loss"]) for n, m in models.items()}
    for u in sorted({u for curve in losses.values() for u in curve if u % every == 0}):
        lines.append(f"| {u} | " + " | ".join(_fmt(losses[n].get(u), 3) for n in names) + " |")
    lines += ["", "## Example translations (test split)", "", "```"] + _example_lines(models) + ["```", ""]
    lines += ["## Training commands", "", "```"]
    lines += [f"{n}: {m['train_command'] or '(train.command missing)'}" for n, m in models.items()] + ["```", ""]
    return lines


def _levels_section(data):
    models, table = data["models"], data["first_pass"]
    has_ar = "ar" in models
    lines = [f"## When the NAT passes {', '.join(_level_key(x) for x in data['levels'])} valid BLEU", "",
             "First curve point with valid BLEU (tok) >= the level (curve points every "
             f"{data['every']} updates, so the level was passed between that point and the one before).", "",
             "| Model | Level | First update at or above it | AR valid BLEU at that update |", "|---|---|---|---|"]
    for name, rows in table.items():
        if models[name]["kind"] != "nat":
            continue
        for key, row in rows.items():
            if row["updates"] is None:
                lines.append(f"| {name} | {key} | not reached within {models[name]['updates']} updates | - |")
                continue
            if not has_ar:
                ar = "no AR model in this report"
            elif row["ar_bleu"] is None:
                ar = "no AR point there"
            else:
                ar = _fmt(row["ar_bleu"]) + ("" if row["ar_exact"] else " (interpolated)")
            lines.append(f"| {name} | {key} | {row['updates']} | {ar} |")
    if has_ar:
        ar_rows = table["ar"]
        passes = [f"{k} BLEU at {r['updates']} updates" if r["updates"] is not None
                  else f"{k} BLEU not reached within {models['ar']['updates']} updates" for k, r in ar_rows.items()]
        lines += ["", f"The AR's own first passes: {'; '.join(passes)}."]
    return lines + [""]


def _estimate_section(data):
    if not data["estimates"]:
        return []
    lines = ["## Estimates for the levels not reached (estimates, not measurements)", ""]
    no_estimate = {}  # (level, note) -> models: one line for the models that share a reason
    for e in data["estimates"]:
        head = f"- {e['model']}, {_level_key(e['level'])} BLEU: "
        if "hours_total" in e:
            lines.append(head + f"about {e['hours_total']:.1f} h of training on this CPU ({e['reference_updates']} "
                         f"updates at {e['seconds_per_update']:.2f} s/update; {e['hours_more']:.1f} h beyond the "
                         f"{e['trained_updates']} updates trained here). Assumption: {e['model']} needs as many "
                         f"updates as {e['reference_model']} needed for this level; its s/update as measured in "
                         "this run.")
        else:
            no_estimate.setdefault((_level_key(e["level"]), e["note"]), []).append(e["model"])
    lines += [f"- {', '.join(names)}, {level} BLEU: {note}." for (level, note), names in no_estimate.items()]
    return lines + [""]


def _example_lines(models):
    first = next((m["examples"] for m in models.values() if m["examples"]), [])
    lines = []
    for number, example in enumerate(first, 1):
        lines += [f"{number}. EN: {example['source']}", f"   DE (reference): {example['reference']}"]
        for name, m in models.items():
            hyp = next((e["hypothesis"] for e in m["examples"] if e["source"] == example["source"]), "-")
            lines.append(f"   {name}: {hyp}")
    return lines


def write_png(data, path):
    """Two panels: valid BLEU and valid loss against updates, one line per model."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # font-search DEBUG lines once fairseq set DEBUG up
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, m in data["models"].items():
        if m["valid"]:
            left.plot([p["updates"] for p in m["valid"]], [p["bleu_tok"] for p in m["valid"]], marker="o", ms=3,
                      label=name)
        if m["valid_loss"]:
            right.plot(*zip(*m["valid_loss"]), marker=".", ms=3, label=name)
    for level in data["levels"]:
        left.axhline(level, color="grey", lw=0.6, ls=":")
    left.set(title="valid BLEU (tok)", xlabel="updates")
    right.set(title="valid loss (each criterion's own)", xlabel="updates")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(data, output):
    """``output`` (Markdown) with ``<stem>.json`` and ``<stem>.png`` beside it; returns the three paths."""
    stem = os.path.splitext(output)[0]
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    png, js = stem + ".png", stem + ".json"
    write_png(data, png)
    with open(js, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False)
    with open(output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(markdown(data, os.path.basename(png))))
    return [output, js, png]


def summary_lines(data):
    """A few lines for the terminal: last valid BLEU and first passes per model."""
    lines = []
    for name, m in data["models"].items():
        last = m["valid"][-1] if m["valid"] else None
        passes = ", ".join(f"{k}: {r['updates'] if r['updates'] is not None else 'not reached'}"
                           for k, r in data["first_pass"][name].items())
        lines.append(f"{name}: {m['updates']} updates, valid BLEU {_fmt(last and last['bleu_tok'])}; first passes "
                     f"{passes}; still improving: {m['still_improving']}")
    return lines
