"""pixclass."""
