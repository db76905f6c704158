"""Periodic housekeeping: the schedules, the phantom-busy sweep and their metrics."""
