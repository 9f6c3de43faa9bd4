"""The HTTP facade (built in the next issue)."""
