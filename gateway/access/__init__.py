"""Who may call: page access (call tokens, challenges), admission (the limits of the
gateway, a site and a visitor) and the ledger the workers of a machine count in."""
