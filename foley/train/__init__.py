"""Training: the one loop (`loop`) and one task module per model (`codec`, ...)."""
