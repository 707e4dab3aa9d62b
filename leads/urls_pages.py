from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("leads/", views.lead_list_page, name="leads"),
    path("leads/new/", views.lead_create_page, name="lead-new"),
    path("leads/export.csv", views.lead_export_csv, name="leads-export"),
    path("leads/<uuid:lead_id>/", views.lead_detail, name="lead-detail"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
]
