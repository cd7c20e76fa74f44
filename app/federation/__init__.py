"""Sign-in through upstream identity providers: social methods and organization OIDC connections."""
