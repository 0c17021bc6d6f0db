from django.urls import path

from .views import account, audit, configurations, portal

urlpatterns = [
    path("", portal.home, name="home"),
    path("healthz", portal.healthz, name="healthz"),
    path("account/", account.account, name="account"),
    path("switch/", portal.switch_environment, name="switch_environment"),
    path("audit/", audit.audit_log, name="audit_log"),
    path("audit/export.csv", audit.audit_export, name="audit_export"),
    path("configurations/", configurations.configuration_list, name="configuration_list"),
    path("configurations/new/", configurations.configuration_new, name="configuration_new"),
    path("configurations/<slug:slug>/", configurations.configuration_detail, name="configuration_detail"),
    path("configurations/<slug:slug>/drafts/new/", configurations.draft_new, name="draft_new"),
    path("configurations/<slug:slug>/versions/<number:number>/", configurations.version_detail, name="version_detail"),
    path("environments/new/", configurations.environment_new, name="environment_new"),
]
