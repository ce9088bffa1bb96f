"""Proximity: radio backends, the daemon that runs them, and the sighting store."""
