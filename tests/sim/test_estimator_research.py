"""research/estimator_sweep.py must score exactly as the bluezone scorer does, or its choice means nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.receiver import for_receiver
from bluezone.sim import engine, report
from bluezone.sim.scenario import load_scenario

from research_scripts import research

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "simulations" / "results"


@pytest.fixture(scope="module")
def classroom_run() -> tuple:
    """A short classroom run through the engine, cached as estimator_cache.py caches it: (result, data)."""
    cache = research("estimator_cache")
    scenario = load_scenario(ROOT / "simulations" / "classroom.toml").with_overrides(duration_min=25)
    result = engine.run(scenario, seed=5, scorers=["gaen", "bluezone"], store="memory", keep_windows=True)
    keys, true = report.units(result)
    config = BluezoneConfig()
    data = {
        "keys": keys, "true": true, "cc": scenario.close_contact_min,
        "units": {k: cache.unit_features(ws, result.contexts[k[2]], config) for k, ws in result.windows.items()},
        "scores": {n: (np.array([s[k].weighted_minutes if k in s else 0.0 for k in keys]),
                       np.array([s[k].close_contact if k in s else False for k in keys])) for n, s in result.scores.items()},
    }
    return result, data


def ranking_off(result, keys: list) -> np.ndarray:
    """Each pair's ``weighted_minutes`` with the ranking's own reference off (``ranking_reference_strongest = 0``,
    the scorer before est20), which research's arithmetic (estimator_sweep.py, llr_estimator.py) reproduces."""
    off = BluezoneScorer(BluezoneConfig(ranking_reference_strongest=0))
    index = {k: i for i, k in enumerate(keys)}
    weighted = np.zeros(len(keys))
    for key, windows in result.windows.items():
        judge = for_receiver(off, result.contexts[key[2]])
        weighted[index[key]] = sum(judge.score(w).weighted_minutes for w in windows)
    return weighted


def test_research_arithmetic_equals_the_scorer_on_a_real_run(classroom_run: tuple) -> None:
    """The verdict is estimator_sweep.py's shipped one, the ranking llr_estimator.py's hybrid with the ranking's own
    reference off (``ranking_reference_strongest = 0``: research/llr_estimator.py predates it; the setting, on by
    default since est20, is checked against research's SlackCapScorer below)."""
    sweep = research("estimator_sweep")
    result, data = classroom_run
    keys = data["keys"]
    config = BluezoneConfig()
    flat = sweep.flatten(data)
    defaults = dict(
        beta=config.minute_reference_weight, q=f"{config.minute_reference_quantile:g}", kmin=config.minute_reference_min_links,
        centre=config.minute_reference_db, clip=config.minute_reference_clip_db, shape="ramp",
        decision_db=config.threshold_db, threshold=config.threshold_db, width=config.ramp_db,
    )
    _, verdict = sweep.estimate(flat, defaults)
    assert verdict.any() and (~verdict).any()
    engine_weighted, engine_verdict = data["scores"]["bluezone"]
    # the cache joins a unit's windows before smoothing, the scorer smooths each: equal unless a key changed mid-encounter
    assert np.mean(verdict == engine_verdict) > 0.98
    # the ranking is research/llr_estimator.py's hybrid, as chosen there (llr_choice.json), on the shipped table
    llr = research("llr_estimator")
    chosen = json.loads((RESULTS / "llr_choice.json").read_text())["llr chosen"]
    assert chosen == {"kind": "hybrid", "scale": config.chain_scale, "switch": config.chain_switch, "prior": config.chain_prior}
    table = json.loads((ROOT / "bluezone" / "matching" / "data" / "llr_table.json").read_text())
    fitted = json.loads((RESULTS / "llr_table.json").read_text())
    assert (table["centres_db"], table["llr"]) == (fitted["centres_db"], fitted["llr"])
    ranking, hybrid_verdict = llr.apply(flat, chosen, table, sweep.shipped())
    assert (hybrid_verdict == verdict).all()  # the hybrid's verdict is the shipped one
    one_window = np.array([len(result.windows.get(k, [])) == 1 for k in keys])
    assert one_window.sum() > 100 and (ranking[one_window] > 0.01).sum() > 20
    # the scorer rounds to 0.001; a unit of two windows (a key change mid-encounter) is two chains in the scorer
    off_weighted = ranking_off(result, keys)
    assert off_weighted[one_window] == pytest.approx(ranking[one_window], abs=6e-4)
    assert not np.array_equal(off_weighted, engine_weighted)  # the default's ranking reads crowded minutes its own way


def test_verdict_cache_rescores_as_the_engine_does(classroom_run: tuple, tmp_path: Path) -> None:
    """research/verdict_cache.py scores its variants on the kept windows: the shipped one again must be the
    engine's scores to the digit, a present verdict ranks the same, and ``--grid`` at 15 is the scorer's cut."""
    import pickle

    for sibling in ("credit_cache", "credit_recordings"):  # what verdict_cache.py imports beside it
        research(sibling)
    vc = research("verdict_cache")
    result, data = classroom_run
    extra = vc.variant_scores(result, data["keys"])
    weighted, decided = data["scores"]["bluezone"]
    again = extra["variant_scores"]["vs_59"]
    assert (again[0] == weighted).all() and (again[1] == decided).all()
    present = extra["variant_scores"]["vp_59"]
    assert (present[0] == weighted).all() and present[1].sum() <= decided.sum() and decided.sum() > 0
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "classroom_5.pkl").write_bytes(pickle.dumps({**data, **extra}))
    vc.grid(tmp_path / "in", tmp_path / "out", (14.5, 15.0))
    scores = pickle.loads((tmp_path / "out" / "classroom_5.pkl").read_bytes())["scores"]
    assert (scores["vp_59@15"][1] == present[1]).all() and (scores["vp_59@14.5"][1] >= present[1]).all()


def test_margin_alarms_candidate_at_the_shipped_settings_is_the_scorer(classroom_run: tuple) -> None:
    """research/margin_alarms.py scores candidates for the fresh seeds: at its SHIPPED setting it must
    give the engine's verdicts and ranking (with the ranking's own reference off, which it predates), a chain
    veto only removes verdicts, a day term of weight 0 changes nothing."""
    sweep, llr = research("estimator_sweep"), research("llr_estimator")
    alarms = research("margin_alarms")  # imports the two above as scripts
    result, data = classroom_run
    c = BluezoneConfig()
    assert alarms.SHIPPED == dict(beta=c.minute_reference_weight, q=f"{c.minute_reference_quantile:g}", kmin=c.minute_reference_min_links,
                                  centre=c.minute_reference_db, clip=c.minute_reference_clip_db, threshold=c.threshold_db, veto=0.0)
    flat = sweep.flatten(data)
    p = llr.padded(flat)
    ranking, verdict = alarms.candidate(flat, p, alarms.SHIPPED)
    engine_weighted, engine_verdict = data["scores"]["bluezone"]
    one_window = np.array([len(result.windows.get(k, [])) == 1 for k in data["keys"]])
    assert verdict.any() and np.mean(verdict == engine_verdict) > 0.98
    assert (verdict[one_window] == engine_verdict[one_window]).all()
    assert ranking_off(result, data["keys"])[one_window] == pytest.approx(ranking[one_window], abs=6e-4)
    _, vetoed = alarms.candidate(flat, p, {**alarms.SHIPPED, "veto": 20.0})
    assert (vetoed <= verdict).all() and vetoed.sum() < verdict.sum()
    same = alarms.candidate(flat, p, {**alarms.SHIPPED, "day_weight": 0.0, "day_centre": 50.0})
    assert (same[0] == ranking).all() and (same[1] == verdict).all()
    moved, _ = alarms.candidate(flat, p, {**alarms.SHIPPED, "day_weight": 0.5, "day_centre": 50.0})
    assert not np.allclose(moved, ranking)


def test_paired_noise_scores_both_scorers_on_the_same_draw() -> None:
    """A scorer identical to GAEN has margin 0 on every draw (a draw per scorer would not); a
    perfect verdict is never behind GAEN's in F1."""
    sweep = research("estimator_sweep")
    rng = np.random.default_rng(3)
    n = 400
    truth = rng.random(n) < 0.3
    gaen_est = truth * 10.0 + rng.normal(0, 8, n)
    gaen_decided = gaen_est > 12
    empty = np.zeros(0)
    flat = sweep.Flat(
        unit=empty, slot=empty, p10=empty, count=empty, sd=empty, day_ref=empty, others={}, others_n=empty,
        truth=truth, receiver=rng.integers(0, 40, n), scores={"gaen": (gaen_est, gaen_decided)},
        window=empty, bridge=(empty, empty, empty),
    )
    lo, hi, below = sweep.paired_noise(flat, gaen_est, gaen_decided, 50)
    assert np.all(lo == 0) and np.all(hi == 0) and np.all(below == 0)
    lo, hi, below = sweep.paired_noise(flat, truth * 1.0, truth, 50)
    assert lo[0] > 0 and below[0] == 0 and hi[0] > lo[0]


def test_minute_truth_adds_up_to_the_engines_truth() -> None:
    """The cache's per-minute truth (what llr_estimator.py fits on) sums to the report's minutes."""
    from unittest import mock

    cache = research("estimator_cache")
    scenario = load_scenario(ROOT / "simulations" / "clinic.toml").with_overrides(duration_min=12)
    with mock.patch.object(engine, "Truth", cache.MinuteTruth):
        result = engine.run(scenario, seed=4, scorers=["gaen"], store="memory")  # a seed with pairs near for minutes
    per_minute = sum(result.truth.near_seconds.values()) / 60.0
    (day, minutes), = result.truth.minutes(scenario.close_distance_m).items()
    assert minutes.max() > 1.0
    assert per_minute == pytest.approx(minutes, abs=1e-3)
    assert len(result.truth.near_seconds) in (12, 13)  # minutes of the run (a start mid-minute spans one more)


def test_llr_posterior_equals_a_plain_forward_backward() -> None:
    """The vectorised two-state chain over padded links gives each minute the posterior a
    textbook forward-backward with explicit transition matrices gives, gaps included."""
    llr = research("llr_estimator")
    sweep = research("estimator_sweep")
    rng = np.random.default_rng(4)
    lengths = [1, 2, 7, 30, 5]
    unit = np.repeat(np.arange(len(lengths)), lengths)
    slot = np.concatenate([np.cumsum(rng.integers(1, 5, n)) for n in lengths])
    flat = sweep.Flat(
        unit=unit, slot=slot, p10=np.zeros(len(unit)), count=np.zeros(len(unit)), sd=np.zeros(len(unit)),
        day_ref=np.zeros(len(unit)), others={}, others_n=np.zeros(len(unit)), truth=np.zeros(len(lengths), bool),
        receiver=np.zeros(len(lengths)), scores={}, window=np.zeros(0), bridge=(np.zeros(0), np.zeros(0), np.zeros(0)),
    )
    evidence = rng.normal(0, 2, len(unit))
    switch, prior = 0.07, 0.15
    got = llr.posterior(llr.padded(flat), evidence, switch, prior)

    def step(k: int) -> np.ndarray:
        keep = (1 - switch) ** k
        return keep * np.eye(2) + (1 - keep) * np.array([[prior, 1 - prior], [prior, 1 - prior]])

    for u in range(len(lengths)):
        idx = np.flatnonzero(unit == u)
        emit = np.stack([np.exp(evidence[idx]), np.ones(len(idx))], axis=1)
        alpha = np.zeros((len(idx), 2))
        a = np.array([prior, 1 - prior]) * emit[0]
        alpha[0] = a / a.sum()
        for i in range(1, len(idx)):
            a = (alpha[i - 1] @ step(slot[idx[i]] - slot[idx[i - 1]])) * emit[i]
            alpha[i] = a / a.sum()
        beta = np.ones((len(idx), 2))
        for i in range(len(idx) - 2, -1, -1):
            b = step(slot[idx[i + 1]] - slot[idx[i]]) @ (emit[i + 1] * beta[i + 1])
            beta[i] = b / b.sum()
        want = alpha[:, 0] * beta[:, 0] / (alpha * beta).sum(axis=1)
        assert got[idx] == pytest.approx(want, abs=1e-12)
    # switch = 1 forgets everything: each minute's posterior is its own evidence against the prior
    alone = llr.posterior(llr.padded(flat), evidence, 1.0, prior)
    assert alone == pytest.approx(1 / (1 + np.exp(-(evidence + np.log(prior / (1 - prior))))), abs=1e-12)


def test_llr_table_fit_is_the_least_squares_non_increasing_one() -> None:
    llr = research("llr_estimator")
    y = np.array([3.0, 1.0, 2.0, 0.0, 0.5, -1.0])
    fit = llr.pav_decreasing(y, np.ones(len(y)))
    assert np.all(np.diff(fit) <= 0) and fit.sum() == pytest.approx(y.sum())
    assert fit.tolist() == pytest.approx([3.0, 1.5, 1.5, 0.25, 0.25, -1.0])


def test_ends_cache_rescores_every_credit_as_the_scorer_does(classroom_run: tuple, tmp_path: Path) -> None:
    """research/ends_cache.py keeps each window's judged slots and re-scores verdict credits without a run:
    whole slots, "present", "ends" and "span" must be the real scorer's verdicts to the bit and minutes to the digit."""
    import pickle

    from bluezone.matching.bluezone_scorer import BluezoneScorer
    from bluezone.matching.receiver import for_receiver

    for sibling in ("credit_cache", "credit_recordings"):  # what ends_cache.py imports beside it
        research(sibling)
    ends = research("ends_cache")
    result, data = classroom_run
    keys = data["keys"]
    extra = ends.keep(result, keys)
    for credit in ("slots", "present", "ends", "span"):
        for threshold in (58.5, 59.0, 59.5):
            scorer = BluezoneScorer(BluezoneConfig(verdict_credit=credit, threshold_db=threshold))
            real = np.zeros(len(keys))
            decided = np.zeros(len(keys), bool)
            for i, key in enumerate(keys):
                for w in result.windows.get(key, ()):
                    s = for_receiver(scorer, result.contexts[key[2]]).score(w)
                    real[i] = max(real[i], s.minutes_by_bucket["within_2m"])
                    decided[i] |= s.close_contact
            mine = ends.verdict_minutes(extra["windows_kept"], keys, credit, threshold)
            assert (np.round(mine, 3) == real).all() and ((mine >= 15.0 - 1e-9) == decided).all()
    assert (extra["ends_59_scorer"][0] == data["scores"]["bluezone"][0]).all()  # the ranking does not move
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "classroom_5.pkl").write_bytes(pickle.dumps({**data, **extra}))
    ends.grid(tmp_path / "in", tmp_path / "out", (59.0,), (14.9, 15.0))
    scores = pickle.loads((tmp_path / "out" / "classroom_5.pkl").read_bytes())["scores"]
    assert (scores["slots_59@15"][1] == data["scores"]["bluezone"][1]).all()
    assert (scores["ends_59@15"][1] == extra["ends_59_scorer"][1]).all()
    assert (scores["ends_59@14.9"][1] >= scores["ends_59@15"][1]).all()


def test_reference_retune_rescores_as_the_engine_does(classroom_run: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """research/reference_retune.py scores any setting on a run's kept windows and contexts: the shipped scorer
    again must be the engine's scores to the bit, a laxer threshold alone must keep the ranking and only add
    flags, and its check must say so when a cache's engine scores are not what it re-scores."""
    import pickle

    for sibling in ("credit_cache", "credit_recordings", "estimator_cache", "estimator_sweep", "reference_bounds"):
        research(sibling)  # what reference_retune.py imports beside it
    retune = research("reference_retune")
    result, data = classroom_run
    d = {**data, "windows": result.windows, "contexts": result.contexts}
    assert retune.settings("cap4_r63_t59.5") == {"minute_reference_strongest": 4, "minute_reference_db": 63.0,
                                                "threshold_db": 59.5}
    assert retune.settings("cap7_q50") == {"minute_reference_strongest": 7, "minute_reference_quantile": 50.0}
    weighted, decided = data["scores"]["bluezone"]
    again = retune.scored(d, "shipped")
    assert (again[0] == weighted).all() and (again[1] == decided).all() and decided.sum() > 0
    lax = retune.scored(d, "shipped_t60")
    assert (lax[0] == weighted).all() and (lax[1] >= decided).all() and lax[1].sum() > decided.sum()
    capped = retune.scored(d, "cap2_r62")
    assert not (capped[0] == weighted).all()  # the form and the nominal move the ranking
    # the slack cap is the two-sided cap at no slack, the shipped scorer at a slack no minute reaches, between them else
    # (SlackCapScorer reads its one reference for the verdict and the ranking: the scorer's forms with the ranking's
    # own reference off, ``_k0`` / ``rank0``, since that is on by default, est20)
    assert retune.settings("cap2_r62_k0") == {"minute_reference_strongest": 2, "minute_reference_db": 62.0,
                                             "ranking_reference_strongest": 0}
    capped_off, before = retune.scored(d, "cap2_r62_k0"), retune.scored(d, "rank0")
    for got, want in ((retune.scored(d, "scap2_s0_r62"), capped_off), (retune.scored(d, "scap2_s100"), before)):
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all()
    assert not (retune.scored(d, "scap2_s2_r62")[0] == capped_off[0]).all()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "classroom_5.pkl").write_bytes(pickle.dumps(d))
    retune.score(tmp_path / "in", tmp_path / "out", ["shipped_t60"], None)
    retune.score(tmp_path / "in", tmp_path / "out", ["cap2_r62~shipped_t60"], None)  # from what the first kept
    kept = pickle.loads((tmp_path / "out" / "classroom_5.pkl").read_bytes())["scores"]
    assert (kept["shipped_t60"][1] == lax[1]).all() and "differs" not in capsys.readouterr().out
    mixed = kept["cap2_r62~shipped_t60"]  # one's ranking, the other's verdict
    assert (mixed[0] == capped[0]).all() and (mixed[1] == lax[1]).all()
    wrong = {**d, "scores": {**d["scores"], "bluezone": (weighted + 1.0, decided)}}
    (tmp_path / "in" / "classroom_5.pkl").write_bytes(pickle.dumps(wrong))
    retune.score(tmp_path / "in", tmp_path / "again", [], None)
    assert "re-scored differs from the engine's" in capsys.readouterr().out


def test_the_ranking_reference_setting_is_the_slack_cap_read_for_the_ranking_alone(classroom_run: tuple) -> None:
    """The scorer's ``ranking_reference_strongest = 6``, ``ranking_reference_slack_db = 1`` (``rank6_s1``) on a
    real run's windows and receiver contexts: each window's ``weighted_minutes`` is research's independent
    ``SlackCapScorer`` (scap6_s1) to the bit, every other field the scorer's with the setting off, and the ranking
    moves; the default (``shipped``) is this setting since est20."""
    for sibling in ("credit_cache", "credit_recordings", "estimator_cache", "estimator_sweep", "reference_bounds"):
        research(sibling)
    retune = research("reference_retune")
    result, _ = classroom_run
    assert retune.settings("rank6_s1") == {"ranking_reference_strongest": 6, "ranking_reference_slack_db": 1.0}
    scorers = [retune.scorer(v) for v in ("rank6_s1", "scap6_s1", "rank0")]  # rank0: the setting off (before est20)
    moved = 0
    for key, windows in result.windows.items():
        product, slack, shipped = (for_receiver(s, result.contexts[key[2]]) for s in scorers)
        for w in windows:
            a, b, c = product.score(w), slack.score(w), shipped.score(w)
            assert a.weighted_minutes == b.weighted_minutes
            assert replace(a, weighted_minutes=c.weighted_minutes) == c
            moved += a.weighted_minutes != c.weighted_minutes
    assert moved > 0
    assert retune.settings("shipped") == {} and BluezoneConfig().ranking_reference_strongest == 6


def test_the_guard_rule_passes_a_ranking_gain_no_loss_needs_and_refuses_a_crossing_a_null_change_or_a_moved_verdict(
    capsys: pytest.CaptureFixture,
) -> None:
    """research/ranking_rule.py --rule guard (est20): a ranking-only change that lifts a run and takes none below GAEN
    passes though no run was below GAEN to fix (est19's rule fails it for that alone); one that takes a run below
    GAEN, one that moves nothing, and one that moves a verdict do not."""
    research("estimator_sweep")
    rule = research("ranking_rule")
    truth = np.array([True, True, False, False, False])
    off = np.zeros(5, bool)
    gaen = (np.array([3.0, 1.0, 2.0, 0.0, 0.0]), off)  # ROC-AUC 5/6

    def runs(candidate_1: np.ndarray, candidate_2: np.ndarray, verdict: np.ndarray = off) -> dict:
        shipped_1, shipped_2 = np.array([3.0, 1.0, 2.0, 0.5, 0.0]), np.array([3.0, 2.5, 2.0, 0.0, 0.0])
        return {("room", 1): (truth, {"gaen": gaen, "shipped": (shipped_1, off), "c": (candidate_1, verdict)}),
                ("room", 2): (truth, {"gaen": gaen, "shipped": (shipped_2, off), "c": (candidate_2, off)})}

    def judged(r: dict, form: str) -> tuple[bool, str]:
        passed = rule.report(rule.judge(r, "shipped", "c"), "shipped", "c", 2, form)
        return passed, capsys.readouterr().out

    lifted = runs(np.array([3.0, 2.5, 2.0, 0.5, 0.0]), np.array([3.0, 2.5, 2.0, 0.0, 0.0]))
    passed, out = judged(lifted, "guard")
    assert passed and "runs at or above GAEN under shipped and below under c: none" in out
    passed, out = judged(lifted, "est19")
    assert not passed and "rule 2 (ranking losses fall, none rises, every verdict identical): FAILS" in out
    crossed = runs(np.array([3.0, 2.5, 2.0, 0.5, 0.0]), np.array([3.0, 0.5, 2.0, 1.0, 0.0]))  # run 2: 4/6 < 5/6
    passed, out = judged(crossed, "guard")
    assert not passed and "{'room': ['ROC-AUC 2'" in out and "every verdict identical): FAILS" in out
    same = runs(np.array([3.0, 1.0, 2.0, 0.5, 0.0]), np.array([3.0, 2.5, 2.0, 0.0, 0.0]))
    passed, out = judged(same, "guard")
    assert not passed and "and in PR-AUC): FAILS" in out
    moved = runs(np.array([3.0, 2.5, 2.0, 0.5, 0.0]), np.array([3.0, 2.5, 2.0, 0.0, 0.0]), truth.copy())
    passed, out = judged(moved, "guard")
    assert not passed and "verdicts differ from shipped's: {'room': [1]}" in out
