"""Reasoning: what is thinking and what is answer, and (later) modes, budgets and strategies."""
