"""``bluezone simulate`` and ``bluezone evaluate``: thin wrappers over bluezone.sim."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bluezone.clitypes import FloatRange, json_option, make_writable_dir
from bluezone.errors import ConfigError, InputError
from bluezone.printable import printable_line
from bluezone.progress import fraction_of, terminal_progress


def _list_scenarios(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from bluezone.sim.catalogue import find_scenario, scenario_names
    from bluezone.sim.scenario import load_scenario

    for name in scenario_names():
        click.echo(f"{name:<12}{load_scenario(find_scenario(name)).description}")
    ctx.exit()


def _complete_scenario(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion: the shipped scenario names (files complete as files)."""
    from bluezone.sim.catalogue import scenario_names

    return [name for name in scenario_names() if name.startswith(incomplete)]


@click.command("simulate")
@click.argument("scenario", required=False, shell_complete=_complete_scenario)
@click.option("--list", "list_", is_flag=True, is_eager=True, expose_value=False, callback=_list_scenarios,
              help="List the scenarios shipped with bluezone and exit.")
@click.option("--generate", "generate_kind", metavar="KIND", help="Instead of SCENARIO, a procedural scene drawn from --seed: room, crowd, carriage or storeys.")
@click.option("--save-scene", type=click.Path(dir_okay=False, path_type=Path), help="With --generate: also write the generated scene as a scenario file.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Random seed: the same seed gives the same run (and, with --generate, the same scene).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), help="Write report.json and PNG plots here.")
@click.option("--minutes", type=FloatRange(0.1, 24 * 60), help="Override the scenario's duration (0.1-1440, as in the file).")
@click.option("--store", default="auto", show_default=True, type=click.Choice(["auto", "sqlite", "memory"]), help="Where phones keep sightings: a real SQLite store each, numpy in memory, or auto by crowd size.")
@click.option(
    "--levels", "f0_count", type=click.IntRange(1), default=None,
    help="Also score F1 and F2 warnings with this many F0s drawn by the seed (scenarios with positives = \"all\").",
)
@click.option(
    "--venues", "venue_rates", default=None, metavar="RATES",
    help="Also report what venue check-in adds to Bluetooth at these shares of people using bluezone "
    "(comma-separated, e.g. 0.074,0.3,0.7; docs/venues.md).",
)
@click.option(
    "--checkin-rate", type=FloatRange(0.0, 1.0), default=1.0, show_default=True,
    help="With --venues: share of users checked in (1: a venue beacon checks them in).",
)
@json_option(help="Print the report as JSON.")
def simulate(
    scenario: str | None,
    generate_kind: str | None,
    save_scene: Path | None,
    seed: int,
    out: Path | None,
    minutes: float | None,
    store: str,
    f0_count: int | None,
    venue_rates: str | None,
    checkin_rate: float,
    as_json: bool,
) -> None:
    """Run a crowd scenario through bluezone's real code and score both scorers against the truth.

    SCENARIO is a scenario file or the name of one shipped with bluezone (`bluezone simulate market`;
    `--list` shows them); `--generate KIND` runs a procedural scene instead.
    """
    from bluezone.sim import engine, report
    from bluezone.sim.catalogue import find_scenario
    from bluezone.sim.scenario import load_scenario

    if scenario is not None and generate_kind is not None:
        raise click.UsageError("give a scenario or --generate KIND, not both")
    if save_scene is not None and generate_kind is None:
        raise click.UsageError("--save-scene goes with --generate")
    if generate_kind is not None:
        from bluezone.sim.generate import generate, save

        scene = generate(generate_kind, seed)
        if save_scene is not None:
            save(generate_kind, seed, save_scene)
    elif scenario is None:
        raise click.UsageError("give a scenario: a file, or a name from `bluezone simulate --list` (or --generate KIND)")
    else:
        scene = load_scenario(find_scenario(scenario))
    if minutes is not None:
        scene = scene.with_overrides(duration_min=minutes)
    rates = None
    if venue_rates is not None:
        try:
            rates = tuple(float(r) for r in venue_rates.split(","))
        except ValueError:
            rates = ()
        if not rates or not all(0.0 < r <= 1.0 for r in rates):
            raise click.BadParameter("give shares between 0 and 1, comma-separated (e.g. 0.074,0.3,0.7)", param_hint="--venues")
    if out is not None:
        make_writable_dir(out, "report", "--out")  # before the run: a market's minutes of work ended in 'FileNotFoundError'
    if f0_count is not None:
        from bluezone.sim.levels import check_levels_before_run

        check_levels_before_run(scene, seed, f0_count)  # not after the run: a wedding's five minutes, then refused
    start = f"simulate {scene.name}: {scene.people} people, {scene.duration_min:g} min, seed {seed}"
    with terminal_progress(start) as progress:
        result = engine.run(scene, seed, store=store, progress=fraction_of(progress, "simulating"))
    summary = report.summarise(result)
    if f0_count is not None:
        from bluezone.sim.levels import levels_summary

        summary["levels"] = levels_summary(result, f0_count, seed)
    if rates is not None:
        from bluezone.sim.venues import venue_adoption_summary

        summary["venues"] = venue_adoption_summary(result, rates, checkin_rate)
    if out is not None:
        try:
            report.write(result, summary, out)
        except OSError as exc:  # a full disk, a report.json that is a folder: was 'OSError: ...', exit 1
            what = exc.strerror or str(exc)
            click.echo(json.dumps(summary, indent=2) if as_json else report.table(summary))  # the run is not lost
            raise InputError(f"cannot write the report into {out}: {what} (the figures are above; check --out)") from None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(report.table(summary))
        if "levels" in summary:
            from bluezone.sim.levels import levels_table

            click.echo(levels_table(summary["levels"]))
        if "venues" in summary:
            from bluezone.sim.venues import venues_table

            click.echo(venues_table(summary["venues"]))
        if out is not None:
            click.echo(printable_line(f"report and plots in {out}"))


@click.command("evaluate")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the chained exposures and the bootstrap resampling.")
@click.option("--chains", default=400, show_default=True, type=click.IntRange(10, 100_000), help="Chained 20-minute exposures.")
@click.option("--bootstrap", default=100, show_default=True, type=click.IntRange(0, 10_000), help="Bootstrap resamples (0: none).")
@click.option(
    "--tx-power", type=click.IntRange(-100, 30),
    help="Calibrated TX power, dBm, of transmitters the calibration table gives none for (all phones with "
    "--no-calibration). Default: -24; with calibration, the dataset's measured beacon power where it has one "
    "(MIT LL's BlueProx iPhones: -3).",
)
@click.option(
    "--calibration/--no-calibration", default=True, show_default=True,
    help="Read each named phone with Google's per-device calibration table (RSSI correction, TX power).",
)
@click.option(
    "--calibration-table", type=click.Path(dir_okay=False, path_type=Path),
    help="Another calibration CSV in Google's format (default: the 2020-06-13 table shipped with bluezone).",
)
@click.option(
    "--rssi-shift", default=0.0, show_default=True, type=FloatRange(-30, 30),
    help="Add DB to every RSSI: the verdicts if every phone's calibration were off by that much.",
)
@click.option(
    "--bystanders/--no-bystanders", default=True, show_default=True,
    help="Judge each minute against the other devices the receiver heard in it (MIT LL's logs hold them; "
    "read at -24 dBm, never scored), as a bluezone receiver does with its other links.",
)
@json_option(help="Print the report as JSON.")
def evaluate(
    dataset: Path, seed: int, chains: int, bootstrap: int, tx_power: int | None, calibration: bool,
    calibration_table: Path | None, rssi_shift: float, bystanders: bool, as_json: bool,
) -> None:
    """Replay real RSSI recordings (DATASET/data/<setup>/*.csv or MIT LL PACT logs) through both scorers.

    Reports ROC-AUC, PR-AUC, precision/recall/F1 of chained 15-minute contacts, detection per
    distance, and nDCF = P_miss + P_fa at NIST TC4TL's 1.2, 1.8 and 3.0 m: for the default
    2 m decision, and for a decision made for each distance (thresholds moved by the path-loss
    model, 20·log10(D / 2 m) dB).
    """
    from bluezone.calibration.table import CalibrationTable
    from bluezone.sim.evaluate import evaluate as run_evaluation
    from bluezone.sim.evaluate import table

    if not dataset.is_dir():
        from bluezone.sim.datasets import LAYOUTS

        raise ConfigError(f"{dataset}: not a directory (expected {LAYOUTS})")
    if calibration_table is not None and not calibration:
        raise click.UsageError("--calibration-table and --no-calibration contradict each other")
    chosen: CalibrationTable | bool = CalibrationTable.from_path(calibration_table) if calibration_table else calibration
    with terminal_progress(f"evaluate {dataset}: {chains} chains, {bootstrap} bootstrap resamples, seed {seed}") as progress:
        report = run_evaluation(
            dataset, seed=seed, chains=chains, bootstrap=bootstrap, tx_power=tx_power, progress=progress,
            calibration=chosen, rssi_shift_db=rssi_shift, bystanders=bystanders,
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(table(report))
