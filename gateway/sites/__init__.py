"""A site's settings as domain objects: business hours, routing (destinations, ring
strategy, callbacks) and the widget's public settings."""
