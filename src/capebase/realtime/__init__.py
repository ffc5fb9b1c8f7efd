"""Real-time: change capture, the change log, handlers and streams."""

from ..changes.change import EventType, ModelChange

__all__ = ["EventType", "ModelChange"]
