"""What venue check-in adds to Bluetooth detection when only some people take part.

From a simulated run (``engine.run``): for each (positive, other phone) pair, the truth says
whether they were close contacts (within the scenario's close distance for 15+ minutes) and
whether they *shared the room* (both in the scene at once for 15+ minutes; a scenario is one
venue).  With a share ``a`` of people using bluezone, independently of where they stand, and a
share ``c`` of them checked in (1 with a venue beacon, which checks in by itself):

* Bluetooth warns a pair only if both use bluezone and the scorer flagged it: a^2 x flagged;
* a case's upload warns a pair through the venue if both checked in: (a c)^2 x shared-the-room;
* a venue owner's warning (a case traced by the health authority, bluezone user or not) needs
  only the visitor: a c x shared-the-room.

The numbers are expectations over who uses bluezone (exact, no sampling), per truth class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bluezone.sim.engine import RunResult

#: 7.4 % is the share one province counted with Bluezone installed (2020).
DEFAULT_RATES = (0.074, 0.30, 0.70)
ROOM_MINUTES = 15.0
CLOSE_MINUTES = 15.0


def _pairs(result: RunResult, scorer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(close, shared the room, flagged) for every (day, positive, other device) pair."""
    close_radius = result.scenario.close_distance_m
    near = result.truth.minutes(close_radius)
    together = result.truth.minutes_together()
    scores = result.scores[scorer]
    close, room, flagged = [], [], []
    for day, minutes in near.items():
        shared = together.get(day, np.zeros_like(minutes))
        for row, sender in enumerate(result.senders):
            for device in range(minutes.shape[1]):
                if device == sender:
                    continue
                close.append(minutes[row, device] >= CLOSE_MINUTES)
                room.append(shared[row, device] >= ROOM_MINUTES)
                score = scores.get((day, row, device))
                flagged.append(bool(score is not None and score.close_contact))
    return np.array(close, bool), np.array(room, bool), np.array(flagged, bool)


def venue_adoption_summary(
    result: RunResult, rates: tuple[float, ...] = DEFAULT_RATES, checkin_rate: float = 1.0, scorer: str = "bluezone"
) -> dict[str, Any]:
    """Expected share of close contacts and of room-sharers warned, by path, at each adoption rate."""
    close, room, flagged = _pairs(result, scorer)
    rows = []
    for a in rates:
        both, checked = a * a, (a * checkin_rate) ** 2

        def recall(truth: np.ndarray, warned: np.ndarray) -> float | None:
            return None if not truth.any() else round(float(warned[truth].mean()), 4)

        ble = both * flagged
        venue = checked * room
        # by either path, check-in independent of the scorer: a^2 [flagged + (1 - flagged) c^2 room]
        either = both * (flagged + (~flagged) * (checkin_rate**2) * room)
        owner = a * checkin_rate * room
        rows.append(
            {
                "adoption": a,
                "close_contacts": {"bluetooth": recall(close, ble), "venue": recall(close, venue), "either": recall(close, either)},
                "shared_room_15min": {"bluetooth": recall(room, ble), "venue": recall(room, venue), "either": recall(room, either)},
                "owner_warning_shared_room": recall(room, owner),
            }
        )
    return {
        "scorer": scorer,
        "checkin_rate": checkin_rate,
        "pairs": int(len(close)),
        "close_contact_pairs": int(close.sum()),
        "shared_room_pairs": int(room.sum()),
        "flagged_when_both_use_it": {
            "close_contacts": None if not close.any() else round(float(flagged[close].mean()), 4),
            "shared_room": None if not room.any() else round(float(flagged[room].mean()), 4),
        },
        "rates": rows,
    }


def venues_table(summary: dict[str, Any]) -> str:
    """The terminal table: expected share warned, by path, at each adoption rate."""
    pct = lambda x: "  -  " if x is None else f"{100 * x:5.1f}"  # noqa: E731
    lines = [
        f"venue check-in (check-in rate {summary['checkin_rate']:g}; {summary['close_contact_pairs']} close-contact and "
        f"{summary['shared_room_pairs']} same-room pairs; % expected to be warned):",
        f"{'':9} {'close contacts':^23} {'same room 15+ min':^23} {'owner':>6}",
        f"{'adoption':>9} {'BT':>7}{'venue':>8}{'either':>8} {'BT':>7}{'venue':>8}{'either':>8} {'warns':>6}",
    ]
    for r in summary["rates"]:
        c, s = r["close_contacts"], r["shared_room_15min"]
        lines.append(
            f"{100 * r['adoption']:8.1f}% {pct(c['bluetooth']):>7}{pct(c['venue']):>8}{pct(c['either']):>8} "
            f"{pct(s['bluetooth']):>7}{pct(s['venue']):>8}{pct(s['either']):>8} {pct(r['owner_warning_shared_room']):>6}"
        )
    lines.append(
        "BT: both use bluezone and the scorer flags them; venue: both checked in, the case uploads; owner: the venue "
        "warns (a traced case), only the visitor needs bluezone."
    )
    return "\n".join(lines)
