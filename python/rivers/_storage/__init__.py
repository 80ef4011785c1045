"""Python-side storage types (the store itself is ``rivers._core.storage``)."""
