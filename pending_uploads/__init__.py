"""Poll-mode chat uploads: the pending_uploads staging table, its API and its sweeper."""
