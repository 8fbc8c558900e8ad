"""The Litestar HTTP API (SPEC section 8)."""
