"""Django signals the policies layer sends to the layers above it (docs/architecture.md).

The policies layer never imports ``reviews``; what a higher layer must do when a policy
document changes, it does on receiving these. They are sent inside the sender's
transaction with ``send`` (not ``send_robust``): a receiver that fails rolls the change back.
"""

from django.dispatch import Signal

# Sent by ``policies.services.rubric_publish`` once the new version is saved and audited.
# Arguments: ``tenant``, ``rubric`` (at its new version), ``created``, ``user`` (who published,
# or None), ``require_recertification`` (the publisher asked that people certified for the
# queues using the rubric take the exam again: reviews/apps.py connects the receiver).
rubric_published = Signal()
