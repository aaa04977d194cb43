"""DataGate: statistics validated against the contract and drift checked against a baseline; stops the run."""
