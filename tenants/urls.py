"""Pages for people: sign in and out, password reset, the current tenant, their own settings."""

from django.contrib.auth import views as auth_views
from django.urls import path

from hitl.ratelimit import login_rate_limited
from tenants import pages

app_name = "tenants"

urlpatterns = [
    # Failed sign-ins are counted per address and per username, and slowed (hitl/ratelimit.py).
    path("login/", login_rate_limited(pages.LoginPage.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("home/", pages.HomeRedirect.as_view(), name="home"),
    path("tenant/", pages.TenantSwitch.as_view(), name="switch"),
    path("me/", pages.MePage.as_view(), name="me"),
]
urlpatterns += [path(route, view, name=name) for route, view, name in pages.password_reset_urls()]
