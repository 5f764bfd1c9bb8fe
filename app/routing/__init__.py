"""Routing: per question, answer directly or think — and always say why."""
