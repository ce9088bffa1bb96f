"""``bluezone calibrate``: a thin, guided wrapper over bluezone.calibration.session."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bluezone.clitypes import FloatRange, json_option, read_answer, stdin_is_a_terminal
from bluezone.printable import printable_line

STEPS = """Calibrating {radio} against {reference}, {distance:g} m apart, for {duration:g} s.
  1. Put the two devices {distance:g} m apart (measure it), in the open, at the same height, nothing between them.
  2. The reference must advertise all the time: on a phone, exposure notifications on (an EN app installed),
     screen on; a reference radio is started by this command.
  3. Keep other phones and Bluetooth devices at least 5 m away, and do not move during the measurement.
  4. Google averages over orientations: when asked, turn the reference a quarter turn on the spot
     (four orientations in all), keeping the distance.
  5. On a phone, also open a BLE scanner app (e.g. nRF Connect), find the advert with service 0xFD6F that
     is strongest, and note its typical RSSI: it gives this adapter's TX power (asked at the end)."""


#: Rows ``--find`` prints on the terminal (--json gives every match).
FIND_SHOWN = 30


def _on_terminal() -> bool:
    """Whether a person is there to follow the steps and answer (stdin and stderr are a terminal)."""
    return stdin_is_a_terminal() and sys.stderr.isatty()


def _progress():  # type: ignore[no-untyped-def]
    if not sys.stderr.isatty():
        return None

    turned = [0]

    def show(fraction: float, adverts: int) -> None:
        quarter = min(int(fraction * 4), 3)
        if quarter > turned[0]:  # Google's procedure measures in several orientations
            turned[0] = quarter
            click.echo(f"\nturn the reference a quarter turn now ({quarter + 1} of 4)", err=True)
        click.echo(f"\rmeasuring: {fraction * 100:5.1f} %, {adverts} adverts heard", err=True, nl=fraction >= 1.0)

    return show


@click.command("calibrate")
@click.option("--radio", "--backend", "radio_spec", default="auto", show_default=True,
              help="Radio to calibrate: auto, bluez[:hciN], bumble:<transport>, or emulated (virtual clock, for trying it);"
                   " --backend as in bluezone run (the radio errors advise it).")
@click.option("--adapter", default=None, help="BlueZ adapter (hci0, ...) for auto/bluez.")
@click.option("--reference", "reference_model", default=None,
              help="The reference phone's model as Google's table names it (e.g. 'Pixel 4', 'SM-G973F').")
@click.option("--reference-manufacturer", default=None, help="The reference phone's manufacturer, if the model is ambiguous.")
@click.option("--reference-radio", default=None, help="Or a second, calibrated radio as the reference (bluez:hci1, ...).")
@click.option("--reference-rssi-correction", type=click.IntRange(-60, 60), default=None,
              help="The reference's RSSI correction, dB (required with --reference-radio; overrides the table).")
@click.option("--reference-tx-power", type=click.IntRange(-50, 20), default=None,
              help="The reference's calibrated TX power, dBm (required with --reference-radio; overrides the table).")
@click.option("--distance", default=1.0, show_default=True, type=FloatRange(0.3, 3.0), help="Measured distance between the devices, metres (Google uses 1 m).")
@click.option("--duration", default=180.0, show_default=True, type=FloatRange(max=3600),
              help="Seconds to measure (at least 30: 100 adverts of a phone sending one every 270 ms).")
@click.option("--phone-rssi", type=FloatRange(-127, 20), default=None,
              help="Median RSSI the reference phone's BLE scanner showed for this adapter, dBm: gives its TX power.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Daemon TOML to write (default: $XDG_CONFIG_HOME/bluezone/daemon.toml; with --radio emulated, none unless given).")
@click.option("--dry-run", is_flag=True, help="Measure and print, write nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask: start at once (and skip the phone RSSI question).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the emulated radio.")
@click.option("--emulated-offsets", nargs=2, type=FloatRange(-40, 40), default=(0.0, 0.0), show_default=True,
              help="Emulated radio only: dB the adapter reads too strong and sends above its advertised power.")
@click.option("--find", "find_text", default=None,
              help="Only list the models in Google's table whose name contains TEXT (to name --reference), then exit.")
@json_option(help="Print the result as JSON.")
def calibrate(
    radio_spec: str, adapter: str | None, reference_model: str | None, reference_manufacturer: str | None,
    reference_radio: str | None, reference_rssi_correction: int | None, reference_tx_power: int | None,
    distance: float, duration: float, phone_rssi: float | None, config_path: Path | None, dry_run: bool,
    yes: bool, seed: int, emulated_offsets: tuple[float, float], find_text: str | None, as_json: bool,
) -> None:
    """Measure this Linux adapter's RSSI correction and TX power against a device of known calibration.

    Google's method: two devices at a measured distance (1 m) for a few minutes, one of them of
    known calibration: a phone in Google's table (--reference MODEL) or a second, calibrated
    radio (--reference-radio). The result goes into the daemon's config: the daemon then puts
    the calibrated TX power into its AEM, and `bluezone check` corrects RSSI with it.
    """
    if find_text is not None:
        _find(find_text, as_json)
        return
    from bluezone.calibration.procedure import check_duration, with_phone_reading
    from bluezone.calibration.session import ReferenceSpec, run_calibration, save_calibration
    from bluezone.config import check_settings_file, default_config_path

    # both read this radio themselves: a number typed beside them was ignored without a word
    if phone_rssi is not None and reference_radio is not None:
        raise click.UsageError(
            "--phone-rssi is a phone's BLE scanner reading; a --reference-radio hears this radio itself"
            " (leave --phone-rssi out)"
        )
    if phone_rssi is not None and radio_spec.split(":", 1)[0] == "emulated":
        raise click.UsageError(
            "--phone-rssi is a real phone's BLE scanner reading; on the emulated radio the reference phone hears this"
            " radio itself and that gives the TX power (leave --phone-rssi out)"
        )

    check_duration(duration)  # before the questions and the measuring, not after them
    reference = ReferenceSpec(
        reference_model, reference_manufacturer, reference_radio, reference_rssi_correction, reference_tx_power
    )
    name, correction, _ = reference.numbers()  # an unknown phone fails here, before any waiting
    target = config_path or default_config_path()
    # an emulated measurement is invented: it calibrates this machine's daemon only if asked to
    invented = radio_spec.split(":", 1)[0] == "emulated" and config_path is None
    dry_run = dry_run or invented
    if not dry_run:
        check_settings_file(target)  # and a config it cannot write into, not after minutes of measuring
    interactive = _on_terminal() and not yes and not as_json
    if interactive:
        click.echo(STEPS.format(radio=radio_spec, reference=name, distance=distance, duration=duration), err=True)
        click.confirm("Ready to measure?", default=True, abort=True, err=True)
    result = run_calibration(
        radio_spec, reference, adapter=adapter, distance_m=distance, duration_s=duration,
        phone_rssi=phone_rssi, seed=seed, emulated_offsets=emulated_offsets, progress=_progress(),
    )
    if result.tx_power_dbm is None and interactive:
        answer = read_answer(
            "RSSI your phone's BLE scanner showed for this adapter (dBm; Enter to skip): ", "the phone RSSI typed",
            "type the reading in dBm (e.g. -79), or give it with --phone-rssi",
        ).strip()
        if answer:
            try:
                reading = float(answer)
            except ValueError:
                raise click.BadParameter(f"{answer!r} is not a number", param_hint="phone RSSI") from None
            result = with_phone_reading(result, correction, reading)
    written = None if dry_run else save_calibration(target, result)
    if as_json:
        out = result.as_dict() | {"config": None if written is None else str(target)}
        click.echo(json.dumps(out, indent=2))
        return
    tx = f"{result.tx_power_dbm} dBm" if result.tx_power_dbm is not None else "not measured (give --phone-rssi)"
    click.echo(
        f"heard {result.adverts_heard} adverts of {result.reference}: median {result.median_rssi_dbm:.1f} dBm "
        f"(interquartile range {result.spread_db:.1f} dB) at {result.distance_m:g} m"
    )
    click.echo(f"RSSI correction {result.rssi_correction_db:+d} dB, TX power {tx}")
    if invented:
        click.echo(printable_line(f"emulated radio: nothing written to {target} (give --config FILE to keep the result)"))
    elif written is None:
        click.echo("dry run: nothing written")
    else:
        click.echo(f"written to {target}: rssi_correction = {written.rssi_correction}, tx_power = {written.tx_power}")


def _find(text: str, as_json: bool) -> None:
    from bluezone.calibration.table import default_table

    found = default_table().search(text, limit=None)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if not found:
        click.echo(f"no model in Google's table matches {text!r}")
        return
    for r in found[:FIND_SHOWN]:
        click.echo(f"{r.manufacturer:<12} {r.model:<28} RSSI correction {r.rssi_correction_db:+3d} dB  "
                   f"TX power {r.tx_power_dbm:4d} dBm  ({r.source})")
    if len(found) > FIND_SHOWN:  # "samsung" matches hundreds: say so rather than stop silently
        click.echo(f"... and {len(found) - FIND_SHOWN} more: give more of the name (or --json for all)")
