"""Tables of the quality layer (issue 13)."""
