"""Store simulator: scenarios, plate and gate emulators on pseudo-terminals, evaluator."""
