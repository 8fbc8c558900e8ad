"""Time-and-attendance store and calculation (SPEC section 7, ZMI manual rules)."""
