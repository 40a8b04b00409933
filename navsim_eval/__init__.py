"""navsim_eval package."""
