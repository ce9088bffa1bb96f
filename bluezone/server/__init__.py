"""The key server: verification codes, key publishing, signed GAEN export batches, and its client."""
