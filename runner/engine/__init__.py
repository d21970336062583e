"""Plan (dry run), run, journal and resume, confirmation and locking."""
