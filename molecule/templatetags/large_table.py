"""Template tags for admin lists of a million rows."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.contrib.admin.views.main import ChangeList
from django.utils import timezone

register = template.Library()


def unfiltered_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Django's date_hierarchy, with its periods read from the whole table.

    Django reads MIN/MAX and the periods of the filtered list. Under a filter or a search that
    the created_at index cannot serve (a state, a rare filename word), each of those walks the
    index through every row that does not match: seconds at a million rows. The whole table's
    periods are index probes; a period link may then lead to an empty filtered list.
    """
    whole = copy.copy(cl)
    whole.queryset = cl.root_queryset.filter(**_period_range(cl))
    return date_hierarchy(whole)


def _period_range(cl: ChangeList) -> dict[str, datetime]:
    """The drilled-down year or month as a created_at range, which the index reads directly."""
    field = cl.date_hierarchy
    try:
        year = int(cl.params.get(f"{field}__year", ""))
    except ValueError:
        return {}
    try:
        month = int(cl.params.get(f"{field}__month", ""))
    except ValueError:
        month = 0
    zone = timezone.get_current_timezone()
    try:
        if 1 <= month <= 12:
            start = datetime(year, month, 1, tzinfo=zone)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
        else:
            start, end = datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)
    except ValueError:
        return {}
    return {f"{field}__gte": start, f"{field}__lt": end}


@register.tag(name="unfiltered_date_hierarchy")
def unfiltered_date_hierarchy_tag(parser: template.base.Parser, token: Any) -> InclusionAdminNode:
    return InclusionAdminNode(
        parser,
        token,
        func=unfiltered_date_hierarchy,
        template_name="date_hierarchy.html",
        takes_context=False,
    )
