"""The event-bus port (topics, consumer groups, at-least-once) and its adapters."""

from services.common.bus.port import EventBus, Message, Subscription

__all__ = ["EventBus", "Message", "Subscription"]
