"""Matching: diagnosis key files, the vectorised matcher, and risk scoring."""
