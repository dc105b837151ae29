"""The demo: a chaos scenario on the embedded simulator, driven through the resilient clients."""
