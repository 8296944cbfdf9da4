"""Distillation: a big Persian teacher teaches a small student (token-level and sequence-level KD)."""
