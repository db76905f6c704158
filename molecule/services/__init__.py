"""Workspace and activity services: transactions, metrics, logging (one module per concern)."""
