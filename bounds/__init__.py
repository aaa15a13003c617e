"""bounds: analytic predictions, worst-case bounds and capacity. Pure, typed.

The mathematics is in docs/error-terms.md and docs/capacity.md.
"""
