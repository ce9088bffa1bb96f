"""The shared recordings under every credit variant of ``credit_cache.py`` (credit14, issue 13).

Usage: python research/credit_recordings.py [--only NAME,NAME] [DATASET_DIR ...]   (default: both in /work/shared/datasets)

``bluezone evaluate``'s report (calibrated, MIT LL with its bystanders, its seed and chains) for the
shipped scorers and each variant, the variants' distance decisions moved as their base scorer's
(``evaluate.DISTANCE_SETTINGS``).  Prints per scorer what the ship rule reads: detection at <= 1.2 m and
at >= 3 m (the means of ``detection_by_distance``'s bins), nDCF of the default decision at 1.2 / 1.8 /
3.0 m, ROC-AUC, the chained 15-minute F1 and its confusion, and the minutes' MAE.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from credit_cache import VARIANTS, register_variants

from bluezone.sim import evaluate

DATASETS = ("/work/shared/datasets/ng_rss_smartphone", "/work/shared/datasets/mitll_pact")


def main(argv: list[str], variants: dict[str, tuple[type, type, dict]] | None = None) -> None:
    """``[--only NAMES] [DATASET_DIR ...]``; ``variants`` in ``credit_cache.VARIANTS``' shape instead of
    its own (``verdict_cache.py --recordings``)."""
    argv_names: list[str] = []
    if argv[:1] == ["--only"]:
        argv_names, argv = argv[1].split(","), argv[2:]
    register_variants()
    if variants is not None:
        register_variants(variants)
    for name, (scorer_cls, _, _) in {**VARIANTS, **(variants or {})}.items():
        evaluate.DISTANCE_SETTINGS[name] = evaluate.DISTANCE_SETTINGS["gaen" if "Gaen" in scorer_cls.__name__ else "bluezone"]
    mine = list(variants) if variants is not None else [n for n in VARIANTS if n.startswith("bz_")]
    names = ["gaen", "gaen_slots", "bluezone", *(argv_names or mine)]
    for root in argv or DATASETS:
        report = evaluate.evaluate(root, scorers=names)
        print(f"{Path(root).name}: {report['minutes']} minutes, {report['chains']} chains")
        print(f"  {'scorer':<17} det<=1.2 det>=3  nDCF 1.2 / 1.8 / 3.0   ROC-AUC  chained F1  tp/fp/fn/tn      MAE")
        for name in names:
            s = report["scorers"][name]
            det = {float(k): v for k, v in s["detection_by_distance"].items()}
            near = np.mean([v for d, v in det.items() if d <= 1.2 + 0.05])
            far = np.mean([v for d, v in det.items() if d >= 3.0 - 0.05])
            nd = " / ".join(f"{s['ndcf'][d]['ndcf']:.3f}" for d in ("1.2", "1.8", "3.0"))
            c = s["confusion"]
            print(f"  {name:<17} {near:7.3f} {far:6.3f}  {nd}   {s['roc_auc']:.3f}   {s['f1']:.3f}"
                  f"   {c['tp']}/{c['fp']}/{c['fn']}/{c['tn']}   {s['minutes_mae']:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
