"""The Scoring rules page: the rule table; editing happens in the Django admin."""

from django.shortcuts import render

from config.pages import staff_required

from .selectors import rule_list


@staff_required
def rule_list_page(request):
    context = {
        "nav": "rules",
        "rules": list(rule_list()),
        "can_change": request.user.has_perm("scoring.change_scoringrule"),
        "can_add": request.user.has_perm("scoring.add_scoringrule"),
    }
    return render(request, "scoring/rule_list.html", context)
