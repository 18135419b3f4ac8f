#!/usr/bin/env python3
"""Condense a fairseq-train log on stdin into progress lines with an ETA (used by the quickstart).

    fairseq-train ... 2>&1 | tee train.log | python scripts/experiments/train_progress.py --name ar --total 450

Prints, at each ``train_inner`` line, ``[ar] 150/450 updates (33%), 2.1 min, ETA 4.2 min, loss 6.71``
and each validation's loss.  The ETA is the remaining updates at the rate since the first update seen (a
resumed run counts from where it resumed).
"""
import argparse
import re
import sys
import time

_UPDATES = re.compile(r"num_updates[ =](\d+)")
_LOSS = re.compile(r"\bloss[ =]([\d.]+)")


def progress_line(name, total, updates, elapsed, first_updates, loss=None):
    """One progress line; ``first_updates`` at time 0 is the rate's origin."""
    done = updates - first_updates
    share = 100.0 * updates / total if total else 0.0
    eta = (total - updates) * elapsed / done / 60 if done > 0 and elapsed > 0 else None
    text = f"[{name}] {updates}/{total} updates ({share:.0f}%), {elapsed / 60:.1f} min"
    text += f", ETA {eta:.1f} min" if eta is not None else ", ETA -"
    return text + (f", loss {loss}" if loss is not None else "")


def main(argv=None, stdin=None, clock=time.monotonic):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--total", type=int, required=True, help="the run's --max-update")
    args = parser.parse_args(argv)
    start, first = clock(), None
    for line in stdin or sys.stdin:
        if "train_inner" in line or "| valid |" in line or "valid on" in line:
            found = _UPDATES.search(line)
            loss = _LOSS.search(line)
            if not found:
                continue
            updates = int(found.group(1))
            if "train_inner" in line:
                if first is None:
                    first, start = updates, clock()
                print(progress_line(args.name, args.total, updates, clock() - start, first,
                                    loss.group(1) if loss else None), flush=True)
            else:
                print(f"[{args.name}] validation at {updates} updates: loss {loss.group(1) if loss else '-'}",
                      flush=True)
        elif "done training" in line or "Stopping training" in line or "Traceback" in line:
            print(f"[{args.name}] {line.split('| INFO |')[-1].strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
