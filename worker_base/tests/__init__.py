"""Unit tests of worker_base."""
