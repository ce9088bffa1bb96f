"""Venue check-in: Corona-Warn-App's presence-tracing wire format (QR posters, encrypted
check-in reports) on bluezone's devices and key server.  See docs/venues.md."""

from bluezone.venues.location import Venue, location_id, location_id_hash
from bluezone.keyformat.venue_reports import ProtectedReport, VenueWarning

__all__ = ["ProtectedReport", "Venue", "VenueWarning", "location_id", "location_id_hash"]
