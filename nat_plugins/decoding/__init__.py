"""Shared NAT decoding: the generator and one strategy class per algorithm."""
