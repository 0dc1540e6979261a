"""Models of a typical upload form, one per storage under comparison."""
