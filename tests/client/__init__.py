"""Tests of the provider client, one file per module of it."""
