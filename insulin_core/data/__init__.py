"""Data: files and texts to the tidy events table (AIM94 and the modern readers), the demo cohort, sources."""
