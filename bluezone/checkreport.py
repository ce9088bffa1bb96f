"""What ``bluezone check`` reports: its result as JSON and as text, and what the verdicts mean for the reader.

The check itself is ``bluezone.matching.check_keys`` or ``bluezone.client.check_with_server``; this is only
how its result reads: an exposure continuing one of the day before across UTC midnight said as one meeting,
a store that heard nothing said so (not an all-clear), earlier exposures revised or withdrawn, venue
exposures in local time, and a last line saying what to do.  The text comes a line at a time; the command
(``bluezone/matching/cli.py``) prints it.  A module of the commands' row (docs/architecture.md): it reads
what the node remembers of a key server (``client``), which ``matching`` may not import, and a check of a
key file imports ``client`` only when its report needs it (two exposures, a close contact).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _midnight_pairs(result: Any) -> dict[int, int]:
    """The exposures of ``result`` that continue one of the day before across UTC midnight (later: earlier)."""
    if len(result.exposures) < 2:
        return {}
    from bluezone.client.exposures import across_midnight

    return across_midnight(result.exposures)


def _same_meetings(result: Any) -> dict[int, int]:
    """The F2 exposures of ``result`` that are the same meeting as an F1 of it (F2's index: the F1's)."""
    if len(result.exposures) < 2:
        return {}
    from bluezone.matching.levels import same_meetings

    return same_meetings(result.exposures)


def _told_f1(d: dict[str, Any]) -> str:
    """An F1 an earlier check told, as the F2 of its meeting names it: its UTC day and minutes."""
    return f"{d['date']} {d['start'][11:16]}-{d['end'][11:16]} UTC"


def report_as_dict(result: Any) -> dict[str, Any]:
    """``result.as_dict()``, each exposure that continues one of the day before across UTC midnight
    saying so (``continues_across_midnight``: the earlier one's index and the minutes of both), each F2
    that is the same meeting as an F1 of this check saying so (``same_meeting_as``: the F1's index), and
    ``close_contacts``: the close contacts the text counts (such an F2 not counted again), and each F2 that is the
    same meeting as an F1 an earlier check told (``same_meeting_as_earlier``: its place in ``earlier_exposures``),
    not counted either."""
    out = result.as_dict()
    same = _same_meetings(result)
    for j, i in same.items():
        out["exposures"][j]["same_meeting_as"] = i
    told = getattr(result, "told_meetings", {})
    for j, i in told.items():
        out["exposures"][j]["same_meeting_as_earlier"] = i
    out["close_contacts"] = result.close_contacts - len(same) - len(told)
    for j, i in _midnight_pairs(result).items():
        out["exposures"][j]["continues_across_midnight"] = {
            "from_index": i,
            "together_minutes": round(result.exposures[i].score.minutes + result.exposures[j].score.minutes, 3),
        }
    return out


def report_lines(
    result: Any, gaen: bool, own_keys_since: Callable[[str], bool], db_path: Path | None = None,
    server_url: str | None = None,
) -> Iterator[str]:
    """``bluezone check`` as text, a line at a time: one line per exposure, a summary, then revised earlier
    ones, venue exposures, and what it all means (``own_keys_since`` and ``server_url`` as for ``_what_now``)."""
    pairs = _midnight_pairs(result)
    same = _same_meetings(result)
    told = getattr(result, "told_meetings", {})
    for j, e in enumerate(result.exposures):
        s = e.score
        yield (
            f"{e.date}  {s.minutes:5.1f} min  closest {s.closest_attenuation} dB  typical "
            f"{s.typical_attenuation:.0f} dB  ~{s.distance_band}  {e.level or 'not ' + ('F2' if e.contact_of == 'F1' else 'F1')}"
            + ("  (a close contact of a close contact)" if e.level == "F2" else "")
            + (f"  ({LIKELY_CASE})" if e.diagnosis == "likely" else "")
            + ("  (TX power estimated)" if e.tx_power_estimated else "")
            + ("  [Bluezone v3]" if e.protocol == "bluezone3" else "")
            + ("  (the same meeting as the F1 in this list: the case's close contact was there too; not another contact)"
               if j in same else "")
            + (f"  (the same meeting as the F1 of {_told_f1(result.earlier[told[j]])} reported by an earlier check: the"
               " case's close contact was there too; not another contact)" if j in told else "")
        )
        if j in pairs:  # one meeting, two daily keys: said, not summed into the decision (GAEN judges per day too)
            earlier = result.exposures[pairs[j]]
            yield (
                f"            (continues the {earlier.date} exposure across UTC midnight: one meeting,"
                f" {earlier.score.minutes + s.minutes:.1f} min in all; each UTC day is judged on its own)"
            )
    sources = result.keys_said() if gaen else ""  # keys, not cases: padding and up to 14 a person
    if result.bluezone3_entries is not None:
        sources += (" and " if sources else "") + f"{result.bluezone3_entries} Bluezone v3 F0 list {'entry' if result.bluezone3_entries == 1 else 'entries'}"
    # an F2 of the same minutes as an F1 (of this check, or told before) is that meeting, not another contact
    close = result.close_contacts - len(same) - len(told)
    f2 = sum(e.level == "F2" for e in result.exposures) - len(same) - len(told)
    levels = "F1" if not f2 else f"F1 {close - f2}, F2 {f2}"
    if same:
        levels += f", and {'an F2' if len(same) == 1 else f'{len(same)} F2s'} of the same meeting{'' if len(same) == 1 else 's'}"
    counted = f"{close} close contact(s) ({levels})"
    if told:
        again = f"{'an F2' if len(told) == 1 else f'{len(told)} F2s'} of the F1 meeting{'' if len(told) == 1 else 's'} told before"
        counted = f"{close} close contact(s) ({levels}, and {again})" if close else f"no new close contact ({again})"
    if getattr(result, "new_batches", None) == 0 and result.bluezone3_entries is None:
        if getattr(result, "nothing_before", False) and not getattr(result, "rejected_earlier", 0):
            # nothing listed, and no name this node remembers (a first check, or back after 16 days): "since
            # the last check" misleads, and so would "no batches yet" to a node that matched some weeks ago
            yield "the server lists no batches: it published none in the last 14 days"
        else:
            yield "no new batches since the last check"  # "0 exposure(s)" would read as all-clear
    else:
        yield f"{len(result.exposures)} exposure(s), {counted} from {sources}"
        unheard = _nothing_stored_line(result, gaen, db_path)
        if unheard:
            yield unheard
        corrected = _correction_line(result)
        if corrected:
            yield corrected
    unchecked = _bluezone3_unchecked_line(result)
    if unchecked:
        yield unchecked
    left = getattr(result, "left_for_next_check", 0)
    if left:
        from bluezone.client.check import MAX_NEW_FILES_PER_CHECK

        yield (
            f"{left} more new file(s) listed than one check fetches ({MAX_NEW_FILES_PER_CHECK:,}): the next check fetches them"
        )
    gone = getattr(result, "gone", [])
    if gone:
        yield f"{len(gone)} listed file(s) gone when fetched (replaced since the index was read): the next check reads what replaced them"
    earlier = getattr(result, "earlier", [])
    if earlier:
        from bluezone.matching.levels import same_meetings_among_told

        # an F2 a later check told of an F1's meeting is that meeting here too, not another contact
        told_same = same_meetings_among_told(earlier)
        for j, d in enumerate(earlier):
            yield (
                f"{d['date']}  {d['duration_minutes']:5.1f} min  closest {d['closest_attenuation_db']} dB  typical "
                f"{d['typical_attenuation_db']:.0f} dB  ~{d['distance_band']}  {d.get('level') or 'not F1'}"
                + (f"  ({LIKELY_CASE})" if _likely(d) else "")
                + "  (reported by an earlier check)"
                + (f"  (the same meeting as the F1 of {_told_f1(earlier[told_same[j]])})" if j in told_same else "")
            )
        kept = sum(bool(d.get("close_contact")) for d in earlier) - len(told_same)
        yield f"{len(earlier)} exposure(s) reported before still in force (14 days), {kept} close contact(s)"
    for e in getattr(result, "withdrawn", []):
        if e.earlier_level == "F2":
            yield (
                f"{e.date}  withdrawn: the F2 warning of this day is over: the close contact you met"
                " (an F1) has tested negative"
            )
        else:
            yield (
                f"{e.date}  withdrawn: the {e.score.minutes:.1f}-min exposure reported before was to someone whose"
                " report has since been revoked (a negative test)"
            )
    for e in getattr(result, "updated", []):
        likely = e.diagnosis == "likely"
        if e.earlier_level == "F2" and e.level == "F1":
            yield (
                f"{e.date}  upgraded: the F2 warning of this day is now F1: the close contact you met"
                f" ({e.score.minutes:.1f} min) has "
                + ("been diagnosed as a likely case (no test yet)" if likely else "tested positive")
            )
        else:
            yield (
                f"{e.date}  updated: the {e.score.minutes:.1f}-min exposure reported before"
                f" ({e.level or 'not F1'}) is now to "
                + ("a likely case (diagnosed, no test yet)" if likely else "a confirmed positive test")
            )
    for v in getattr(result, "venue_exposures", []):
        d = v.as_dict()
        # the visitor's own stay and the minutes shared, never the case's times there (venues.matching.NOT_SHOWN)
        yield (
            f"{d['date']}  {d['overlap_minutes']:5.1f} min  at {d['venue']} ({d['address']}): you were there "
            f"{_local_span(d['your_visit'], d['date'])}; {_cases(d)} {'was' if d.get('cases', 1) == 1 else 'were'} there"
            f" too for {d['overlap_minutes']:.0f} min of it"
            + ("  (15 min or more in the same room)" if d["fifteen_minutes_or_more"] else "")
        )
    for d in getattr(result, "earlier_venue", []):
        yield (
            f"{d['date']}  {d['overlap_minutes']:5.1f} min  at {d['venue']} ({d['address']})"
            + (f" with {_cases(d)}" if d.get("cases", 1) > 1 else "")
            + ("  (15 min or more in the same room)" if d["fifteen_minutes_or_more"] else "")
            + "  (reported by an earlier check)"
        )
    for o in getattr(result, "own_checkins", []):  # an F0's own upload, published: not an exposure
        d = o.as_dict()
        yield (
            f"{d['date']}  at {d['venue']} ({d['address']}): your own check-in ({_local_span(d['your_visit'], d['date'])}),"
            f" uploaded {dt.datetime.fromisoformat(d['uploaded_at']).astimezone():%Y-%m-%d}: published to warn others"
            " who were there, not an exposure"
            + ("" if d["recorded"] else " (known by its times: the bluezone that sent it kept no record of its reports)")
        )
    if getattr(result, "venue_files", []) or getattr(result, "earlier_venue", []):
        yield (f"{len(result.venue_exposures)} venue exposure(s) from {len(result.venue_files)} venue-warning file(s)"
               + (f", {len(result.earlier_venue)} reported before (14 days)" if result.earlier_venue else ""))
    standing = _standing_line(result)
    if standing:
        yield standing
    advice = _what_now(result, own_keys_since, server_url)
    if advice:
        yield advice


def _standing_line(result: Any) -> str | None:
    """A check against a server: whether the reader is a close contact now (any close exposure within the 14
    days, earlier checks' too) and whether that is new since the last check, said apart (a repeat check after
    an F1 finds nothing new, which read as no close contact); None where there is nothing to say either way."""
    if not hasattr(result, "close_levels_now"):
        return None  # a key file's check remembers nothing: its lines are all there is
    levels = result.close_levels_now
    venue = result.venue_close_contact
    if not (levels or venue or result.exposures or result.earlier or result.updated or result.withdrawn):
        return None
    if not (levels or venue):
        return "Close contact now: no (no close exposure in force within the last 14 days)"
    # a venue's 15 minutes said beside the Bluetooth level, never as it: GAEN and CWA keep the two warnings
    # apart, and whether sharing a room makes an F1 is the health authority's rule (Vietnam's provinces often said so)
    room = ("in the same room as a case for 15 minutes or more (a venue warning: your health authority says whether"
            " that makes you a close contact)")
    if not levels:
        told = any(v.as_dict()["fifteen_minutes_or_more"] for v in result.venue_exposures)
        new = "yes" if told else "nothing new (told by an earlier check)"
        return f"Close contact now: {room}, within the last 14 days; new since the last check: {new}"
    new = "yes" if result.new_close_contact else "nothing new (told by an earlier check)"
    # an F2 met a close contact, not a case: "yes, F2" under "Close contact now" read as a case's close contact
    level = "yes, F1" if "F1" in levels else "F2 only, a contact of a close contact (not of a case)"
    return (f"Close contact now: {level} (within the last 14 days)"
            + (f", and {room}" if venue else "") + f"; new since the last check: {new}")


#: How a warning from keys published under a "likely" code (GAEN report type 2) reads.
LIKELY_CASE = "a likely case: diagnosed, not tested yet"


def _correction_line(result: Any) -> str | None:
    """One line when the calibration's RSSI correction was not applied to every sighting of the exposures alike: those
    another adapter heard read uncorrected (their distances as that adapter measures them), and those stored before
    bluezone recorded the adapter corrected as before (``RssiCorrection``); or when it was not applied at all, being
    beyond what bluezone believes (``config.TRUSTED_CORRECTION_DB``)."""
    c = getattr(result, "rssi_correction", None)
    beyond = getattr(result, "rssi_correction_not_believed", None)
    if beyond is not None:
        from bluezone.config import TRUSTED_CORRECTION_DB

        return (f"RSSI correction {beyond:+d} dB (the daemon config's) is beyond the +-{TRUSTED_CORRECTION_DB} dB bluezone"
                " believes: not applied, each sighting read as heard (as venue check-ins read them); calibrate again"
                " (docs/calibration.md)")
    if c is None or not c.db or c.adapter is None:
        return None
    other, unrecorded = result.uncorrected()
    of_all = f"of these exposures' {sum(e.sightings for e in result.exposures)} sightings"
    said = []
    if other:
        by = " and ".join(f"adapter {a}" if a else "an adapter that could not say its address" for a in other)
        said.append(f"not applied to {sum(other.values())} {of_all}, heard by {by} (run `bluezone calibrate` on it to"
                    " correct them too)")
    if unrecorded:  # (the sightings of an upgraded store's first 14 days)
        said.append(f"applied as before to {unrecorded}{'' if other else ' ' + of_all + ','} stored before bluezone"
                    " recorded which adapter heard them")
    return f"RSSI correction {c.db:+d} dB (calibrated on adapter {c.adapter}): {'; '.join(said)}" if said else None


def _likely(exposure: dict[str, Any]) -> bool:
    """Whether an exposure an earlier check reported (its JSON) was to a likely case (kept before
    ``diagnosis`` was: its report type)."""
    return exposure.get("diagnosis", "likely" if exposure.get("report_type") == 2 else None) == "likely"


def _nothing_stored_line(result: Any, gaen: bool, db_path: Path | None) -> str:
    """Said under "0 exposure(s)" when the store held nothing the keys could meet: an empty store (the
    daemon never ran on it, or its sightings went to emulated.db) would otherwise read as an all-clear."""
    from bluezone.proximity.store import default_db_path

    empty = []
    # keys a negative test withdrew (a batch of revoked keys) are matched by nobody: no sightings read for them
    if gaen and result.key_count > getattr(result, "revoked", 0) and not result.sightings:
        empty.append("sightings")
    if result.bluezone3_entries and not result.bluezone3_sightings:
        empty.append("Bluezone v3 sightings")
    if not empty:
        return ""
    db = db_path or default_db_path()
    return (
        f"none of them could match: {db} holds no {' and no '.join(empty)} of the days they cover"
        f" (`bluezone status --db {db}` says what it holds)"
    )


def _bluezone3_unchecked_line(result: Any) -> str | None:
    """Said under the summary when the store holds Bluezone v3 sightings that no F0 list was given for: a v3
    phone publishes no GAEN keys, so "0 exposure(s)" said nothing of the v3 phones met (user31's walk)."""
    n = getattr(result, "bluezone3_unchecked", 0)
    if result.bluezone3_entries is not None or not n:
        return None
    return (
        f"{n:,} Bluezone v3 sighting{'' if n == 1 else 's'} of the last 14 days not checked: v3 phones publish no GAEN"
        " keys; check them against a v3 F0 list with `bluezone check --bluezone3-list FILE` (docs/bluezone3.md)"
    )


def _cases(exposure: dict[str, Any]) -> str:
    """Who else was there: "a case", or "2 cases" when that many reports share the very same minutes."""
    cases = int(exposure.get("cases", 1))  # (an exposure remembered by an older version has no count)
    return "a case" if cases == 1 else f"{cases} cases"


def _local_span(visit: dict[str, str], day: str) -> str:
    """A visit's times in this machine's zone, as `bluezone checkins` and `upload` show them (someone in
    Hanoi remembers 19:15, not 12:15 UTC); its local date too when it is not the exposure's UTC day."""
    start, end = (dt.datetime.fromisoformat(visit[k]).astimezone() for k in ("start", "end"))
    date = "" if start.date().isoformat() == day else f"{start:%Y-%m-%d} "
    if f"{start:%Z}" != f"{end:%Z}":  # the clocks changed within it: 00:30-01:30 UTC on a 25-hour day in Berlin
        return f"{date}{start:%H:%M %Z}-{end:%H:%M %Z}"  # was '02:30-02:30 CEST', an hour read as none
    return f"{date}{start:%H:%M}-{end:%H:%M} {start:%Z}"


def _local_date(start: float | str | None, day: str) -> str:
    """The date of an exposure's first minute (Unix seconds or ISO time) in this machine's zone, the
    calendar people and the health authority speak in, which ``upload --exposure-date`` takes (east of UTC
    an exposure after local midnight is on the UTC day before); its UTC ``day`` when no time was kept."""
    if start is None:
        return day
    seconds = start if isinstance(start, float | int) else dt.datetime.fromisoformat(start).timestamp()
    return dt.datetime.fromtimestamp(seconds).date().isoformat()


def _what_now(result: Any, own_keys_since: Callable[[str], bool], server_url: str | None = None) -> str | None:
    """One line after the report saying what the verdicts mean for the person reading them: the lines
    above give levels, minutes and decibels, and someone just told "F1" needs to know what to do next.
    The strongest level in force (this check's, those it revised, and earlier ones' still within 14 days)
    decides.  ``own_keys_since(day)``: whether the device has keys from that day on for a recursive code;
    ``server_url``: the server checked, named in the upload to give (else URL)."""
    # an exposure told before and revised now (an F2 upgraded to F1) is in none of the others
    dated = [
        (e.level, _local_date(e.start, str(e.date)), e.diagnosis == "likely")
        for e in [*result.exposures, *getattr(result, "updated", [])]
    ] + [(d.get("level"), _local_date(d.get("start"), str(d["date"])), _likely(d)) for d in getattr(result, "earlier", [])]
    levels = [level for level, _, _ in dated]
    only_likely = all(likely for level, _, likely in dated if level == "F1")
    venues = [v.as_dict() for v in getattr(result, "venue_exposures", [])] + list(getattr(result, "earlier_venue", []))
    close_days = [day for level, day, _ in dated if level == "F1"] + [
        _local_date(v.get("overlap_start"), str(v["date"])) for v in venues if v["fifteen_minutes_or_more"]
    ]
    if close_days:
        where = "near" if "F1" in levels else "in the same room as"
        first = min(close_days)
        # a device that only checked in (never ran `bluezone run`) has no keys: upload would refuse
        if server_url is not None:
            from bluezone.client.keyserver import shown_url

            server_url = shown_url(server_url)
        # "recursive" is the health authority's word (issue-code --type recursive), not one a person reads right alone
        send = (
            f"; if it gives you a code to warn the people you met since (a close contact's code, \"recursive\"), send"
            f" your keys with `bluezone upload --server {server_url or 'URL'} --code CODE --exposure-date {first}`"
            if own_keys_since(first) else
            f" (this device has no daily keys of its own from {first} on (`bluezone run` makes them), so a close"
            " contact's code to warn the people you met would have nothing of it to send)"
        )
        case = "diagnosed as a likely case (not tested yet)" if "F1" in levels and only_likely and not venues else "who tested positive"
        return (
            f"What now: you were {where} someone {case} for 15 minutes or more"
            f"{' (a close contact, F1)' if 'F1' in levels else ''}:"
            f" follow your health authority's advice for close contacts{send}"
        )
    if "F2" in levels:
        return (
            "What now: you met a close contact of a case (F2): watch for symptoms; a later `bluezone check` says"
            " when that contact's test is back (upgraded to F1 if positive, withdrawn if negative)"
        )
    if result.exposures or venues:
        return (
            "No close contact: each exposure above was too brief or too far away to count (within about 2 m,"
            " or in the same room, for 15 minutes or more); nothing to do"
        )
    return None
