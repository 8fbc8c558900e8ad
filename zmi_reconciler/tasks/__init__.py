"""The task catalog: one module per task (SPEC section 6), registered in :mod:`.catalog`."""
