from django.contrib import admin

from .models import Lead


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ["email", "first_name", "last_name", "company", "current_score", "max_score", "updated_at"]
    search_fields = ["email", "first_name", "last_name", "company"]
    readonly_fields = ["current_score", "last_processed_event_time", "last_processed_event_id", "created_at", "updated_at"]
