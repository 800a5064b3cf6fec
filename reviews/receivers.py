"""What the reviews layer does on the signals of the layers below it (connected in ``ReviewsConfig.ready``).

Thin: each receiver calls one service, inside the sender's transaction.
"""

from reviews.services.gold import rubric_recertification_require


def rubric_published_receive(sender, *, tenant, rubric, user, require_recertification: bool = False, **kwargs):
    """``policies.events.rubric_published``: the publisher asked for recertification."""
    if require_recertification:
        rubric_recertification_require(tenant=tenant, rubric=rubric, actor=user)
