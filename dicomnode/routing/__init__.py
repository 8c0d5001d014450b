"""Routing: which models run on a completed study (pure rules), the job rows it plans, order priority."""
