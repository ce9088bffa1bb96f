"""Turn a run into numbers (a dict ready for JSON), a terminal table and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.sim.engine import RunResult
from bluezone.sim.metrics import contacts_note, fmt, summary


def units(result: RunResult) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """Every (day, positive row, receiver) judged, and its true minutes within the close distance."""
    keys: list[tuple[int, int, int]] = []
    minutes = []
    close = result.truth.minutes(result.scenario.close_distance_m)
    rows, devs = np.meshgrid(np.arange(len(result.senders)), np.arange(result.truth.devices), indexing="ij")
    keep = result.senders[rows] != devs
    for day, m in close.items():
        keys.extend((day, r, d) for r, d in zip(rows[keep].tolist(), devs[keep].tolist()))
        minutes.append(m[keep])
    return keys, np.concatenate(minutes) if minutes else np.empty(0)


def summarise(result: RunResult) -> dict[str, Any]:
    """The report as a JSON-ready dict; ``scorers`` maps each scorer name to its metrics."""
    sc = result.scenario
    keys, true2 = units(result)
    truth = true2 >= sc.close_contact_min - 1e-9
    out: dict[str, Any] = {
        "scenario": sc.name,
        "seed": result.seed,
        "people": sc.people,
        "phones": int(len(result.devices.person)),
        "uploaders": int(len(result.senders)),
        "duration_min": sc.duration_min,
        "pairs_judged": len(keys),
        "true_close_contacts": int(truth.sum()),
        # null when there are enough true contacts for the verdict figures to mean something
        "true_contacts_note": contacts_note(true2, sc.close_contact_min, sc.close_distance_m),
        "sightings": int(result.sightings),
        "store": result.stats.get("store"),
        "seconds": round(result.seconds, 2),
        "scorers": {},
    }
    for name, scores in result.scores.items():
        empty = (0.0, 0.0, False)
        got = [scores.get(k) for k in keys]
        weighted = np.array([g.weighted_minutes if g else empty[0] for g in got])
        predicted = np.array([g.close_contact if g else empty[2] for g in got])
        # Both scorers' weighted minutes mean "minutes within about 2 m": compared with the truth.
        out["scorers"][name] = summary(truth, predicted, weighted, weighted, true2)
    return out


def table(report: dict[str, Any]) -> str:
    """A small fixed-width table for the terminal."""
    lines = [
        f"scenario {report['scenario']}  seed {report['seed']}  people {report['people']}  phones {report['phones']}"
        f"  uploaders {report['uploaders']}  {report['duration_min']:g} min",
        f"pairs judged {report['pairs_judged']}  true close contacts {report['true_close_contacts']}"
        # "store memory  158.4 s" read as a memory figure: the store kind and the run's time, each named
        f"  sightings {report['sightings']}  store {report['store']}  ran {report['seconds']:.1f} s",
        f"{'scorer':<10}{'precision':>10}{'recall':>8}{'F1':>7}{'TP':>6}{'FP':>6}{'FN':>6}{'TN':>8}{'PR-AUC':>8}{'min MAE':>9}",
    ]
    for name, s in report["scorers"].items():
        c = s["confusion"]
        auc = s["pr_auc"]
        lines.append(
            f"{name:<10}{fmt(s['precision'], 10)}{fmt(s['recall'], 8)}{fmt(s['f1'], 7)}{c['tp']:>6}{c['fp']:>6}{c['fn']:>6}"
            f"{c['tn']:>8}{fmt(auc, 8)}{s['minutes_mae']:>9.2f}"
        )
    if report.get("true_contacts_note"):
        lines.append(f"note: {report['true_contacts_note']}")
    return "\n".join(lines)


def write(result: RunResult, report: dict[str, Any], out: Path) -> list[Path]:
    """report.json and the three PNG plots in ``out``; returns the files written.  Rendered first, then
    written whole under names of their own (``writefile``): ``--out`` may be a shared folder, where a
    link planted at ``report.json`` had the report written into the file it named."""
    from bluezone.writefile import write_files

    out.mkdir(parents=True, exist_ok=True)
    files = {"report.json": (json.dumps(report, indent=2).encode() + b"\n", None), **plots(result, report)}
    write_files(out, files)
    return [out / name for name in files]


def plots(result: RunResult, report: dict[str, Any]) -> dict[str, tuple[bytes, None]]:
    """The run's PNG plots (PR curve, RSSI by distance, scene) by file name, each as its bytes and the
    mode ``writefile`` gives it (None: a new file's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = result.scenario.name
    files = {}
    fig, ax = plt.subplots(figsize=(6, 5))
    snap = result.scene["snapshots"][len(result.scene["snapshots"]) // 2]
    pos = snap["pos"]
    phones = np.zeros(len(pos), bool)
    phones[snap["device_person"]] = True
    ax.scatter(pos[~phones, 0], pos[~phones, 1], s=8, c="grey", label="no phone")
    ax.scatter(pos[phones, 0], pos[phones, 1], s=8, c="tab:blue", label="phone")
    up = snap["device_person"][result.senders]
    ax.scatter(pos[up, 0], pos[up, 1], s=14, facecolors="none", edgecolors="tab:red", label="uploads")
    for a, b in result.scene["walls"]:
        ax.plot([a[0], b[0]], [a[1], b[1]], "k-", lw=2)
    for x0, y0, x1, y1 in result.scene.get("zones", ()):
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", ec="tab:orange", lw=1))
    storey = result.scene.get("storey")
    if storey is not None and storey.max(initial=0) > 0:  # storeys overlaid: mark who is upstairs
        upstairs = storey > 0
        ax.scatter(pos[upstairs, 0], pos[upstairs, 1], s=40, marker="^", facecolors="none", edgecolors="tab:green",
                   label="upper storeys")
    w, d = result.scene["size"]
    ax.set_xlim(0, w)
    ax.set_ylim(0, d)
    ax.set_aspect("equal")
    ax.set_title(f"{name}: positions at t = {snap['t'] / 60:.0f} min")
    # beside the scene, not on it: inside, its corner hid whoever stood there (user29's wedding: the buffet queue)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7)
    files["scene.png"] = (_png(fig, cropped=True), None)

    fig, ax = plt.subplots(figsize=(6, 4))
    cloud = result.cloud
    if len(cloud):
        ax.scatter(cloud[:, 0], cloud[:, 1], s=2, alpha=0.3)
        ax.set_xscale("log")
    ax.axvline(result.scenario.close_distance_m, color="k", ls="--", lw=1)
    ax.set_xlabel("true distance (m)")
    ax.set_ylabel("attenuation (dB)")
    ax.set_title(f"{name}: attenuation of received adverts")
    files["rssi_distance.png"] = (_png(fig), None)

    fig, ax = plt.subplots(figsize=(5, 4))
    for scorer, s in report["scorers"].items():
        curve = s["pr_curve"]
        # Threshold 0 flags every pair (precision = base rate): not a useful operating point.
        keep = [i for i, t in enumerate(curve["threshold_minutes"]) if t > 0]
        recall = [curve["recall"][i] for i in keep]
        precision = [curve["precision"][i] for i in keep]
        (line,) = ax.plot(recall, precision, marker=".", ms=3, label=f"{scorer} (AP {s['pr_auc']})")
        if s["recall"] is not None and s["precision"] is not None:
            ax.plot([s["recall"]], [s["precision"]], "o", color=line.get_color(), ms=8, mfc="none")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{name}: close contacts, minutes threshold swept\n(circle: the scorer's default)", fontsize=9)
    ax.legend(fontsize=8)
    files["pr_curve.png"] = (_png(fig), None)
    return files


def _png(fig: Any, *, cropped: bool = False) -> bytes:
    """``fig`` as PNG bytes; ``cropped``: the image cut to what is drawn (the scene's equal aspect leaves most of a
    6 x 5 inch figure blank beside or below a wide or tall space, and tight_layout keeps that aspect)."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight" if cropped else None)
    plt.close(fig)
    return png.getvalue()
