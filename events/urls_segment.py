from django.urls import re_path

from .segment_apis import SegmentView

urlpatterns = [
    re_path(rf"^{kind}/?$", SegmentView.as_view(kind=kind), name=f"segment-{kind}")
    for kind in ("track", "identify", "page", "screen", "alias", "group", "batch")
] + [re_path(r"^import/?$", SegmentView.as_view(kind="batch"), name="segment-import")]
