"""krunner: the in-container kernel runner for Backend.AI-style compute sessions."""

__version__ = "0.1.0"
