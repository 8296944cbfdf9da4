"""Weak-to-strong generalization on Persian classification tasks (`persianllama w2s`)."""
