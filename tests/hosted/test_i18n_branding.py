"""Message catalogs and branding values, as the pages use them."""

from __future__ import annotations

from app.hosted.branding import make_brand
from app.hosted.i18n import CATALOGS, choose_locale, translator


def test_every_catalog_has_every_message() -> None:
    assert set(CATALOGS["de"]) == set(CATALOGS["en"])


def test_ui_locales_first_then_accept_language() -> None:
    assert choose_locale("de", "en-US,en;q=0.9") == "de"
    assert choose_locale("fr en", "de") == "en"
    assert choose_locale(None, "fr-CH, de;q=0.8, en;q=0.5") == "de"
    assert choose_locale(None, "de;q=0, en;q=0.5") == "en"
    assert choose_locale(None, None) == "en"
    assert "Warten Sie 3 Sekunden" in translator("de")("wait", seconds=3)


def test_brand_keeps_only_safe_values() -> None:
    brand = make_brand("acme", {"name": "  ", "logo_url": "http://x.example/l.png", "primary_color": "#FFF"})
    assert (brand.name, brand.logo_url, brand.primary_color) == ("acme", None, "#222222")
    light = make_brand("acme", {"primary_color": "#FFCC00", "logo_url": "https://x.example/l.png"})
    assert (light.primary_color, light.text_color, light.logo_url) == ("#ffcc00", "#000000",
                                                                       "https://x.example/l.png")
    assert make_brand("acme", {"primary_color": "#0a58ca"}).text_color == "#ffffff"
    assert make_brand("acme", {"logo_url": 'https://x.example/"onerror="x'}).logo_url is None
