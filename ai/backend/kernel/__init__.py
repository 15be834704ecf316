"""Compatibility shim: the upstream module path of the kernel runner."""
