from tests.fixtures.tenancy import issuer_id, other_issuer_id  # noqa: F401
