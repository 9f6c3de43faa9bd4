"""The UI checks run against the same served stack as tests/api/."""

from tests.api.conftest import api_stack

__all__ = ["api_stack"]
