"""bounds: analytic predictions, worst-case bounds and capacity (SPEC §4). Pure, typed."""
