"""The store the API and the workers share (`ORCH_DATABASE_URL`): MCP servers added over the API,
their health, OAuth tokens and saved assistants. SQLite by default (`orch dev` keeps it in its
state directory), PostgreSQL for deployments, both through SQLAlchemy; the schema is Alembic's
migrations (`orch db upgrade`), never created by hand at start-up."""
