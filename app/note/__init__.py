"""Operator notes on users, organizations, issuers, clients and agents (SDK-CONTRACT §2.10)."""
