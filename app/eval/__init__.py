"""Evaluation: benchmark suites, answer extraction and scoring."""
