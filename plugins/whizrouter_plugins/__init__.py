"""First-party whizrouter plugins; each uses only whizrouter's public API."""
