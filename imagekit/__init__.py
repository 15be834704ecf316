"""imagekit: build, validate and smoke-test Backend.AI kernel images."""

__version__ = "0.1.0"
