"""Store simulator: scenarios, plate controller and gate reader emulators on pseudo-terminals, evaluator."""
