"""Shared helpers for the end-to-end tests: a real `merpati serve` subprocess, loopback
addresses and ports that never collide between xdist workers, and message checks."""
