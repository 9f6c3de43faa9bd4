"""The orchestration worker process."""
