"""The end user's hosted pages (sign-in steps, second factor, enrolment, passkeys): flow state,
policies, branding and message catalogs. OIDC protocol logic stays in app/oidc."""
