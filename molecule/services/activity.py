"""Activity rows: appended by the services, reported by clients, and the feed's ack."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from molecule import quotas
from molecule.models import ActivityLog, InboxDeliveryState


def activity_append(*, workspace_id: uuid.UUID, activity_type: str, **columns: Any) -> ActivityLog:
    """Append one activity row; ``columns`` are ActivityLog's optional fields (method, summary,
    source_id, request_body, ...). The model holds their defaults; an unknown name is a TypeError.
    """
    return activity_append_many(
        workspace_id=workspace_id, rows=[{"activity_type": activity_type, **columns}]
    )[0]


def activity_append_many(
    *, workspace_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> list[ActivityLog]:
    """Append one workspace's rows in one INSERT, in the order given.

    Inside a larger transaction, call it last: see ActivityLog on the feed's order.
    """
    return ActivityLog.objects.bulk_create(
        ActivityLog(workspace_id=workspace_id, **columns) for columns in rows
    )


def inbox_ack(*, workspace_id: uuid.UUID, acked_seq: int) -> int:
    """Record that the workspace's poller holds every feed row up to ``acked_seq``.

    The mark only moves forward; the stored value is returned. Acknowledged rows become
    eligible for the retention sweep after ACTIVITY_SOFT_RETENTION.
    """
    return InboxDeliveryState.objects.ack(workspace_id, acked_seq)


def activity_report(
    *, workspace_id: uuid.UUID, body_bytes: int, activity_type: str, **columns: Any
) -> ActivityLog:
    """Append a row a client reported, charging its ``body_bytes`` to the activity_bytes quota
    in the same transaction: QuotaExceeded leaves nothing stored. The charge comes first, so the
    row is the transaction's last write (the feed's lock is held from it to the commit)."""
    with transaction.atomic():
        quotas.quota_charge(
            workspace_id=workspace_id, quota=quotas.ACTIVITY_BYTES, amount=body_bytes
        )
        return activity_append(workspace_id=workspace_id, activity_type=activity_type, **columns)
