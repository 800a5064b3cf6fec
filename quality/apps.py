from django.apps import AppConfig


class QualityConfig(AppConfig):
    """Reviewer quality: golden sets, certifications, calibration, agreement, analytics, datasets.

    The top layer (hitl <- tenants <- policies <- reviews <- quality): it reads what the
    reviews layer records and never is imported by it. Where the claim must consult a
    certification, the reviews layer owns the table and this layer manages it.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "quality"
    verbose_name = "Reviewer quality"
