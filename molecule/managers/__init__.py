"""Every query on workspaces and their activity feed (the retention sweep is in retention.py)."""

from molecule.managers.activity import (
    FEED_AFTER_SQL,
    FEED_NEWEST_SQL,
    INBOX_ACK_SQL,
    ActivityLogManager,
    FeedFilters,
    FeedPage,
    FeedRow,
    InboxDeliveryStateManager,
    cursor_value,
)
from molecule.managers.cursors import RoutedCursorsMixin
from molecule.managers.workspaces import (
    CREDENTIALS_SQL,
    PHANTOM_BUSY_PREVIEW_SQL,
    PHANTOM_BUSY_RESET_SQL,
    WorkspaceManager,
    WorkspaceRef,
)

__all__ = [
    "CREDENTIALS_SQL",
    "FEED_AFTER_SQL",
    "FEED_NEWEST_SQL",
    "INBOX_ACK_SQL",
    "PHANTOM_BUSY_PREVIEW_SQL",
    "PHANTOM_BUSY_RESET_SQL",
    "ActivityLogManager",
    "FeedFilters",
    "FeedPage",
    "FeedRow",
    "InboxDeliveryStateManager",
    "RoutedCursorsMixin",
    "WorkspaceManager",
    "WorkspaceRef",
    "cursor_value",
]
