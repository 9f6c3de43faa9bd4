"""`orch`: the command line for the service (a local dev stack and an API client)."""
