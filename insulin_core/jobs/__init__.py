"""Jobs: background workers (the machinery), training runs, tuning and its studies."""
