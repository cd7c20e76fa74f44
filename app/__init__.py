"""authpi: a self-hostable backend for the AuthPI identity model."""
