"""Reads of the quality layer, each taking the tenant."""
