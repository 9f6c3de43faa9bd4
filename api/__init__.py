"""The HTTP facade over the orchestration engine."""
