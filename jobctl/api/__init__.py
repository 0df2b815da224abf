"""The HTTP API: the original system's manual trigger, schedules and history."""
