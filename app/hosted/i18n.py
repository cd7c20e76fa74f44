# ruff: noqa: E501  (message catalogs: one message per line)
"""Message catalogs for the hosted pages: chosen by `ui_locales`, then `Accept-Language`."""

from __future__ import annotations

from collections.abc import Callable

DEFAULT = "en"

CATALOGS: dict[str, dict[str, str]] = {
    "en": {
        "sign_in_to": "Sign in to {name}",
        "sign_in": "Sign in",
        "username": "Username",
        "password": "Password",
        "or": "or",
        "passkey_sign_in": "Sign in with a passkey",
        "passkey_needs_js": "Signing in with a passkey needs JavaScript.",
        "bad_credentials": "The username or password is incorrect.",
        "too_many": "Too many failed attempts. Try again later.",
        "password_disabled": "Signing in with a password is turned off here.",
        "second_factor": "Two-step verification",
        "second_factor_intro": "Enter the 6-digit code from your authenticator app, or one of your backup codes.",
        "code": "Verification code",
        "verify": "Verify",
        "trust_device": "Trust this device (no code on this browser for 30 days)",
        "bad_code": "That code is not valid. Try again.",
        "start_again": "Too many wrong codes. Sign in again.",
        "expired": "This sign-in has expired. Sign in again.",
        "use_passkey": "Use a passkey instead",
        "enrol_title": "Set up two-step verification",
        "enrol_intro": "{name} requires a second step at sign-in. Scan this QR code with an authenticator app, then enter the code it shows.",
        "qr_alt": "QR code for your authenticator app",
        "manual_key": "Or enter this key by hand:",
        "enrol_submit": "Turn on",
        "enrol_passkey": "Create a passkey instead",
        "no_methods": "Your account needs a second factor, but no way to set one up is turned on. Contact your administrator.",
        "totp_disabled": "Authenticator app setup is turned off here.",
        "backup_title": "Save your backup codes",
        "backup_intro": "Each code works once if you lose your authenticator. They are shown only now.",
        "continue": "Continue",
        "passkeys_title": "Passkeys",
        "passkey_add": "Create a passkey",
        "passkey_created": "Your passkey is ready.",
        "passkey_failed": "The passkey could not be used.",
        "passkey_disabled": "Passkeys are turned off here.",
        "passkey_ip_host": "Passkeys need a domain name: this server is reached by an IP address.",
        "passkey_after": "After signing in you can create a passkey for this account.",
        "not_found": "Not found",
        "sign_in_error": "Sign-in error",
        "link_invalid": "This sign-in link is invalid or has expired. Go back to the application and try again.",
        "form_expired": "The form expired. Please try again.",
        "wait": "Too many attempts. Wait {seconds} seconds, then try again.",
        "language": "Language",
        "sso_required": "{name} requires single sign-on: sign in through your organization's identity provider.",
        "continue_sso": "Continue with single sign-on",
        "continue_with": "Continue with {name}",
        "sso_email": "Work email",
        "sso_submit": "Continue with single sign-on",
        "sso_unknown": "Single sign-on is not set up for this email domain. Sign in another way.",
        "upstream_error": "The identity provider refused the sign-in ({error}). Go back to the application and try again.",
        "upstream_failed": "The answer of the identity provider could not be verified. Go back to the application and try again.",
        "sso_outside_domains": "This organization's identity provider vouched for an email outside the organization's verified domains. Nothing was changed.",
        "link_title": "Link your account",
        "link_intro": "An account for {email} already exists. Sign in to it once to link your {provider} sign-in to it.",
        "link_continue": "Sign in to link",
        "invitation_title": "Join {name}",
        "invitation_intro": "You are invited to join {name} as {email}.",
        "invitation_existing": "Enter the password of your account to accept.",
        "invitation_new": "Choose a password to create your account and accept.",
        "email": "Email",
        "new_password": "New password",
        "password_rules": "At least {min} characters.",
        "password_short": "Choose a password of at least {min} characters.",
        "password_long": "Choose a password of at most {max} characters.",
        "bad_password": "The password is incorrect.",
        "accept": "Accept",
        "decline": "Decline",
        "decline_intro": "Not for you? Decline the invitation.",
        "invitation_error": "Invitation",
        "invitation_not_found": "This invitation link is not valid. It may have been replaced by a newer email: use the link of the latest one, or ask for a new invitation.",
        "invitation_expired": "This invitation has expired. Ask {name} for a new one.",
        "invitation_revoked": "This invitation was withdrawn by {name}.",
        "invitation_accepted": "This invitation has already been accepted.",
        "invitation_declined": "This invitation has already been declined.",
        "invitation_suspended": "{name} is suspended: its invitations cannot be accepted at the moment.",
        "invitation_disabled": "{name} does not accept invitations at the moment.",
        "invitation_full": "{name} has reached its maximum number of members. Ask them to make room, then open this link again.",
        "invitation_conflict": "Your account could not join {name}: it may already be a member, or its username conflicts with another account. Nothing was changed.",
        "invitation_no_password": "Accepting here needs a password, and password sign-in is turned off. Ask {name} for help.",
        "joined_title": "Welcome to {name}",
        "joined": "You are now a member of {name}. Sign in to the application with {email}.",
        "declined_title": "Invitation declined",
        "declined": "You declined the invitation to join {name}.",
    },
    "de": {
        "sign_in_to": "Bei {name} anmelden",
        "sign_in": "Anmelden",
        "username": "Benutzername",
        "password": "Passwort",
        "or": "oder",
        "passkey_sign_in": "Mit einem Passkey anmelden",
        "passkey_needs_js": "Die Anmeldung mit einem Passkey braucht JavaScript.",
        "bad_credentials": "Benutzername oder Passwort ist falsch.",
        "too_many": "Zu viele Fehlversuche. Bitte später erneut versuchen.",
        "password_disabled": "Die Anmeldung mit Passwort ist hier ausgeschaltet.",
        "second_factor": "Bestätigung in zwei Schritten",
        "second_factor_intro": "Geben Sie den 6-stelligen Code aus Ihrer Authenticator-App oder einen Ihrer Backup-Codes ein.",
        "code": "Bestätigungscode",
        "verify": "Bestätigen",
        "trust_device": "Diesem Gerät vertrauen (30 Tage kein Code in diesem Browser)",
        "bad_code": "Dieser Code ist ungültig. Bitte erneut versuchen.",
        "start_again": "Zu viele falsche Codes. Bitte erneut anmelden.",
        "expired": "Diese Anmeldung ist abgelaufen. Bitte erneut anmelden.",
        "use_passkey": "Stattdessen einen Passkey verwenden",
        "enrol_title": "Bestätigung in zwei Schritten einrichten",
        "enrol_intro": "{name} verlangt bei der Anmeldung einen zweiten Schritt. Scannen Sie diesen QR-Code mit einer Authenticator-App und geben Sie den angezeigten Code ein.",
        "qr_alt": "QR-Code für Ihre Authenticator-App",
        "manual_key": "Oder geben Sie diesen Schlüssel von Hand ein:",
        "enrol_submit": "Einschalten",
        "enrol_passkey": "Stattdessen einen Passkey erstellen",
        "no_methods": "Ihr Konto braucht einen zweiten Faktor, aber keine Einrichtungsart ist eingeschaltet. Wenden Sie sich an Ihre Administration.",
        "totp_disabled": "Die Einrichtung einer Authenticator-App ist hier ausgeschaltet.",
        "backup_title": "Backup-Codes sichern",
        "backup_intro": "Jeder Code funktioniert einmal, falls Sie Ihren Authenticator verlieren. Sie werden nur jetzt angezeigt.",
        "continue": "Weiter",
        "passkeys_title": "Passkeys",
        "passkey_add": "Passkey erstellen",
        "passkey_created": "Ihr Passkey ist bereit.",
        "passkey_failed": "Der Passkey konnte nicht verwendet werden.",
        "passkey_disabled": "Passkeys sind hier ausgeschaltet.",
        "passkey_ip_host": "Passkeys brauchen einen Domainnamen: dieser Server wird über eine IP-Adresse erreicht.",
        "passkey_after": "Nach der Anmeldung können Sie einen Passkey für dieses Konto erstellen.",
        "not_found": "Nicht gefunden",
        "sign_in_error": "Anmeldefehler",
        "link_invalid": "Dieser Anmeldelink ist ungültig oder abgelaufen. Kehren Sie zur Anwendung zurück und versuchen Sie es erneut.",
        "form_expired": "Das Formular ist abgelaufen. Bitte erneut versuchen.",
        "wait": "Zu viele Versuche. Warten Sie {seconds} Sekunden und versuchen Sie es dann erneut.",
        "language": "Sprache",
        "sso_required": "{name} verlangt Single Sign-on: Melden Sie sich über den Identitätsanbieter Ihrer Organisation an.",
        "continue_sso": "Weiter mit Single Sign-on",
        "continue_with": "Weiter mit {name}",
        "sso_email": "Geschäftliche E-Mail",
        "sso_submit": "Weiter mit Single Sign-on",
        "sso_unknown": "Für diese E-Mail-Domain ist kein Single Sign-on eingerichtet. Melden Sie sich anders an.",
        "upstream_error": "Der Identitätsanbieter hat die Anmeldung abgelehnt ({error}). Kehren Sie zur Anwendung zurück und versuchen Sie es erneut.",
        "upstream_failed": "Die Antwort des Identitätsanbieters konnte nicht geprüft werden. Kehren Sie zur Anwendung zurück und versuchen Sie es erneut.",
        "sso_outside_domains": "Der Identitätsanbieter dieser Organisation hat eine E-Mail außerhalb ihrer verifizierten Domains bestätigt. Es wurde nichts geändert.",
        "link_title": "Konto verknüpfen",
        "link_intro": "Ein Konto für {email} gibt es bereits. Melden Sie sich einmal dort an, um Ihre {provider}-Anmeldung damit zu verknüpfen.",
        "link_continue": "Anmelden und verknüpfen",
        "invitation_title": "{name} beitreten",
        "invitation_intro": "Sie sind eingeladen, {name} als {email} beizutreten.",
        "invitation_existing": "Geben Sie zum Annehmen das Passwort Ihres Kontos ein.",
        "invitation_new": "Wählen Sie ein Passwort, um Ihr Konto zu erstellen und die Einladung anzunehmen.",
        "email": "E-Mail",
        "new_password": "Neues Passwort",
        "password_rules": "Mindestens {min} Zeichen.",
        "password_short": "Wählen Sie ein Passwort mit mindestens {min} Zeichen.",
        "password_long": "Wählen Sie ein Passwort mit höchstens {max} Zeichen.",
        "bad_password": "Das Passwort ist falsch.",
        "accept": "Annehmen",
        "decline": "Ablehnen",
        "decline_intro": "Nicht für Sie? Lehnen Sie die Einladung ab.",
        "invitation_error": "Einladung",
        "invitation_not_found": "Dieser Einladungslink ist ungültig. Vielleicht wurde er durch eine neuere E-Mail ersetzt: Verwenden Sie den Link der neuesten oder bitten Sie um eine neue Einladung.",
        "invitation_expired": "Diese Einladung ist abgelaufen. Bitten Sie {name} um eine neue.",
        "invitation_revoked": "Diese Einladung wurde von {name} zurückgezogen.",
        "invitation_accepted": "Diese Einladung wurde bereits angenommen.",
        "invitation_declined": "Diese Einladung wurde bereits abgelehnt.",
        "invitation_suspended": "{name} ist gesperrt: Einladungen können derzeit nicht angenommen werden.",
        "invitation_disabled": "{name} nimmt derzeit keine Einladungen an.",
        "invitation_full": "{name} hat die maximale Anzahl an Mitgliedern erreicht. Bitten Sie um Platz und öffnen Sie diesen Link dann erneut.",
        "invitation_conflict": "Ihr Konto konnte {name} nicht beitreten: Es ist vielleicht bereits Mitglied, oder sein Benutzername kollidiert mit einem anderen Konto. Es wurde nichts geändert.",
        "invitation_no_password": "Zum Annehmen wird hier ein Passwort gebraucht, und die Anmeldung mit Passwort ist ausgeschaltet. Bitten Sie {name} um Hilfe.",
        "joined_title": "Willkommen bei {name}",
        "joined": "Sie sind jetzt Mitglied von {name}. Melden Sie sich in der Anwendung mit {email} an.",
        "declined_title": "Einladung abgelehnt",
        "declined": "Sie haben die Einladung zu {name} abgelehnt.",
    },
}


def _accept_language(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, index, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def choose_locale(ui_locales: str | None, accept_language: str | None) -> str:
    """The first supported of `ui_locales` (space-separated, OIDC Core §3.1.2.1), then of
    Accept-Language; English otherwise."""
    candidates = (ui_locales or "").split()[:10] + _accept_language(accept_language or "")
    for tag in candidates:
        base = tag.lower().split("-")[0]
        if base in CATALOGS:
            return base
    return DEFAULT


def translator(locale: str) -> Callable[..., str]:
    catalog = CATALOGS.get(locale, CATALOGS[DEFAULT])

    def t(key: str, **values: object) -> str:
        text = catalog.get(key) or CATALOGS[DEFAULT][key]
        return text.format(**values) if values else text

    return t
