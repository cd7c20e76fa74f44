"""Upstream identity providers (their configuration) and the federated identities of users."""
