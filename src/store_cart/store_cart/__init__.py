"""Per-shopper carts, receipts and review requests, persisted in SQLite."""
