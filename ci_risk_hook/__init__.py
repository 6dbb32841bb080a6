"""ci-risk: predict whether a push will fail CI before the test suite runs."""

__version__ = "0.1.0"
