"""State estimators: where the flow's particles are now."""
