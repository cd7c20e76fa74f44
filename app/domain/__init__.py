"""Account domains: custom hostnames of an account, proven by DNS TXT and assigned to issuers (§2.8)."""
