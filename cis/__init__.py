"""Application layer: command line and reports (no maths here)."""
