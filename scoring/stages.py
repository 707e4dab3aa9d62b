"""Operators' stage settings: the Stage rows and the score thresholds (docs/stages-and-alerts.md).

Every change runs in one transaction that locks the settings row (pk 1), validates the row
(``full_clean``: ``Stage.clean``/``StageSettings.clean``), bumps ``StageSettings.version`` and starts
a background restage job (``rescoring.restage_job_start``: the rescore machinery, kind ``restage``),
so a drain that staged a lead under the old settings is either before the change (the restage
moves the lead) or after it (it reads the new version once it holds the lead's lock; a lead staged
under a newer version than a drain's snapshot makes the drain retry: ``services.StaleStages``).

A rename keeps the leads in the renamed stage (their ``stage`` column follows the new name in the
same transaction): the stage is the same, so nobody is told it changed.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from leads.models import Lead

from .models import MAX_STAGES, RescoreJob, Stage, StageSettings
from .rescoring import restage_job_start

logger = logging.getLogger(__name__)

STAGE_FIELDS = ("name", "position", "min_score", "min_fit", "color", "description")


@dataclass(frozen=True)
class StagesChanged:
    """What a stage change did: the new settings version and the restage job it started."""

    version: int
    job: RescoreJob | None
    outdated: int  # leads the job has to restage


def name_key(name: str) -> str:
    """What two stage names must not share: the name without case, accents or width differences
    (what MariaDB's utf8mb4_unicode_ci compares equal, so its unique index and a ``?stage=`` filter
    can never confuse two stages)."""
    decomposed = unicodedata.normalize("NFKD", name.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def name_taken(stage: Stage) -> bool:
    key = name_key(stage.name or "")
    return any(name_key(other) == key for other in Stage.objects.exclude(pk=stage.pk).values_list("name", flat=True))


def _settings_locked() -> StageSettings:
    StageSettings.objects.get_or_create(pk=1)
    return StageSettings.objects.select_for_update().get(pk=1)


def _bump(settings_row: StageSettings, *, actor: str, send: bool) -> StagesChanged:
    settings_row.version += 1
    settings_row.save(update_fields=["version", "score_thresholds", "updated_at"])
    job = restage_job_start(version=settings_row.version, actor=actor, send=send)
    return StagesChanged(version=settings_row.version, job=job, outdated=job.total)


def stage_save(*, stage: Stage | None = None, actor: str = "", send: bool = True, **fields) -> tuple[Stage, StagesChanged]:
    """Create (``stage`` None) or change a stage; validated by the model (raises Django's
    ValidationError naming the field). ``stage`` may be an instance a form has already changed (the
    admin). Returns the saved row and the restage it started."""
    with transaction.atomic():  # (the admin saves inside its own transaction)
        settings_row = _settings_locked()
        stage = stage or Stage()
        for name, value in fields.items():
            setattr(stage, name, value)
        if isinstance(stage.name, str):
            stage.name = stage.name.strip()
        if stage.pk is None and Stage.objects.count() >= MAX_STAGES:
            raise ValidationError({"name": f"At most {MAX_STAGES} stages."})
        stage.full_clean()
        if name_taken(stage):
            raise ValidationError({"name": "Another stage has this name (names compare without case or accents)."})
        previous_name = Stage.objects.filter(pk=stage.pk).values_list("name", flat=True).first() if stage.pk else None
        stage.save()
        if previous_name is not None and previous_name != stage.name:
            renamed = Lead.objects.filter(stage=previous_name).update(stage=stage.name)
            logger.info("stage %r renamed %r (%d leads follow)", previous_name, stage.name, renamed)
        changed = _bump(settings_row, actor=actor, send=send)
    logger.info("stage %r saved by %s: stage settings v%d, %d leads to restage", stage.name, actor or "-",
                changed.version, changed.outdated)
    return stage, changed


def stage_delete(*, stage: Stage, actor: str = "", send: bool = True) -> StagesChanged:
    """Remove a stage; its leads are restaged into the stages that remain (cause ``stages``)."""
    with transaction.atomic():  # (the admin saves inside its own transaction)
        settings_row = _settings_locked()
        name = stage.name
        Stage.objects.filter(pk=stage.pk).delete()
        changed = _bump(settings_row, actor=actor, send=send)
    logger.info("stage %r deleted by %s: stage settings v%d", name, actor or "-", changed.version)
    return changed


def stage_settings_save(*, settings_row: StageSettings | None = None, actor: str = "", send: bool = True,
                        **fields) -> tuple[StageSettings, StagesChanged]:
    """Change the score thresholds (``score_thresholds``: whole numbers; a crossing is an alert).
    ``settings_row``: an instance a form has already changed (the admin); only its thresholds are
    taken (the version is this service's)."""
    with transaction.atomic():  # (the admin saves inside its own transaction)
        row = _settings_locked()
        if settings_row is not None:
            fields.setdefault("score_thresholds", settings_row.score_thresholds)
        unknown = set(fields) - {"score_thresholds"}
        if unknown:
            raise ValidationError({name: "Not a stage setting." for name in sorted(unknown)})
        if "score_thresholds" in fields:
            row.score_thresholds = fields["score_thresholds"]
        row.full_clean()
        if isinstance(row.score_thresholds, list):
            row.score_thresholds = sorted(set(row.score_thresholds))
        changed = _bump(row, actor=actor, send=send)
    if settings_row is not None:
        settings_row.version, settings_row.score_thresholds = row.version, row.score_thresholds
    return row, changed
