"""Whole-slide inference."""
