"""Forms of the lead pages: the list filter and the "add lead" form (input only; writes go through
services)."""

from __future__ import annotations

from django import forms

from scoring.selectors import stage_list

from .selectors import GRADE_LETTERS, GRADES, LEAD_ORDERINGS

SCORE_LIMIT = 1_000_000_000
FIT_LIMIT = 100  # fit scores are clamped to [0, 100] (docs/scoring-model.md)

GRADE_CHOICES = [
    ("", "Any grade"),
    ("By fit letter", [(letter, f"{letter}1–{letter}4 (fit {letter})") for letter in GRADE_LETTERS]),
    ("Exact grade", [(grade, grade) for grade in GRADES]),
]


class _GradeField(forms.ChoiceField):
    """A grade choice that also takes lower case (``?grade=b2``)."""

    def to_python(self, value) -> str:
        return super().to_python(value).strip().upper()


class _StageSelect(forms.Select):
    """One stage from the menu; the URL may name several (``?stage=MQL&stage=SQL`` or ``MQL,SQL``)."""

    allow_multiple_selected = True

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)] if data.get(name) else []
        return [part.strip() for value in values for part in str(value).split(",") if part.strip()]

    def format_value(self, value):
        return [str(v) for v in (value or [])][:1] or [""]


class LeadFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200, strip=True)
    min_score = forms.IntegerField(label="Min score", required=False, min_value=0, max_value=SCORE_LIMIT)
    max_score = forms.IntegerField(label="Max score", required=False, min_value=0, max_value=SCORE_LIMIT)
    grade = _GradeField(label="Grade", required=False, choices=GRADE_CHOICES, widget=forms.Select(attrs={"class": "input"}))
    stage = forms.MultipleChoiceField(label="Stage", required=False, widget=_StageSelect(attrs={"class": "input"}))
    min_fit = forms.IntegerField(label="Min fit", required=False, min_value=0, max_value=FIT_LIMIT)
    max_fit = forms.IntegerField(label="Max fit", required=False, min_value=0, max_value=FIT_LIMIT)
    o = forms.ChoiceField(
        label="Sort", required=False, choices=[(value, value) for value in sorted(LEAD_ORDERINGS)]
    )

    def __init__(self, *args, stages=None, **kwargs):
        """``stages``: the stage names (coldest first) when the caller has read them already."""
        super().__init__(*args, **kwargs)
        names = list(stage_list().values_list("name", flat=True)) if stages is None else list(stages)
        self.fields["stage"].choices = [("", "Any stage"), *((name, name) for name in names)]

    def clean(self):
        data = super().clean()
        low, high = data.get("min_score"), data.get("max_score")
        if low is not None and high is not None and low > high:
            self.add_error("max_score", "must be at least the min score")
        low, high = data.get("min_fit"), data.get("max_fit")
        if low is not None and high is not None and low > high:
            self.add_error("max_fit", "must be at least the min fit")
        return data

    def filters(self) -> dict:
        """The valid filters (an invalid field is shown with its error and ignored)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "search": data.get("q") or "",
            "min_score": data.get("min_score"),
            "max_score": data.get("max_score") if "max_score" not in self.errors else None,
            "grade": data.get("grade") or "",
            "min_fit": data.get("min_fit"),
            "max_fit": data.get("max_fit") if "max_fit" not in self.errors else None,
            "stages": [name for name in data.get("stage") or [] if name],
            "ordering": data.get("o") or "-current_score",
        }

    @staticmethod
    def is_filtered(filters: dict) -> bool:
        return bool(filters["search"] or filters["grade"] or filters["stages"]) or any(
            filters[name] is not None for name in ("min_score", "max_score", "min_fit", "max_fit")
        )


class LeadCreateForm(forms.Form):
    email = forms.EmailField(label="E-mail", max_length=254)
    first_name = forms.CharField(label="First name", max_length=100, required=False)
    last_name = forms.CharField(label="Last name", max_length=100, required=False)
    company = forms.CharField(label="Company", max_length=200, required=False)
    job_title = forms.CharField(label="Job title", max_length=200, required=False)
    phone = forms.CharField(label="Phone", max_length=50, required=False)
    max_score = forms.IntegerField(
        label="Max score", min_value=0, max_value=SCORE_LIMIT, initial=1000, help_text="The score is capped here."
    )

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()
