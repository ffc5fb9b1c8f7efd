"""Runnable example apps built on capebase."""
