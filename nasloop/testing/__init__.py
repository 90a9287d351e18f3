"""Test helpers shipped with nasloop, so third-party backends can run the same checks."""
