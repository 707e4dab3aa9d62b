"""The stage admin (list with lead counts, add/change through the services with the "restaging N
leads" message and its progress link, the stage-settings singleton, the restage progress page) and
the operator pages' stage badge, filter and audit table."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from leads.models import Lead
from scoring.models import RescoreJob, Stage, StageChange, StageSettings

from .test_stages import default_stages, seed_scores  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_stages")]


@pytest.fixture
def admin_client_(client, staff_user):
    client.force_login(staff_user)
    return client


def login_in(client, group: str, username: str):
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_stage_list_shows_thresholds_colours_and_lead_counts(admin_client_):
    seed_scores(150, 160, 20)
    page = text(admin_client_.get("/admin/scoring/stage/"))
    rows = re.findall(r'<tr>.*?</tr>', page)
    mql = next(row for row in rows if ">MQL<" in row)
    assert 'class="field-lead_count">2<' in mql and 'class="field-min_score">100<' in mql
    assert 'class="field-colour">' in page


def test_adding_a_stage_in_the_admin_restages_in_the_background(admin_client_):
    seed_scores(150, 700)
    version = StageSettings.objects.get(pk=1).version
    response = admin_client_.post("/admin/scoring/stage/add/", {
        "name": "Hot", "position": 100, "min_score": 600, "min_fit": "", "color": "red", "description": "",
    }, follow=True)
    assert response.status_code == 200
    job = RescoreJob.objects.get(kind="restage")
    assert job.version == version + 1 == StageSettings.objects.get(pk=1).version
    page = text(response)
    assert "restaging 2 leads in the background" in page
    assert f'href="/admin/scoring/rescorejob/{job.pk}/change/"' in page
    # and the progress page (the rescore one, /ws/rescore/) shows the restage
    progress = text(admin_client_.get(f"/admin/scoring/rescorejob/{job.pk}/change/"))
    assert f"Restage to stage settings v{job.version}" in progress and 'data-ws-path="/ws/rescore/"' in progress


def test_a_duplicate_name_is_a_form_error_not_a_crash(admin_client_):
    response = admin_client_.post("/admin/scoring/stage/add/", {
        "name": "mql", "position": 100, "min_score": 600, "color": "red",
    })
    assert response.status_code == 200 and "Another stage has this name" in response.content.decode()
    assert Stage.objects.count() == 4 and not RescoreJob.objects.exists()


def test_changing_and_deleting_a_stage_in_the_admin_go_through_the_services(admin_client_):
    mql = Stage.objects.get(name="MQL")
    response = admin_client_.post(f"/admin/scoring/stage/{mql.pk}/change/", {
        "name": "MQL", "position": mql.position, "min_score": 90, "color": mql.color, "description": "",
    }, follow=True)
    assert response.status_code == 200 and Stage.objects.get(pk=mql.pk).min_score == 90
    response = admin_client_.post(f"/admin/scoring/stage/{mql.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200 and not Stage.objects.filter(pk=mql.pk).exists()
    assert list(RescoreJob.objects.order_by("pk").values_list("kind", "status")) == [
        ("restage", "superseded"), ("restage", "queued"),
    ]


def test_the_stage_settings_singleton_saves_the_thresholds(admin_client_):
    assert admin_client_.get("/admin/scoring/stagesettings/").url == "/admin/scoring/stagesettings/1/change/"
    assert admin_client_.get("/admin/scoring/stagesettings/1/change/").status_code == 200
    assert admin_client_.get("/admin/scoring/stagesettings/2/change/").status_code == 404
    response = admin_client_.post("/admin/scoring/stagesettings/1/change/", {"score_thresholds": "[150, 50]"},
                                  follow=True)
    assert response.status_code == 200
    assert StageSettings.objects.get(pk=1).score_thresholds == [50, 150]
    bad = admin_client_.post("/admin/scoring/stagesettings/1/change/", {"score_thresholds": '["x"]'})
    assert bad.status_code == 200 and "whole numbers" in bad.content.decode()


def test_viewers_see_the_stages_read_only_and_operators_edit_them(client):
    login_in(client, "Viewers", "vic")
    assert client.get("/admin/scoring/stage/").status_code == 200
    assert client.get("/admin/scoring/stage/add/").status_code == 403
    mql = Stage.objects.get(name="MQL")
    assert client.post(f"/admin/scoring/stage/{mql.pk}/change/", {"name": "MQL", "position": 1, "min_score": 1,
                                                                  "color": "grey"}).status_code == 403
    login_in(client, "Operators", "olga")
    assert client.get("/admin/scoring/stage/add/").status_code == 200
    assert client.get(f"/admin/scoring/stage/{mql.pk}/delete/").status_code == 403


# --- the operator pages ------------------------------------------------------------------------------


def test_the_leads_page_filters_by_stage_and_shows_coloured_badges(admin_client_):
    seed_scores(10, 150, 400)
    Stage.objects.filter(name="SQL").update(color="red")
    page = text(admin_client_.get("/leads/", {"stage": "SQL"}))
    assert "s2@example.com" in page and "s1@example.com" not in page
    assert 'class="badge badge--stage badge--stage-red" data-stage="SQL"' in page
    assert '<option value="SQL" selected>SQL</option>' in page
    both = text(admin_client_.get("/leads/?stage=SQL,MQL"))
    assert "s1@example.com" in both and "s2@example.com" in both and "s0@example.com" not in both
    # an unknown stage is a shown, ignored filter error (not a 500)
    bad = admin_client_.get("/leads/", {"stage": "Nope"})
    assert bad.status_code == 200 and "s0@example.com" in bad.content.decode()


def test_the_lead_page_shows_its_stage_since_when_and_its_stage_changes(admin_client_):
    [lead] = seed_scores(150)
    StageChange.objects.create(lead=lead, from_stage="Warm", to_stage="MQL", direction="up", score=150, cause="event",
                               event_ref="evt-42", stage_version=1, created_at=timezone.now())
    page = text(admin_client_.get(f"/leads/{lead.id}/"))
    assert re.search(r'data-lead-stage[^>]*>MQL<', page)
    assert "data-lead-stage-since" in page and "since <time" in page
    table = re.search(r"<table[^>]*data-stage-changes-table.*?</table>", page).group(0)
    assert "Warm" in table and "evt-42" in table and "Event" in table
    assert 'data-stages="[[&quot;Cold&quot;' in page


def test_the_dashboard_counts_leads_per_stored_stage(admin_client_):
    seed_scores(10, 50, 150, 160)
    Lead.objects.create(email="new@example.com")  # not staged yet
    page = text(admin_client_.get("/"))
    assert re.search(r'data-kpi="stage-mql">2<', page) and re.search(r'data-kpi="stage-cold">1<', page)
    assert re.search(r'data-kpi="stage-sql">0<', page)
