"""Generated kinds before and after a change, on the same seeds: what each run had to find and how the
shipped scorer did against GAEN.

Usage: python research/generated_seeds.py DIR [DIR ...] [--markdown]
e.g.   for k in room crowd carriage storeys; do for s in 64 65 66 67 68 69 70 71; do
         bluezone simulate --generate $k --seed $s --json > after/$k-$s.json; done; done
       python research/generated_seeds.py before after

Each DIR holds ``<kind>-<seed>.json``, the ``--json`` reports of ``bluezone simulate --generate KIND
--seed N`` (made with the code being measured: ``git archive COMMIT`` and ``PYTHONPATH``), so nothing here
re-scores anything.  Prints per DIR and kind: runs, true contacts per run (median and range), runs with
nothing to find, runs with fewer than 10 (the report's own note), bluezone's and GAEN's mean F1 /
ROC-AUC / PR-AUC and the mean margins over the runs where the metric is defined; then each run's true
contacts by seed, and every run with a margin below zero (a loss), with its contacts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean, median

METRICS = ("f1", "roc_auc", "pr_auc")


def load(folder: Path) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(folder.glob("*-*.json")):
        kind, _, seed = path.stem.rpartition("-")
        runs.setdefault(kind, {})[int(seed)] = json.loads(path.read_text())
    return runs


def margins(report: dict) -> dict[str, float | None]:
    b, g = report["scorers"]["bluezone"], report["scorers"]["gaen"]
    return {m: None if b[m] is None or g[m] is None else b[m] - g[m] for m in METRICS}


def means(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    return f"{mean(got):.3f}" if got else "n/a"


def signed(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    return f"{mean(got):+.3f}" if got else "n/a"


def summary(label: str, runs: dict[str, dict[int, dict]], markdown: bool) -> list[str]:
    lines = []
    for kind in sorted(runs):
        reports = [runs[kind][s] for s in sorted(runs[kind])]
        contacts = [r["true_close_contacts"] for r in reports]
        cells = [
            label, kind, str(len(reports)),
            f"{median(contacts):g} ({min(contacts)}-{max(contacts)})",
            str(sum(c == 0 for c in contacts)), str(sum(c < 10 for c in contacts)),
            " / ".join(means([r["scorers"]["bluezone"][m] for r in reports]) for m in METRICS),
            " / ".join(means([r["scorers"]["gaen"][m] for r in reports]) for m in METRICS),
            " / ".join(signed([margins(r)[m] for r in reports]) for m in METRICS),
        ]
        lines.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{c:<14}" for c in cells))
    return lines


def losses(label: str, runs: dict[str, dict[int, dict]]) -> list[str]:
    out = []
    for kind in sorted(runs):
        for seed, r in sorted(runs[kind].items()):
            m = margins(r)
            if any(v is not None and v < 0 for v in m.values()):
                shown = " / ".join("n/a" if m[k] is None else f"{m[k]:+.3f}" for k in METRICS)
                out.append(f"{label} {kind} {seed}: margin F1 / ROC-AUC / PR-AUC {shown}, "
                           f"{r['true_close_contacts']} true contacts of {r['pairs_judged']} pairs")
    return out


def contacts(label: str, runs: dict[str, dict[int, dict]]) -> list[str]:
    """True contacts of every run, by seed: what each run had to find."""
    return [f"{label} {kind}: " + ", ".join(f"{seed} {r['true_close_contacts']}" for seed, r in sorted(runs[kind].items()))
            for kind in sorted(runs)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    head = ["code", "kind", "runs", "contacts median (range)", "nothing to find", "under 10",
            "bluezone F1 / ROC / PR", "gaen F1 / ROC / PR", "margin F1 / ROC / PR"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head) if a.markdown else "  ".join(f"{h:<14}" for h in head))
    loaded = [(d.name, load(d)) for d in a.dirs]
    for label, runs in loaded:
        print("\n".join(summary(label, runs, a.markdown)))
    print()
    for label, runs in loaded:
        print("\n".join(contacts(label, runs)))
    print()
    for label, runs in loaded:
        print("\n".join(losses(label, runs)) or f"{label}: no run below GAEN")


if __name__ == "__main__":
    main()
