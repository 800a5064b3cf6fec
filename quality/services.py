"""Writes of the quality layer: keyword-only functions in a transaction (house style rule 2)."""
