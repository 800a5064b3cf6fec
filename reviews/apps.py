from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The policies layer checks a tier's SLA-breach queue by name; queues are ours.
        from policies import services as policy_services
        from reviews.selectors import queue_names_existing

        policy_services.queue_names_existing = queue_names_existing

        # A rubric published requiring recertification expires the certifications of its queues.
        from reviews.services.gold import rubric_recertification_require

        policy_services.rubric_recertification_require = rubric_recertification_require
