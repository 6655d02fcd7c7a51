"""The backend contract: scenarios every backend must pass, run against each of them."""
