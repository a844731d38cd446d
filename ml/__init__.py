"""Recommendation models and their offline evaluation (MovieLens-100k)."""
