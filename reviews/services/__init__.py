"""Writes of the reviews app: ingest (outputs), workflow (tasks, reviews, decisions), webhooks."""

from reviews.services.ingest import IngestResult, output_content_hash, output_ingest, output_ingest_batch

__all__ = ["IngestResult", "output_content_hash", "output_ingest", "output_ingest_batch"]
