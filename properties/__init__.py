"""properties: Hypothesis strategies and property checks of the construction (SPEC §5)."""
