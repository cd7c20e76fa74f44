"""Sign-in methods of an issuer (SDK-CONTRACT §2.14)."""
