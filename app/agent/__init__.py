"""Agents of an issuer and their verifiers (SDK-CONTRACT §2.20)."""
