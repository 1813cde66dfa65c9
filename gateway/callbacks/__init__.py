"""Request-a-Call: requests validated and stored, a scheduler that runs due ones once, and
the job that rings the operator, then the visitor, and joins them."""
