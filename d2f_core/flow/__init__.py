"""d2f_core.flow: the method itself (pure numpy): alignment, sampling, lifting."""
