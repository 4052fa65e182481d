"""Example models and data for the demo and the tests (trained here, never downloaded)."""
