"""Message commands of the CLI; the work is in yunying.messaging.manual."""

from yunying.messaging.manual import preview, test_send, unsubscribe

__all__ = ["preview", "test_send", "unsubscribe"]
