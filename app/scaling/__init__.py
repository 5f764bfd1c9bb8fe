"""The inference-scaling lab: accuracy against thinking compute and energy (`fastslow scale`)."""
