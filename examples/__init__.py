"""Runnable example bots; the tests import and run each of them."""
