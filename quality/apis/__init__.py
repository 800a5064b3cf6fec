"""The quality layer's REST API, a module per concern: golden sets and certification, calibration,
agreement, metrics, datasets (mounted under /api/v1/ by quality/urls.py)."""
