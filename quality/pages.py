"""The quality lead's pages (issue 13): one base, a section nav, every time in UTC."""

from tenants.models import Role
from tenants.pages import TenantPage

QUALITY = frozenset({Role.QUALITY_LEAD, Role.ADMIN})


class QualityPage(TenantPage):
    """Base of the quality pages: quality leads and admins of the current tenant.

    Subclasses set ``quality_section`` (the nav entry shown as current) and read and write
    only through the quality layer's selectors and services, which take ``self.tenant``.
    """

    roles = QUALITY
    quality_section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("quality_section", self.quality_section)
        return context
