"""Unit tests of registry."""
