"""PDM metric cache, reference planner, simulation and scorer (NAVSIM v1 PDMS / v2 EPDMS)."""
