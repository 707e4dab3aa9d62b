from django.urls import path

from . import views

urlpatterns = [
    path("rules/", views.rule_list_page, name="rules"),
]
