"""Test harness: start kernel containers the way the Backend.AI agent does, and talk to them."""
