"""Reaching a person in writing: click-to-chat (`conversations`: a visitor's messages to the
site's destinations as SIP MESSAGE, and their replies) and click-to-text when nobody is
there (`left`: a message with a way back, delivered as `message.received`)."""
