"""What the tests share, one small module per concern: waiting with a deadline, records
planted in the store, command shims, the scheduler stand-ins, and the harnesses that tell
the backend contract suite (tests/contract) how each backend differs."""
