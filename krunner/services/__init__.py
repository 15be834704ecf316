"""Service ports: definitions, supervision, intrinsic services."""
