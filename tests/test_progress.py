"""Progress for long work: a bar per stage on a terminal, not a byte more when piped."""

from __future__ import annotations

import io
from pathlib import Path

from bluezone.progress import TerminalProgress, fraction_of, terminal_progress

DATASETS = Path(__file__).parent / "data" / "datasets"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_start_line_and_a_bar_per_stage() -> None:
    out = Terminal()
    with terminal_progress("work: 3 stages", file=out) as progress:
        assert isinstance(progress, TerminalProgress)
        for stage in ("one", "two"):
            for k in range(5):
                progress(stage, (k + 1) / 5)
    text = out.getvalue()
    assert text.startswith("work: 3 stages\n") and text.count("work: 3 stages") == 1
    assert "one" in text and "two" in text and "100%" in text


def test_piped_output_gets_nothing() -> None:
    out = io.StringIO()
    with terminal_progress("work", file=out) as progress:
        assert progress is None
        assert fraction_of(progress, "stage") is None
    assert out.getvalue() == ""


def test_evaluate_reports_its_first_seconds_too() -> None:
    from bluezone.sim.evaluate import evaluate

    heard: list[tuple[str, float]] = []
    evaluate(DATASETS / "ng_small", chains=20, bootstrap=3, progress=lambda s, f: heard.append((s, f)))
    stages = list(dict.fromkeys(s for s, _ in heard))
    assert stages == ["reading the recordings", "scoring one-minute windows", "bootstrap"]
    assert heard[0] == ("reading the recordings", 0.0) and heard[-1] == ("bootstrap", 1.0)


def test_server_benchmark_reports_each_stage_between_timings() -> None:
    from bluezone.server.benchmark import run_benchmark

    heard: list[tuple[str, float]] = []
    run_benchmark(None, 3, 200, 1, progress=lambda s, f: heard.append((s, f)))
    stages = list(dict.fromkeys(s for s, _ in heard))
    assert stages == ["warm-up", "3 uploads three ways", "storing 200 keys to export", "export of 200 keys"]
    assert heard[-1][1] == 1.0
    fractions = [f for s, f in heard if s == "3 uploads three ways"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
