"""Branding on the hosted pages: the rules live with the issuer (app/issuer/branding.py), since the
emails an issuer sends are branded the same way."""

from app.issuer.branding import DEFAULT_COLOR, Brand, load_brand, make_brand, safe_logo, safe_name

__all__ = ["DEFAULT_COLOR", "Brand", "load_brand", "make_brand", "safe_logo", "safe_name"]
