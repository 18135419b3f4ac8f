"""Registered NAT criterions (one per file)."""
