"""Registered NAT models (one per file); fairseq's --user-dir imports each."""
