"""Building blocks shared by more than one NAT model (no registration here)."""
