"""Tests of the session layer (no Qt, no torch)."""
