"""Simulated crowds through bluezone's real code: scenarios, mobility, radio, truth, metrics."""
